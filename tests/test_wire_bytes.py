"""Bytes named for what they are: TCP payload from ``TCP_INFO``, and beside it an estimate
of the bytes on the wire (payload + 52 B of IPv4/TCP/timestamps headers per segment).

From a fabricated ``struct tcp_info`` through the parser and the formula; a real
loopback socket's segments; the browser's ``ss`` readings differenced; the row's
wire columns from window marks; the names and descriptions of the columns and the
report's labels.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import numpy as np
import pytest

from pushbench import metrics
from pushbench.clients import tcpinfo
from pushbench.clients.proctree import bytes_between
from pushbench.report.load import METRICS
from pushbench.runner.rows import cpu_accounting, with_ticker_cpu, with_wire_bytes
from pushbench.runner.window import ClientWorker, client_load
from pushbench.schema.cells import ALL_COLUMNS, COLUMNS, EXTRA_COLUMNS
from pushbench.schema.worker import REQUIRED_TOTALS, WindowMark, WorkerResult


def _tcp_info(state: int, acked: int, received: int, segs: tuple[int, int] | None) -> bytes:
    """A ``struct tcp_info`` as the kernel lays it out (native byte order)."""
    buf = bytearray(232 if segs is not None else 136)
    buf[0] = state
    struct.pack_into("=QQ", buf, 120, acked, received)
    if segs is not None:
        struct.pack_into("=II", buf, 136, *segs)
    return bytes(buf)


def test_the_wire_estimate_from_a_tcp_info_record() -> None:
    # ESTABLISHED (1); 1,000 payload bytes out (+ the SYN), 2,000 in; 10 segments out, 20 in
    info = tcpinfo.parse(_tcp_info(1, 1_001, 2_000, (10, 20)))
    assert info == tcpinfo.TcpInfo(1, 1_001, 2_000, 10, 20)
    out, into = tcpinfo.payload(info)
    assert (out, into) == (1_000, 2_000)
    assert metrics.HEADER_BYTES_PER_SEGMENT == 52  # IPv4 20 + TCP 20 + timestamps 12
    assert metrics.wire_bytes(out, info.segs_out) == 1_000 + 52 * 10
    assert metrics.wire_bytes(into, info.segs_in) == 2_000 + 52 * 20


def test_a_kernel_without_segment_counters_gives_no_estimate() -> None:
    info = tcpinfo.parse(_tcp_info(1, 1_001, 2_000, None))  # Linux 4.1: bytes, no segments
    assert info is not None and info.segs_out is None
    assert metrics.wire_bytes(tcpinfo.payload(info)[0], info.segs_out) is None
    assert tcpinfo.parse(b"\x01" * 100) is None  # older still: nothing


@pytest.mark.skipif(not tcpinfo.AVAILABLE, reason="TCP_INFO is Linux-only")
def test_a_meter_counts_the_segments_after_the_handshake() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        with client, server:
            meter = tcpinfo.TcpMeter()
            assert meter.start(client)
            for _ in range(3):  # three request/response exchanges: ≥ 3 segments each way
                client.sendall(b"q" * 100)
                assert server.recv(100) == b"q" * 100
                server.sendall(b"r" * 200)
                got = b""
                while len(got) < 200:
                    got += client.recv(200 - len(got))
            peek = meter.peek()
            assert peek is not None and peek.segs_out is not None and peek.segs_in is not None
            assert peek.segs_out >= 3 and peek.segs_in >= 3
            assert meter.finish() is True
            assert (meter.bytes_out, meter.bytes_in) == (300, 600)
            assert meter.segs_in is not None and meter.segs_in >= peek.segs_in


def test_the_browsers_ss_readings_difference_segments_too() -> None:
    first = {("a", "b"): (101, 50, 5, 6)}
    last = {("a", "b"): (301, 450, 9, 16), ("a", "c"): (11, 20, 3, 4)}  # one opened since
    moved = bytes_between(first, last)
    assert (moved.bytes_out, moved.bytes_in) == (200 + 10, 400 + 20)
    assert (moved.segs_out, moved.segs_in) == (4 + 3, 10 + 4)
    assert moved.complete


def _worker(segs: bool) -> ClientWorker:
    """A worker marked at the window's edges: 100 messages, 5,000 payload bytes in, 200 out,
    and (when ``segs``) 110 segments in and 60 out between the marks."""
    totals = dict.fromkeys(REQUIRED_TOTALS, 0) | {"messages": 120, "bytes_in": 6_000}
    extra = {"segs_out": 0, "segs_in": 0} if segs else {}
    start = WindowMark(1_000, 0.0, 0.0, 10, 0, 100, 1_000, **extra)
    if segs:
        extra = {"segs_out": 60, "segs_in": 110}
    end = WindowMark(1_000 + 2 * 10**9, 0.1, 0.0, 110, 0, 300, 6_000, **extra)
    raw: dict[str, Any] = {k: 0 for k in WorkerResult.required()}
    raw.update(
        transport="ws",
        connections=1,
        totals=totals | ({"segs_out": 70, "segs_in": 130} if segs else {}),
        per_connection=[],
        bytes_source="tcp_info",
        window_start=start.to_dict(),
        window_end=end.to_dict(),
    )
    return ClientWorker((1,), 1, WorkerResult.from_dict(raw), np.zeros(0, dtype=np.int64))


def test_the_rows_wire_columns_add_headers_per_segment_over_one_span() -> None:
    load = client_load([_worker(segs=True)])
    row = {
        "bytes_in_per_msg": load.per_msg("bytes_in"),
        "bytes_out_per_msg": load.per_msg("bytes_out"),
        "bytes_per_conn_per_s": load.bytes_per_conn_per_s(),
        "bytes_source": "tcp_info",
    }
    wire = with_wire_bytes(row, load)
    assert wire["bytes_in_per_msg"] == pytest.approx(50.0)  # TCP payload, unchanged
    assert wire["wire_bytes_in_per_msg"] == pytest.approx(50.0 + 52 * 1.1)
    assert wire["wire_bytes_out_per_msg"] == pytest.approx(2.0 + 52 * 0.6)
    assert wire["wire_bytes_per_conn_per_s"] == pytest.approx((5_200 + 52 * 170) / 2.0)
    assert with_wire_bytes(row | {"bytes_source": "socket"}, load)["wire_bytes_in_per_msg"] is None
    # a worker that counted no segments (Locust): no estimate, never payload alone
    mixed = client_load([_worker(segs=True), _worker(segs=False)])
    assert with_wire_bytes(row, mixed)["wire_bytes_in_per_msg"] is None


def test_the_ticker_column_shares_the_server_cpu_denominator() -> None:
    row = {"msgs_delivered": 400}  # 200 published in the window × 2 subscribers
    ticker = {"own_cpu_us_per_msg": 6.0}
    assert with_ticker_cpu(row, ticker, 200)["ticker_cpu_us_per_msg"] == pytest.approx(3.0)
    assert with_ticker_cpu(row, {}, 200)["ticker_cpu_us_per_msg"] is None  # chat, idle
    assert with_ticker_cpu({"msgs_delivered": 0}, ticker, 200)["ticker_cpu_us_per_msg"] is None


def test_columns_and_labels_say_what_each_figure_includes() -> None:
    for name in ("bytes_in_per_msg", "bytes_out_per_msg", "handshake_bytes_per_conn"):
        assert COLUMNS[name].description.startswith("TCP payload bytes")
    assert EXTRA_COLUMNS["bytes_per_conn_per_s"].description.startswith("TCP payload bytes")
    for name in ("wire_bytes_in_per_msg", "wire_bytes_out_per_msg", "wire_bytes_per_conn_per_s"):
        text = EXTRA_COLUMNS[name].description
        assert "estimated bytes on the wire" in text and "52 B per TCP segment" in text
        assert "tcpi_segs_in" in text
        assert ALL_COLUMNS.index(name) > ALL_COLUMNS.index("publish_overruns")
    assert "to the ns" in COLUMNS["server_cpu_s"].description
    assert "ticker_cpu_us_per_msg" in COLUMNS["server_cpu_s"].description
    ticker = EXTRA_COLUMNS["ticker_cpu_us_per_msg"].description
    assert "not hub.publish" in ticker and "server_cpu_us_per_msg, which includes it" in ticker
    assert "to the ns" in EXTRA_COLUMNS["broker_cpu_us_per_msg"].description
    assert METRICS["bytes_in_per_msg"].label == "TCP payload bytes in"
    assert METRICS["wire_bytes_in_per_msg"].label == "on the wire in (est.)"
    assert "ticker" in METRICS["ticker_cpu_us_per_msg"].label
    accounting = cpu_accounting()
    assert accounting["ticker"].startswith(
        "ticker on the server core, its own cost reported separately"
    )
    assert accounting["source"] in {"clock", "schedstat", "ticks"}
