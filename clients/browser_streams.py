"""Chromium opens N EventSources to one origin: ``python -m pushbench.clients.browser_streams
SPEC.json`` (issue 18 item 3, h43; the runner's ``[browser_streams]`` probe).

One page of ``base_url`` (its ``/health``, so the page's origin is the server's) creates
``streams`` EventSources on one topic at once, keeps them for ``hold_s`` while the
server's ticker publishes, and reports per stream: when it opened, when its first message
came (ms from its own creation), how many came, and its readyState at the end — 0
(CONNECTING) is a stream queued behind Chromium's six HTTP/1.1 connections per origin.
The page's ``nextHopProtocol`` says what was negotiated: ``http/1.1`` on http://, ``h2`` on
https:// (Chromium speaks HTTP/2 only over TLS; the run's throwaway CA is not in Chromium's
store, so the page's context ignores certificate errors, as ``tests/test_http2_browser.py``).

Chromium is the spec's executable, driven by Playwright (never a downloaded browser),
with :func:`.browser_worker.launch_options`. The result (:class:`PageResult`) is written
atomically to the spec's ``out``; ``browser-streams: done`` on stdout then tells the
runner it is there. Exit 0 when written, 1 when the page failed (the reason on stderr).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pushbench.results import atomic_write_json
from pushbench.schema.browser_streams import PageResult, PageSpec

from .browser_worker import launch_options

__all__ = ["DONE_LINE", "OPEN_JS", "main", "run_page"]

DONE_LINE = "browser-streams: done"

OPEN_JS = """async ([n, holdMs, topic]) => {
  const rows = [];
  for (let i = 0; i < n; i++) {
    const row = {index: i, open_ms: null, first_message_ms: null, messages: 0};
    const start = performance.now();
    const es = new EventSource(`/sse?topic=${topic}&stream=${i}`);
    es.onopen = () => { if (row.open_ms === null) row.open_ms = performance.now() - start; };
    es.onmessage = () => {
      row.messages += 1;
      if (row.first_message_ms === null) row.first_message_ms = performance.now() - start;
    };
    rows.push([row, es]);
  }
  await new Promise(r => setTimeout(r, holdMs));
  const protocol = performance.getEntriesByType('navigation')[0].nextHopProtocol;
  const streams = rows.map(([row, es]) => ({...row, ready_state: es.readyState}));
  rows.forEach(([, es]) => es.close());
  return {protocol, streams};
}"""


def run_page(spec: PageSpec) -> PageResult:
    """Open the page and its streams in a fresh headless Chromium → what it saw."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(**launch_options(Path(spec.chromium)))
        try:
            context = browser.new_context(ignore_https_errors=True)
            page = context.new_page()
            page.goto(f"{spec.base_url}/health")
            hold_ms = int(spec.hold_s * 1000)
            raw: dict[str, Any] = page.evaluate(OPEN_JS, [spec.streams, hold_ms, spec.topic])
            context.close()
        finally:
            browser.close()
    return PageResult.from_dict(raw)


def main(argv: list[str] | None = None) -> int:
    """Entry point: read the spec, run the page, write the result, print :data:`DONE_LINE`."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pushbench.clients.browser_streams SPEC.json", file=sys.stderr)
        return 2
    spec = PageSpec.from_dict(json.loads(Path(args[0]).read_text("utf-8")))
    try:
        result = run_page(spec)
    except Exception as exc:
        print(f"browser_streams: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    atomic_write_json(spec.out, asdict(result))
    print(DONE_LINE, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
