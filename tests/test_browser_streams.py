"""The browser's six-connection figure as a measured, stored, reported figure (issue 18
item 3, h43): a scenario's ``[browser_streams]`` table, the runner's probe (Chromium opens
N EventSources to one origin over HTTP/1.1 and over h2), ``browser_streams.json`` and the
report's HTTP/2 table, which reads only that file.

The parse and report tests need no process; the end-to-end test runs the probe-only
scenario (two servers, two headless Chromium pages, 1 s hold each). Skips without
Chromium, Playwright or openssl, except under CI (then it fails).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pushbench import runner, scenario, tls
from pushbench.browser import MISSING_HINT, chromium_path, playwright_available
from pushbench.report import http2
from pushbench.scenario import ScenarioError
from pushbench.scenario.browser_streams import BrowserStreamsSpec
from pushbench.schema.browser_streams import (
    StreamResult,
    StreamsRecord,
    read_records,
    write_records,
)


def test_the_table_parses_and_a_file_of_only_it_has_no_cells() -> None:
    found = scenario.loads('name = "p"\n[browser_streams]\nstreams = 9\nhold_s = 1')
    assert found.browser_streams == BrowserStreamsSpec(streams=9, hold_s=1.0)
    assert found.cells() == ()
    with_cells = scenario.loads('stacks = "raw"\ntransports = "sse"\n[browser_streams]\n')
    assert len(with_cells.cells()) == 1 and with_cells.browser_streams == BrowserStreamsSpec()
    assert scenario.loads('stacks = "raw"\ntransports = "sse"').browser_streams is None
    with pytest.raises(ScenarioError, match=r"browser_streams\.stack"):
        scenario.loads('[browser_streams]\nstack = "aiohttp"')  # speaks no HTTP/2
    with pytest.raises(ScenarioError, match=r"browser_streams\.tabs"):
        scenario.loads("[browser_streams]\ntabs = 2")
    with pytest.raises(ScenarioError, match=r"browser_streams\.streams"):
        scenario.loads("[browser_streams]\nstreams = 0")


def _stream(i: int, opened: bool) -> StreamResult:
    if not opened:
        return StreamResult(i, None, None, 0, 0)
    return StreamResult(i, 30.0 + i, 41.0 + i, 20, 1)


def test_the_report_table_reads_the_stored_records(tmp_path: Path) -> None:
    h1 = StreamsRecord(
        "http/1.1", "starlette-hypercorn", 8, 1.5, 20.0, protocol="http/1.1",
        per_stream=tuple(_stream(i, i < 6) for i in range(8)),
    )  # fmt: skip
    h2 = StreamsRecord(
        "h2", "starlette-hypercorn", 8, 1.5, 20.0, protocol="h2",
        per_stream=tuple(_stream(i, True) for i in range(8)),
    )  # fmt: skip
    assert http2.section(tmp_path) is None  # no probe ran: no section
    write_records(tmp_path, [h1, h2])
    assert read_records(tmp_path) == [h1, h2]
    section = http2.section(tmp_path)
    assert section is not None and section.anchor == "http2-streams"
    table = http2.protocol_table(read_records(tmp_path))
    assert table.rows[0][1:5] == ("http/1.1", "6 of 8", "2", "6 of 8")
    assert table.rows[1][1:5] == ("h2", "8 of 8", "0", "8 of 8")
    streams = http2.per_stream_table(read_records(tmp_path))
    assert streams is not None and len(streams.rows) == 8
    assert streams.rows[6] == ("7", "—", "0", "47", "20")  # the 7th: waits on HTTP/1.1 only


@pytest.mark.timeout(90)
def test_the_probe_measures_six_over_http1_and_all_over_h2(tmp_path: Path) -> None:
    why = "" if chromium_path() and playwright_available() else f"no Chromium: {MISSING_HINT}"
    why = why or ("" if tls.openssl() else tls.OPENSSL_MISSING)
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI is set, so this is a failure, not a skip", pytrace=False)
        pytest.skip(why)
    path = tmp_path / "six.toml"
    path.write_text('name = "six"\n[browser_streams]\nstreams = 8\nhold_s = 1.0\n')
    result = runner.run_scenario(
        scenario.load(path), runner.RunOptions(out=tmp_path / "results", progress=False)
    )
    assert result.status == "complete", result.reason
    h1, h2 = read_records(result.run_dir)
    assert (h1.asked, h1.protocol, h2.asked, h2.protocol) == ("http/1.1", "http/1.1", "h2", "h2")
    assert (h1.open, h1.waiting, h1.receiving) == (6, 2, 6)
    assert (h2.open, h2.waiting, h2.receiving) == (8, 0, 8)
    assert all(s.first_message_ms is not None for s in h2.per_stream)
    assert sum(s.first_message_ms is None for s in h1.per_stream) == 2
