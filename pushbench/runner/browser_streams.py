"""A scenario's ``[browser_streams]`` probe (issue 18 item 3, h43): the browser's
six-connection limit, measured and stored, after the cells.

Twice — HTTP/1.1 on http://, then h2 on https:// with the run's certificate (Chromium
speaks HTTP/2 only over TLS) — the runner starts the spec's stack (its own start path,
pinned like a cell's server), starts its ticker on the probe's topic at ``rate`` for the
hold and a margin, and runs ``pushbench.clients.browser_streams`` (one headless Chromium
page opening ``streams`` EventSources; pinned to the client CPUs) until it prints its
done line, then stops both by pid. Each half is one
:class:`~pushbench.schema.browser_streams.StreamsRecord` (failed, with the reason, when
Chromium, Playwright or openssl is missing or a process fails); the records are written
atomically as ``browser_streams.json`` by the caller.
"""

from __future__ import annotations

import json
import ssl
import sys
import urllib.parse
import urllib.request
from dataclasses import asdict
from pathlib import Path

from pushbench.browser import MISSING_HINT, chromium_path, playwright_available
from pushbench.procs import Pinning, ProcessGroup
from pushbench.results import read_json
from pushbench.scenario import Cell, from_dict
from pushbench.scenario.browser_streams import BrowserStreamsSpec
from pushbench.schema.browser_streams import PageResult, PageSpec, StreamsRecord
from pushbench.tls import TlsFiles, client_context, generate, openssl

from .cell import TLS_DIR
from .options import READY_TIMEOUT_S
from .server import start_server

__all__ = ["DONE_LINE", "TOPIC", "probe_cell", "run_browser_streams"]

DONE_LINE = "browser-streams: done"  # clients.browser_streams.DONE_LINE (a process apart)
TOPIC = "browser-streams"
PAGE_START_S = 30.0  # Chromium's start and the page's load, beyond the hold
HALVES: tuple[tuple[str, bool], ...] = (("http/1.1", False), ("h2", True))


def probe_cell(spec: BrowserStreamsSpec, scenario: str, tls: bool) -> Cell:
    """The cell whose server the page talks to (built by the scenario parser, so it has
    every field's default): an SSE cell of the spec's stack."""
    data = {"name": scenario, "stacks": spec.stack, "transports": "sse", "rate": spec.rate}
    data |= {"subscribers": spec.streams, "duration_s": spec.hold_s, "warmup_s": 0}
    return from_dict({**data, "repeats": 1, "tls": tls}).cells()[0]


def _ticker(base_url: str, spec: BrowserStreamsSpec, context: ssl.SSLContext | None) -> None:
    """Publish on the probe's topic at ``rate`` for the page's start and its hold."""
    count = max(1, int(spec.rate * (spec.hold_s + PAGE_START_S)))
    query = urllib.parse.urlencode({"topic": TOPIC, "rate": repr(spec.rate), "count": count})
    request = urllib.request.Request(f"{base_url}/control/ticker?{query}", b"", method="POST")
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        response.read()


def _half(
    spec: BrowserStreamsSpec,
    record: StreamsRecord,
    run_dir: Path,
    pinning: Pinning,
    tls: TlsFiles | None,
    scenario: str,
    chromium: str,
) -> StreamsRecord:
    """One protocol's half → its record (failed with the reason when something broke)."""
    work = run_dir / "work" / f"browser-streams-{record.asked.replace('/', '')}"
    work.mkdir(parents=True, exist_ok=True)
    group = ProcessGroup(run_dir / "logs" / work.name)
    try:
        server = start_server(group, probe_cell(spec, scenario, tls is not None), pinning, tls)
        _ticker(server.base_url, spec, None if tls is None else client_context(tls.ca))
        out = work / "page.json"
        page = PageSpec(server.base_url, spec.streams, spec.hold_s, TOPIC, str(out), chromium)
        (work / "page.spec.json").write_text(json.dumps(asdict(page)), "utf-8")
        argv = [sys.executable, "-m", "pushbench.clients.browser_streams"]
        group.start(
            "browser",
            [*argv, str(work / "page.spec.json")],
            cpus=pinning.clients,
            ready_prefix=DONE_LINE,
            timeout_s=READY_TIMEOUT_S + PAGE_START_S + spec.hold_s,
        )
        result = PageResult.from_dict(read_json(out))
        return StreamsRecord(
            **{**asdict(record), "per_stream": result.streams, "protocol": result.protocol}
        )
    except Exception as exc:  # the probe's failure is recorded, the run goes on
        reason = f"{type(exc).__name__}: {exc}"[:500]
        return StreamsRecord(**{**asdict(record), "status": "failed", "reason": reason})
    finally:
        for started in list(group.started):
            group.stop(started)
        group.started.clear()


def run_browser_streams(
    spec: BrowserStreamsSpec, run_dir: Path, pinning: Pinning, scenario: str
) -> list[StreamsRecord]:
    """Both halves of the probe → their records (HTTP/1.1 first)."""
    blank = [StreamsRecord(a, spec.stack, spec.streams, spec.hold_s, spec.rate) for a, _ in HALVES]
    chromium = chromium_path()
    why = "" if chromium is not None and playwright_available() else f"no Chromium: {MISSING_HINT}"
    if not why and openssl() is None:
        why = "no openssl: the HTTP/2 half needs the run's certificate"
    if why or chromium is None:
        return [StreamsRecord(**{**asdict(r), "status": "failed", "reason": why}) for r in blank]
    tls = generate(run_dir / TLS_DIR)
    return [
        _half(spec, r, run_dir, pinning, tls if use_tls else None, scenario, str(chromium))
        for r, (_, use_tls) in zip(blank, HALVES, strict=True)
    ]
