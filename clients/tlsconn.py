"""Opening a light client's TCP connection, with TLS when the cell asks for it, timing each
phase: TCP connect, then the TLS handshake (issue 12 item 2).

A spec whose base URL is ``https://`` carries the run's CA (``WorkerSpec.ca_file``);
:func:`context_for` builds one verifying client context from it per process
(:func:`pushbench.tls.client_context`: the certificate and the name are checked, never
skipped), shared by every connection and by the aiohttp sessions of the same worker.

:func:`connect` opens a plaintext connection exactly as before (``create_connection`` to
host and port). A connection from a chosen source address (issue 18 item 2:
``WorkerSpec.source_addresses``), a TLS one and one metered from before its connect (the
light publisher's) are opened in two steps, so the phases can be told apart: the TCP
connect on a socket of our own (``sock_connect``), its end read from the clock, then
``create_connection(sock=…, ssl=…)``, which runs the handshake and calls the protocol's
``connection_made`` when it is done. The protocol reads the clock there (:class:`Made`);
the rest of the connect time (to the 101 or the first response) is the HTTP part, as in
a plaintext cell.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pushbench.schema.worker import WorkerSpec
from pushbench.tls import client_context

__all__ = [
    "Made",
    "Phases",
    "bind_source",
    "connect",
    "context_for",
    "numeric_address",
    "resolve",
]


class Made(Protocol):
    """A protocol that reads the clock in ``connection_made`` (``made_ns``, 0 before)."""

    made_ns: int


@dataclass(frozen=True)
class Phases:
    """Nanoseconds of a connect's phases: TCP (start → established) and TLS (established
    → handshake done; -1 for a plaintext connection)."""

    tcp_ns: int
    tls_ns: int = -1


@functools.cache
def _context(ca_file: str) -> ssl.SSLContext:
    return client_context(Path(ca_file))


def context_for(spec: WorkerSpec) -> ssl.SSLContext | None:
    """The verifying client context of a TLS spec (one per process), None for plaintext."""
    return None if spec.ca_file is None else _context(spec.ca_file)


async def connect(
    factory: Callable[[], asyncio.BaseProtocol],
    protocol: Made,
    host: str,
    port: int,
    context: ssl.SSLContext | None,
    t0: int,
    clock: Callable[[], int],
    source: str | None = None,
    on_socket: Callable[[socket.socket], None] | None = None,
) -> Phases:
    """Connect ``factory``'s protocol (``protocol``, the one it returns) to host:port, with
    TLS under ``context`` → the phases, counted from ``t0`` (a ``clock`` reading taken
    before). ``source``: the local address to connect from (issue 18 item 2: past the
    ephemeral ports of one source/destination pair), its port chosen at connect.
    ``on_socket``: called with the socket before its connect (a meter that counts every
    byte, the handshakes' included: the light publisher's)."""
    loop = asyncio.get_running_loop()
    if context is None and source is None and on_socket is None:
        await loop.create_connection(factory, host, port)
        return Phases(protocol.made_ns - t0)
    family, addr = numeric_address(host, port) or await resolve(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setblocking(False)
        if source is not None:
            bind_source(sock, source)
        if on_socket is not None:
            on_socket(sock)
        await loop.sock_connect(sock, addr)
        tcp_done = clock()
        if context is None:
            await loop.create_connection(factory, sock=sock)
            return Phases(tcp_done - t0)
        await loop.create_connection(factory, sock=sock, ssl=context, server_hostname=host)
    except BaseException:
        sock.close()
        raise
    return Phases(tcp_done - t0, protocol.made_ns - tcp_done)


def numeric_address(host: str, port: int) -> tuple[int, tuple[str, int]] | None:
    """An address literal's family and address (the usual ``127.0.0.1``), else None:
    no resolver thread for what needs no resolving."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family, (host, port)
    return None


async def resolve(host: str, port: int) -> tuple[int, tuple[str, int]]:
    """A host name's first address for a TCP connect (asyncio's resolver thread)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, _, _, _, addr = infos[0]
    return family, (str(addr[0]), int(addr[1]))


#: Linux's IP_BIND_ADDRESS_NO_PORT (not in every Python's socket module).
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def bind_source(sock: socket.socket, source: str) -> None:
    """Bind ``sock`` to ``source`` with the port left to ``connect`` (IP_BIND_ADDRESS_NO_PORT
    where the OS has it): the kernel then picks a port free for the whole four-tuple, so
    each source address gets its own ~28,000 ephemeral ports towards the server."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    sock.bind((source, 0))
