"""The system's Chromium, headless, for the browser client and the report check.

Debian's ``chromium`` package (installed by ``make system-deps``) is driven
through Playwright's protocol client with ``executable_path``: Playwright
never downloads a browser here. The flags keep a headless Chromium off the
network it cannot reach on this machine (background networking, component
updates, sync, QUIC) and run it as root without a GPU; each launch gets a new
empty profile, so runs do not influence each other.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["CHROMIUM_ARGS", "MISSING_HINT", "chromium_path", "playwright_available"]

CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--metrics-recording-only",
    "--mute-audio",
)
MISSING_HINT = "install Debian's chromium: `make system-deps` (or: sudo apt-get install chromium)"
_CANDIDATES = ("chromium", "chromium-browser")


_OVERRIDE: str | None = None


def use_chromium(path: str | None) -> None:
    """Use this Chromium executable (``PUSHBENCH_CHROMIUM`` through the settings); None: search."""
    global _OVERRIDE
    _OVERRIDE = path


def chromium_path() -> Path | None:
    """The Chromium executable: the configured one if set, else the system's, else None."""
    if _OVERRIDE:
        path = Path(_OVERRIDE)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def playwright_available() -> bool:
    """Whether Playwright's Python client is importable (it is pinned in requirements.lock)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True
