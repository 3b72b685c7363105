"""The raw stack's compiled fan-out (``pushbench/_fanout.c``, :class:`pushbench.hub.Lane`).

The hub writes a publish to every plain-TCP WebSocket and SSE subscriber of the raw
stack whose transport has nothing buffered in one compiled call. These tests pin what
that must keep: every message once and in order on both transports of one topic
(with the fan-out on and off), a reader that stops reading gets the rest through its
transport in order (the fall-back path taken), a stream kept busy by the fan-out gets
no heartbeat, and a TLS connection never gets a lane.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import aiohttp
import pytest
from conftest import ServerProcess, StartServer
from websockets.asyncio.client import connect

from pushbench import hub
from pushbench.contract import decode
from pushbench.servers.raw.lanes import lane_for
from pushbench.sse import EventParser
from pushbench.wire import speedups

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(
        speedups.fanout() is None, reason="the compiled fan-out is not built, or is off"
    ),
]


def run(coro: Any, timeout: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def stats(server: ServerProcess) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(server.url("/stats")) as r:
        body: dict[str, Any] = await r.json()
        return body


async def ticker(server: ServerProcess, **query: object) -> None:
    params = {k: str(v) for k, v in query.items()}
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.url("/control/ticker"), params=params) as r,
    ):
        assert r.status == 200, await r.text()


async def sse_lines(server: ServerProcess, topic: str) -> tuple[asyncio.StreamReader, Any]:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(f"GET /sse?topic={topic} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return reader, writer


async def sse_seqs(reader: asyncio.StreamReader, count: int) -> tuple[list[int], int]:
    """Read events until ``count`` messages arrived → their seqs and the comments seen."""
    parser = EventParser()
    seqs: list[int] = []
    comments = 0
    while len(seqs) < count:
        chunk = await reader.read(65536)
        assert chunk, "stream ended early"
        comments += chunk.count(b"\n:")  # a comment line (the heartbeat)
        for event in parser.feed(chunk):
            if event.data:
                seqs.append(decode(event.data).seq)
    return seqs, comments


def test_send_each_lists_only_the_sockets_that_did_not_take_everything() -> None:
    send_each = speedups.fanout()
    assert send_each is not None
    pairs = [socket.socketpair() for _ in range(3)]
    full_a, full_b = socket.socketpair()
    full_a.setblocking(False)
    full_a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    try:
        while True:
            full_a.send(b"x" * 65536)
    except BlockingIOError:
        pass
    data = b"message-" * 16
    fds = [a.fileno() for a, _ in pairs] + [full_a.fileno(), 1_000_000]
    result = send_each(fds, data)
    assert [index for index, _ in result] == [3, 4]
    assert result[0][1] == 0  # a full socket took nothing (EAGAIN)
    assert result[1][1] < 0  # not a descriptor: -errno
    for _, b in pairs:
        assert b.recv(4096) == data
    for sock in (full_a, full_b, *[s for p in pairs for s in p]):
        sock.close()


@pytest.mark.parametrize("fanout", [True, False], ids=["fanout", "no-fanout"])
def test_every_message_once_and_in_order_on_ws_and_sse(
    server_factory: StartServer, fanout: bool
) -> None:
    env = {} if fanout else {"PUSHBENCH_NO_FANOUT": "1"}
    server = server_factory(env=env)
    count, topic = 400, "lanes"

    async def main() -> None:
        ws_clients = [
            await connect(server.ws_url(f"/ws?topic={topic}"), compression=None, proxy=None)
            for _ in range(4)
        ]
        sse = [await sse_lines(server, topic) for _ in range(4)]
        await ticker(server, topic=topic, rate=4000, count=count)  # catch-up batches too

        async def ws_seqs(ws: Any) -> list[int]:
            return [decode(await ws.recv()).seq for _ in range(count)]

        got = await asyncio.gather(
            *[ws_seqs(ws) for ws in ws_clients], *[sse_seqs(r, count) for r, _ in sse]
        )
        for seqs in got:
            seqs = seqs[0] if isinstance(seqs, tuple) else seqs
            assert seqs == list(range(1, count + 1))
        laned = (await stats(server))["fanout_deliveries"]
        if fanout:
            assert laned > count * 8 // 2  # most deliveries took the compiled fan-out
        else:
            assert laned == 0
        for ws in ws_clients:
            await ws.close()
        for _, writer in sse:
            writer.close()

    run(main())


def test_a_reader_that_stops_reading_gets_the_rest_in_order(server_factory: StartServer) -> None:
    server = server_factory()
    count, topic, size = 200, "stall", 60_000  # 12 MB: far more than the buffers hold

    async def main() -> None:
        # max_queue=1: the websockets client stops reading its socket while we sleep;
        # a fixed small receive buffer (no autotuning) makes the server's sends fall short
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.connect((server.host, server.port))
        ws = await connect(
            server.ws_url(f"/ws?topic={topic}"),
            compression=None,
            proxy=None,
            max_queue=1,
            max_size=None,
            sock=sock,
        )
        await ticker(server, topic=topic, rate=2000, count=count, size=size)
        await asyncio.sleep(1.0)  # by now the socket is full and the rest is queued
        seqs = [decode(await ws.recv()).seq for _ in range(count)]
        assert seqs == list(range(1, count + 1))
        laned = (await stats(server))["fanout_deliveries"]
        assert 0 < laned < count  # the first went through the lane, the rest did not
        await ws.close()

    run(main())


def test_a_stream_busy_through_the_lane_gets_no_heartbeat(server_factory: StartServer) -> None:
    server = server_factory("--heartbeat-interval", "0.2")
    topic = "busy"

    async def main() -> None:
        reader, writer = await sse_lines(server, topic)
        await ticker(server, topic=topic, rate=50, count=75)  # 1.5 s, one every 20 ms
        seqs, comments = await sse_seqs(reader, 75)
        assert seqs == list(range(1, 76))
        assert (await stats(server))["fanout_deliveries"] >= 70
        assert comments == 0, "the heartbeat timer took a busy stream for an idle one"
        writer.close()

    run(main())


class _Transport:
    def __init__(self, extra: dict[str, Any]) -> None:
        self.extra = extra

    def get_extra_info(self, name: str) -> Any:
        return self.extra.get(name)

    def is_closing(self) -> bool:
        return False


def test_tls_connections_get_no_lane() -> None:
    counters = type("C", (), {"messages_delivered": 0, "bytes_written": 0, "extra": {}})()
    with socket.socket() as sock:
        plain: Any = _Transport({"socket": sock})
        tls: Any = _Transport({"socket": sock, "sslcontext": ssl.create_default_context()})
        lane = lane_for(plain, "ws", lambda item: item.data, counters)
        assert isinstance(lane, hub.Lane) and lane.fd == sock.fileno()
        assert lane_for(tls, "ws", lambda item: item.data, counters) is None
