"""Close a dropped slow consumer's WebSocket with 1013, and end its TCP in bounded time.

A subscriber the hub drops for falling behind is usually a peer that stopped
reading: the library's own close (aiohttp's ``ws.close``, uvicorn's
``websocket.close``) first waits for the output buffer to drain, which such a
peer never lets happen, so the Close never goes out and the socket stays open
(uvicorn: for good; ending TCP with ``abort`` instead loses the 1013 the
contract promises). :func:`close_slow_consumer` appends the Close frame to the
transport's buffer — after what is already queued, so a peer that reads again
gets its backlog and then the 1013 — and aborts the transport if it is still
open ``timeout`` seconds later. The library's own close that follows may add
a second Close frame; a peer stops reading frames at the first.
"""

from __future__ import annotations

import asyncio

from pushbench.wire import CloseCode, Opcode, encode_frame
from pushbench.wire.frames import encode_close_payload

__all__ = ["SLOW_CONSUMER_FRAME", "close_slow_consumer"]

SLOW_CONSUMER_FRAME = encode_frame(
    Opcode.CLOSE, encode_close_payload(CloseCode.TRY_AGAIN_LATER, "slow consumer")
)


def close_slow_consumer(transport: asyncio.BaseTransport | None, timeout: float) -> None:
    """Queue a 1013 Close on ``transport`` now and abort it after ``timeout`` s if still open."""
    if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
        return
    transport.write(SLOW_CONSUMER_FRAME)
    # abort() on a transport that has closed meanwhile does nothing.
    asyncio.get_running_loop().call_later(timeout, transport.abort)
