"""The browser's six-connection limit, measured (issue 18 item 3).

Headless Chromium opens N = 8 EventSource streams to one origin (the Hypercorn stack,
which speaks both protocols): over HTTP/1.1 (plain http://) Chromium holds at most six
connections per origin, so six streams open and receive a message while the 7th and 8th
wait (readyState CONNECTING); over HTTP/2 (https://, the certificate of pushbench.tls —
Chromium speaks h2 only over TLS) all eight open and receive, multiplexed on one
connection. The counts are what ``docs/http2.md`` reports. Skips without Chromium or
Playwright (fails under CI, where they must be installed); servers bind loopback port 0
and are stopped by pid.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ServerProcess, start_server

from pushbench.browser import MISSING_HINT, chromium_path, playwright_available
from pushbench.clients.browser_worker import launch_options
from pushbench.tls import generate, openssl

pytestmark = pytest.mark.timeout(150)

STREAMS = 8
SETTLE_MS = 1500  # once the expected streams are open (or have received), how long to wait
DEADLINE_MS = 30_000  # a loaded machine (CI) may take seconds to open streams or deliver
CHROMIUM = chromium_path()

# Opens STREAMS EventSources and waits until `want` of them are open (6 over HTTP/1.1, the
# limit per origin; all 8 over HTTP/2) or the deadline passes, then settles so that a 7th
# stream that could open has time to, and reports each readyState.
OPEN_JS = """async ([n, want, settle, deadline]) => {
  window.__got = new Array(n).fill(0);
  window.__es = [];
  for (let i = 0; i < n; i++) {
    const es = new EventSource(`/sse?topic=six&i=${i}`);
    es.onmessage = () => { window.__got[i] += 1; };
    window.__es.push(es);
  }
  const start = performance.now();
  while (window.__es.filter(es => es.readyState === 1).length < want
         && performance.now() - start < deadline) {
    await new Promise(r => setTimeout(r, 20));
  }
  await new Promise(r => setTimeout(r, settle));
  return window.__es.map(es => es.readyState);
}"""
# After the test publishes one message: waits until `want` streams have received it or the
# deadline passes, settles (a waiting stream that could receive has time to), and reports.
RECEIVED_JS = """async ([want, settle, deadline]) => {
  const start = performance.now();
  while (window.__got.filter(g => g > 0).length < want
         && performance.now() - start < deadline) {
    await new Promise(r => setTimeout(r, 20));
  }
  await new Promise(r => setTimeout(r, settle));
  const proto = performance.getEntriesByType('navigation')[0].nextHopProtocol;
  const got = window.__got.slice();
  window.__es.forEach(es => es.close());
  return {received: got, protocol: proto};
}"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if CHROMIUM is None or not playwright_available():
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium under CI: {MISSING_HINT}")
        pytest.skip(f"no Chromium: {MISSING_HINT}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(**launch_options(CHROMIUM))
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    """The Hypercorn stack on https:// (h2 by ALPN, HTTP/1.1 otherwise)."""
    if openssl() is None:
        if os.environ.get("CI"):
            pytest.fail("no openssl under CI")
        pytest.skip("no openssl: the HTTP/2 half needs a certificate")
    tmp = tmp_path_factory.mktemp("six")
    files = generate(tmp / "tls")
    tls = ("--tls-cert", str(files.cert), "--tls-key", str(files.key))
    proc = start_server(tmp / "tls.stderr", *tls, stack="starlette-hypercorn")
    try:
        yield proc, files.ca
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The Hypercorn stack on http:// (Chromium speaks HTTP/1.1 to it)."""
    proc = start_server(
        tmp_path_factory.mktemp("six-plain") / "plain.stderr", stack="starlette-hypercorn"
    )
    try:
        yield proc
    finally:
        proc.stop()


def _publish(url: str, context: Any = None) -> None:
    request = urllib.request.Request(f"{url}/publish?topic=six", data=b"hello", method="POST")
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        assert response.status == 200


def _stats(url: str, context: Any = None) -> str:
    """The server's /stats, for a failure's message."""
    try:
        with urllib.request.urlopen(f"{url}/stats", timeout=10, context=context) as response:
            return str(response.read()[:2000], "utf-8", "replace")
    except OSError as exc:
        return f"/stats failed: {exc}"


def six_connections(browser: Any, base: str, want: int, context: Any = None) -> dict[str, Any]:
    """Open STREAMS EventSources from a page of ``base``; publish one message → how many
    were open (readyState 1) and how many received it, and the page's protocol. The page
    waits (bounded) for ``want`` streams to open and then to receive: the expected count,
    so a slow machine is waited for and a wrong count still shows after the settle."""
    page_context = browser.new_context(ignore_https_errors=True)
    try:
        page = page_context.new_page()
        page.goto(f"{base}/health")
        states = page.evaluate(OPEN_JS, [STREAMS, want, SETTLE_MS, DEADLINE_MS])
        _publish(base, context)
        result: dict[str, Any] = page.evaluate(RECEIVED_JS, [want, SETTLE_MS, DEADLINE_MS])
    finally:
        page_context.close()
    result["open"] = sum(1 for s in states if s == 1)
    result["waiting"] = sum(1 for s in states if s == 0)
    result["receiving"] = sum(1 for g in result["received"] if g > 0)
    return result


def test_six_eventsources_over_http1_all_eight_over_http2(
    chromium: Any, plain: ServerProcess, server: tuple[ServerProcess, Path]
) -> None:
    import ssl

    h1 = six_connections(chromium, plain.url("").rstrip("/"), 6)
    tls_server, ca = server
    base = tls_server.url("", scheme="https").rstrip("/")
    context = ssl.create_default_context(cafile=str(ca))
    h2 = six_connections(chromium, base, STREAMS, context)
    if h2["open"] == 0:
        # Seen three times in CI (never alone): no h2 stream opened in 30 s; twice none
        # received either, once (a slower host, 2026-12-07) all 8 received the message
        # published after the deadline, still reading readyState 0 until then. Say what the
        # server saw, then measure once more in a fresh browser context (its own connection
        # pool); the whole figure must hold there.
        print("h2: nothing opened; server stats:", _stats(base, context), h2)
        h2 = six_connections(chromium, base, STREAMS, context)
    print("six-connection figure:", json.dumps({"http/1.1": h1, "h2": h2}))
    assert h1["protocol"] == "http/1.1" and h2["protocol"] == "h2"
    # HTTP/1.1: six connections per origin, the 7th and 8th EventSource wait.
    assert (h1["open"], h1["waiting"], h1["receiving"]) == (6, STREAMS - 6, 6)
    # HTTP/2: every stream on one connection, all open and receiving.
    assert (h2["open"], h2["waiting"], h2["receiving"]) == (STREAMS, 0, STREAMS), h2
