"""The reference WebSocket client: aiohttp's ``ws_connect``, as a typical application
would use it (no compression, automatic pongs).

Text messages are read as bytes (``decode_text=False``) and go to the same
:meth:`Recorder.record` as the light client's. The receive time is taken when
``receive()`` returns: aiohttp has parsed the frame and queued it by then, and
the messages of one TCP chunk are handed out one by one, so this client's
latency includes aiohttp's own per-message cost, which is what it is here to
show. Reconnects resume with ``since``, like the light client.
"""

from __future__ import annotations

import asyncio

import aiohttp

from .common import Client, SessionEnded, clock
from .tcpinfo import TcpMeter

__all__ = ["WsAiohttpClient", "run"]

_DATA = (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)
_ENDS = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)
_NORMAL_CLOSES = frozenset({1000, 1001})
CLOSE_TIMEOUT_S = 2.0  # for the server's Close reply when we stop


class WsAiohttpClient(Client):
    """``GET /ws?topic=`` with aiohttp's client."""

    async def session(self) -> None:
        since = self.stats.last_seq
        url = self.spec.url("/ws", since=since) if since else self.spec.url("/ws")
        meter = TcpMeter()
        t0 = clock()
        async with asyncio.timeout(self.spec.connect_timeout_s):
            ws = await self.http().ws_connect(
                url,
                # h25 (compression): offer permessage-deflate (15 window bits) on deflate cells
                compress=15 if self.spec.compression == "deflate" else 0,
                autoping=True,
                autoclose=True,
                decode_text=False,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT_S),
            )
        try:
            self.stats.established(clock() - t0)
            self.stats.start_meter(meter, ws.get_extra_info("socket"))
            async with self.publishing(lambda due_ns: ws.send_str(self.publish_text(due_ns))):
                await self._receive(ws)
        finally:
            self.stats.add_meter(meter)  # before our Close frame
            await ws.close()
        code = ws.close_code
        if code not in _NORMAL_CLOSES:
            raise SessionEnded(f"closed by the server with {code}")

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        record = self.recorder.record
        receive = ws.receive
        conn = self.conn_id
        stats = self.stats
        while True:
            msg = await receive()
            now = clock()
            kind = msg.type
            if kind in _DATA:
                data = msg.data
                seq = record(conn, data if isinstance(data, bytes) else data.encode(), now)
                stats.messages += 1
                if seq > stats.last_seq:
                    stats.last_seq = seq
            elif kind in _ENDS:
                return
            elif kind is aiohttp.WSMsgType.ERROR:
                raise msg.data


run = WsAiohttpClient.serve
