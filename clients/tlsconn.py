"""Opening a light client's TCP connection, with TLS when the cell asks for it, timing each
phase: TCP connect, then the TLS handshake (issue 12 item 2).

A spec whose base URL is ``https://`` carries the run's CA (``WorkerSpec.ca_file``);
:func:`context_for` builds one verifying client context from it per process
(:func:`pushbench.tls.client_context`: the certificate and the name are checked, never
skipped), shared by every connection and by the aiohttp sessions of the same worker.

:func:`connect` opens a plaintext connection exactly as before (``create_connection``
to host and port). A TLS one is opened in two steps so the phases can be told apart: the
TCP connect on a socket of our own (``sock_connect``), its end read from the clock, then
``create_connection(sock=…, ssl=…)``, which runs the handshake and calls the
protocol's ``connection_made`` when it is done. The protocol reads the clock there
(:class:`Made`); the rest of the connect time (to the 101 or the first response) is the
HTTP part, as in a plaintext cell.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pushbench.schema.worker import WorkerSpec
from pushbench.tls import client_context

__all__ = ["Made", "Phases", "connect", "context_for"]


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
) -> Phases:
    """Connect ``factory``'s protocol (``protocol``, the one it returns) to host:port, with
    TLS under ``context`` → the phases, counted from ``t0`` (a ``clock`` reading taken
    before)."""
    loop = asyncio.get_running_loop()
    if context is None:
        await loop.create_connection(factory, host, port)
        return Phases(protocol.made_ns - t0)
    family, kind, proto, _, addr = (await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))[0]
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, addr)
        tcp_done = clock()
        await loop.create_connection(factory, sock=sock, ssl=context, server_hostname=host)
    except BaseException:
        sock.close()
        raise
    return Phases(tcp_done - t0, protocol.made_ns - tcp_done)
