"""Run directories, atomic writes and run metadata: how every benchmark stores results.

Layout (see ``results/README.md``)::

    results/
        20261125T213700Z-3f9a1c/     one directory per run, never reused
            metadata.json            machine, software and command of the run
            codec.json, codec.csv    a benchmark's records (one file pair per benchmark)
            ...                      plots and reports rendered from those records
        latest -> 20261125T213700Z-3f9a1c

Why this shape:

- A run id is a UTC timestamp plus a random suffix and its directory is created
  with ``mkdir`` (which fails if it exists), so two runs started in the same
  second, or in parallel, never write into each other's directory.
- Every file is written to a temporary name in the same directory and renamed
  over the target (``os.replace``): a reader, or a crash, sees the old file or
  the whole new one, never half of one.
- ``latest`` is repointed the same way, and only to a run whose metadata says
  it is complete (:func:`update_latest` refuses any other), so it always names
  the newest *complete* run: an interrupted or failed run leaves it where it
  was, and the report a user just rendered does not "disappear". Where
  symlinks are not allowed it is a small file holding the run id;
  :func:`resolve_run` understands both.

Nothing here knows about any particular benchmark, so later benchmarks reuse it.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import secrets
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from .fdlimit import nr_open
from .procs import run_tool
from .settings import BLAS_ENV_VARS, Settings

__all__ = [
    "DEFAULT_BASE",
    "LATEST",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "collect_metadata",
    "finish_metadata",
    "new_run_dir",
    "new_run_id",
    "read_json",
    "resolve_run",
    "update_latest",
]

LATEST = "latest"


_PROJECT_ROOT = Path(__file__).resolve().parent.parent


# --- run directories -------------------------------------------------------


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, collision-resistant run id: ``YYYYmmddTHHMMSSZ-xxxxxx``."""
    now = now or datetime.now(UTC)
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def new_run_dir(base: Path | str) -> Path:
    """Create and return a fresh run directory under ``base``.

    ``os.mkdir`` is atomic and refuses an existing path, so an existing run is
    never overwritten: on the (unlikely) clash we draw a new suffix.
    """
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        path = base / new_run_id()
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RuntimeError(f"could not create a unique run directory under {base}")


def update_latest(run_dir: Path | str) -> Path:
    """Point ``<base>/latest`` at ``run_dir`` atomically; return the ``latest`` path.

    ``run_dir``'s ``metadata.json``, when it has one, must say ``"status":
    "complete"``: ``latest`` names the newest complete run, and a caller that
    asks for an incomplete one gets a ValueError (callers move it only once
    the run is stamped complete). A relative symlink is created under a
    temporary name and renamed over ``latest``. If the filesystem refuses
    symlinks, ``latest`` becomes a file containing the run id, written just as
    atomically.
    """
    run_dir = Path(run_dir)
    meta = run_dir / "metadata.json"
    if meta.exists():
        status = read_json(meta).get("status")
        if status != "complete":
            raise ValueError(f"{run_dir} is {status!r}, not complete: {LATEST} stays where it is")
    base = run_dir.parent
    latest = base / LATEST
    tmp = base / f".{LATEST}.{secrets.token_hex(4)}.tmp"
    try:
        os.symlink(run_dir.name, tmp, target_is_directory=True)
    except (OSError, NotImplementedError):
        atomic_write_text(latest, run_dir.name + "\n")
        return latest
    try:
        os.replace(tmp, latest)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return latest


#: Where runs go unless told otherwise (``--out``), relative to the working directory.
DEFAULT_BASE = Path("results")


def resolve_run(path: Path | str) -> Path:
    """The run directory ``path`` designates.

    Accepts a run directory itself, a ``latest`` symlink or file, a results
    base directory (then its ``latest`` is followed), or the bare word
    ``latest`` (when nothing of that name is in the working directory):
    ``results/latest``, the newest run under the default base. Every command
    that names a run goes through here, so ``latest`` means the same everywhere.
    Raises FileNotFoundError when nothing there is a run directory.
    """
    path = Path(path)
    if path == Path(LATEST) and not path.exists() and not path.is_symlink():
        path = DEFAULT_BASE / LATEST
    if path.is_dir() and (path / LATEST).exists() and not (path / "metadata.json").exists():
        path = path / LATEST
    if path.is_symlink() or path.is_dir():
        resolved = path.resolve()
        if resolved.is_dir():
            return resolved
    if path.is_file():
        # the fallback form of `latest`: a file holding the run id
        run_id = path.read_text().strip()
        candidate = path.parent / run_id
        if run_id and "/" not in run_id and candidate.is_dir():
            return candidate.resolve()
    raise FileNotFoundError(f"no run directory at {path}")


# --- atomic writes ---------------------------------------------------------


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either the old or the new file.

    The temporary file lives in the target's directory because ``os.replace``
    is only atomic within one filesystem; it is fsynced before the rename so a
    crash cannot leave a renamed but empty file.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; results are meant to be shared like any output.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path | str, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON (diff-friendly), atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: Path | str) -> Any:
    """Read a JSON file written by :func:`atomic_write_json`."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# --- metadata --------------------------------------------------------------


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def read_first_line(path: str | os.PathLike[str]) -> str | None:
    """A file's first line, stripped (a sysfs or procfs value); None when absent or empty."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().strip() or None
    except OSError:
        return None


def _open_files() -> dict[str, Any]:
    """The open-file limit a run starts with, and how the client workers raise it (a cell of
    thousands of connections needs more descriptors than the usual soft limit of 1,024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = resource.RLIM_INFINITY
    return {
        "soft": None if soft == unlimited else soft,
        "hard": None if hard == unlimited else hard,
        # issue 18 item 2: both sides raise their own, the hard limit too where allowed
        "raised_by_workers": "each client worker raises its soft limit to 3 × its "
        "connections + 256, and its hard limit with it when that is lower and the process "
        "may (root: up to fs.nr_open); the limit reached is in its OUT.json (open_files)",
        "raised_by_server": "pushbench serve raises its soft limit to --max-connections "
        "(the cell's subscribers + 100) + 256 the same way; the limit reached is in "
        "metadata servers.<stack>.open_files",
        "nr_open": nr_open(),
    }


def _loadavg() -> list[float] | None:
    """1, 5 and 15-minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _git(*args: str) -> str | None:
    return run_tool(["git", *args], cwd=_PROJECT_ROOT)


def _git_info() -> dict[str, Any]:
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "commit": commit,
        "branch": _git("rev-parse", "--abbrev-ref", "HEAD") if commit else None,
        # Tracked files modified: the numbers did not come from `commit` alone.
        "dirty": bool(status) if status is not None else None,
    }


def _versions(distributions: Iterable[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in distributions:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def collect_metadata(
    *,
    command: Sequence[str],
    settings: Settings,
    distributions: Iterable[str],
    started: datetime | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Describe the machine, software and command of a run, as a JSON-able dict.

    ``command`` and ``settings`` are passed in (the CLI owns argv and the
    environment); ``distributions`` are the installed packages whose versions
    matter to this run.
    """
    try:
        affinity: list[int] | None = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    uname = platform.uname()
    meta: dict[str, Any] = {
        "schema": 1,
        "started": (started or datetime.now(UTC)).astimezone(UTC).isoformat(),
        "finished": None,
        "duration_s": None,
        "status": "running",
        "command": list(command),
        "settings": settings.to_dict(),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "compiler": platform.python_compiler(),
            "executable": sys.executable,
        },
        "platform": platform.platform(),
        "kernel": f"{uname.system} {uname.release}",
        "machine": uname.machine,
        "hostname": uname.node,
        "cpu": {
            "model": _cpu_model(),
            "count": os.cpu_count(),
            "affinity": affinity,
            "governor": read_first_line("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        },
        # Other processes competing for the cores skew timings: keep the evidence.
        "loadavg_start": _loadavg(),
        "open_files_limit": _open_files(),
        "git": _git_info(),
        "versions": _versions(["pushbench", *distributions]),
        "blas_env": {name: dict(settings.blas_env).get(name) for name in BLAS_ENV_VARS},
        "blas_env_set": bool(settings.blas_env),
    }
    if extra:
        meta.update(extra)
    return meta


def finish_metadata(meta: dict[str, Any], *, status: str = "complete") -> dict[str, Any]:
    """Stamp the end time, duration and final status onto ``meta`` (in place)."""
    end = datetime.now(UTC)
    meta["finished"] = end.isoformat()
    meta["duration_s"] = round((end - datetime.fromisoformat(meta["started"])).total_seconds(), 3)
    meta["status"] = status
    meta["loadavg_end"] = _loadavg()
    return meta
