"""The Starlette stack's shared-frame path on uvicorn's websockets-sansio connection.

:func:`pushbench.servers.uvicorn_ws.shared_frame_sender` writes one frame per message,
made once, where uvicorn would frame the text again for each subscriber: these tests pin
that the bytes are the ones websockets itself would write, and that it writes only when
uvicorn would write at once (else None: the message takes the queue and ``send_text``).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from conftest import StartServer
from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.protocol import State
from websockets.server import ServerProtocol

from pushbench.contract import decode
from pushbench.hub import Item
from pushbench.servers.uvicorn_ws import (
    PROTOCOL_SCOPE_KEY,
    SHARED_FRAME_COUNTER,
    shared_frame_sender,
)


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing


def _protocol() -> Any:
    conn = ServerProtocol()
    conn.state = State.OPEN
    writable = asyncio.Event()
    writable.set()
    return SimpleNamespace(
        conn=conn, transport=_Transport(), writable=writable, close_sent=False, disconnected=False
    )


def _websockets_bytes(text: str) -> bytes:
    """What uvicorn's ``websocket.send`` writes for ``text``: websockets' own frame."""
    conn = ServerProtocol()
    conn.state = State.OPEN
    conn.send_text(text.encode())
    return b"".join(conn.data_to_send())


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 70_000])
def test_the_shared_frame_is_what_websockets_writes(size: int) -> None:
    protocol = _protocol()
    counters: dict[str, int] = {}
    send = shared_frame_sender({PROTOCOL_SCOPE_KEY: protocol}, counters)
    assert send is not None
    text = "é" * (size // 2) + "x" * (size % 2)
    item = Item("t", 1, text.encode())
    assert send([item]) == len(item.data)
    assert protocol.transport.written == [_websockets_bytes(text)]
    assert counters == {SHARED_FRAME_COUNTER: 1}


def test_a_burst_is_one_write_of_every_frame() -> None:
    protocol = _protocol()
    counters: dict[str, int] = {}
    send = shared_frame_sender({PROTOCOL_SCOPE_KEY: protocol}, counters)
    assert send is not None
    items = [Item("t", i, b'{"s":%d}' % i) for i in (1, 2, 3)]
    assert send(items) == sum(len(i.data) for i in items)
    assert counters == {SHARED_FRAME_COUNTER: 3}
    want = b"".join(_websockets_bytes(i.data.decode()) for i in items)
    assert protocol.transport.written == [want]


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.writable.clear(),  # transport paused (uvicorn's send would wait)
        lambda p: setattr(p, "close_sent", True),
        lambda p: setattr(p, "disconnected", True),
        lambda p: setattr(p.conn, "state", State.CLOSING),  # the client's Close came in
        lambda p: setattr(p.transport, "closing", True),
    ],
    ids=["paused", "close-sent", "disconnected", "closing-state", "transport-closing"],
)
def test_nothing_is_written_when_uvicorn_would_not_write_at_once(change: Any) -> None:
    protocol = _protocol()
    counters: dict[str, int] = {}
    send = shared_frame_sender({PROTOCOL_SCOPE_KEY: protocol}, counters)
    assert send is not None
    change(protocol)
    assert send([Item("t", 1, b"x")]) is None
    assert protocol.transport.written == []
    assert counters == {SHARED_FRAME_COUNTER: 0}


def test_no_sender_for_other_implementations_or_with_an_extension() -> None:
    assert shared_frame_sender({}, {}) is None  # wsproto, legacy websockets: no protocol key
    protocol = _protocol()
    protocol.conn.extensions = [PerMessageDeflate(False, False, 15, 15)]
    assert shared_frame_sender({PROTOCOL_SCOPE_KEY: protocol}, {}) is None


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("compression", "shared"), [(None, True), ("deflate", False)])
def test_a_starlette_server_sends_the_shared_frames(
    server_factory: StartServer, compression: str | None, shared: bool
) -> None:
    """End to end on the default ``websockets-sansio``: every message once and in order,
    through the shared frames on a plain connection; with permessage-deflate (the server
    started with ``--compression deflate``, the client offering it) none goes that way."""
    args = ("--compression", "deflate") if compression else ()
    server = server_factory(*args, stack="starlette")
    count = 50

    async def main() -> dict[str, Any]:
        url = f"ws://{server.host}:{server.port}/ws?topic=shared"
        async with connect(url, compression=compression) as ws, aiohttp.ClientSession() as http:
            query = {"topic": "shared", "rate": "500", "count": str(count)}
            async with http.post(server.url("/control/ticker"), params=query) as r:
                assert r.status == 200, await r.text()
            seqs = [decode(await ws.recv()).seq for _ in range(count)]
            assert seqs == list(range(1, count + 1))
            async with http.get(server.url("/stats")) as r:
                body: dict[str, Any] = await r.json()
                return body

    stats = asyncio.run(asyncio.wait_for(main(), 30))
    assert stats.get(SHARED_FRAME_COUNTER, 0) == (count if shared else 0)
