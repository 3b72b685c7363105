"""The raw stack's listening socket and the set of its open connections.

A connection registers itself here (:meth:`Listener.track`), swaps itself for
its WebSocket on an upgrade (:meth:`Listener.replace`) and leaves when its
transport is gone (:meth:`Listener.forget`), so that :meth:`Listener.shutdown`
can reach every one of them: Close 1001 to each WebSocket, an end to each held
request, then at most ``close_timeout`` of waiting before the rest is aborted.
The connections only need to be :class:`Conn`: this module imports neither of
their classes (they import it).
"""

from __future__ import annotations

import asyncio
import socket
import ssl as ssl_module
from collections.abc import Callable
from typing import Protocol

from pushbench.service import PushService
from pushbench.wire.deflate import DeflateParams

__all__ = ["Conn", "Listener"]


class Conn(Protocol):
    """What the listener needs of a connection: its transport, and a way to end it."""

    @property
    def transport(self) -> asyncio.Transport: ...

    def shutdown(self) -> None:
        """Start ending the connection gracefully (the server is shutting down)."""
        ...


class Listener:
    """One listening socket and its connections, for the stack's ``run`` to shut down.

    ``closing`` is set once shutdown has begun: handlers read it to answer
    at once instead of waiting, and to refuse new streams with 503.
    """

    def __init__(self, service: PushService, deflate: DeflateParams | None = None) -> None:
        self.service = service
        #: h25 (compression): what the server asks for when a client offers
        #: permessage-deflate; None: never negotiated (``--compression off``).
        self.deflate = deflate
        self.loop = asyncio.get_running_loop()
        self.closing = False
        self.connections: set[Conn] = set()
        self._all_gone: asyncio.Future[None] | None = None
        self._servers: list[asyncio.Server] = []

    async def listen(
        self,
        host: str,
        port: int,
        protocol_factory: Callable[[], asyncio.Protocol],
        ssl: ssl_module.SSLContext | None = None,
        sockets: tuple[socket.socket, ...] = (),
    ) -> int:
        """Listen on (host, port) → the port bound (real even when 0 was asked); with
        ``ssl``, every connection is TLS. ``sockets`` (h44, ``--reuse-port``): serve on
        these listening sockets instead, → the first one's port."""
        if not sockets:
            server = await self.loop.create_server(
                protocol_factory, host, port, backlog=2048, ssl=ssl
            )
            self._servers.append(server)
            return int(server.sockets[0].getsockname()[1])
        for sock in sockets:
            made = await self.loop.create_server(protocol_factory, sock=sock, ssl=ssl)
            self._servers.append(made)
        return int(sockets[0].getsockname()[1])

    def track(self, conn: Conn) -> None:
        self.connections.add(conn)

    def replace(self, old: Conn, new: Conn) -> None:
        self.connections.add(new)
        self.connections.discard(old)

    def forget(self, conn: Conn) -> None:
        self.connections.discard(conn)
        gone = self._all_gone
        if not self.connections and gone is not None and not gone.done():
            gone.set_result(None)

    async def shutdown(self) -> None:
        """Stop accepting, Close 1001 to every WebSocket, end held requests, and
        wait at most close_timeout for the peers before aborting what is left."""
        self.closing = True
        for server in self._servers:
            server.close()
        for conn in tuple(self.connections):
            conn.shutdown()
        if self.connections:
            self._all_gone = self.loop.create_future()
            try:
                await asyncio.wait_for(self._all_gone, self.service.config.close_timeout)
            except TimeoutError:
                for conn in tuple(self.connections):
                    conn.transport.abort()
                await asyncio.sleep(0)  # let the connection_lost callbacks run
        for server in self._servers:
            await server.wait_closed()
