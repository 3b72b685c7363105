"""Several processes of a stack on one port (issue 18 item 2, h44): SO_REUSEPORT.

One process may hold only as many connections as its open-file limit allows (the hard
limit here is 20,000 and cannot be raised without CAP_SYS_RESOURCE), so 100,000
connections on one box take several server processes. The way real Python deployments do
that on one machine (gunicorn's ``reuse_port``, uvicorn's ``--fd``) is to let every
process listen on the same address and port with ``SO_REUSEPORT``: the kernel hashes each
new connection's 4-tuple to one of the listening sockets, so the processes share the
connections without a balancer in front.

``pushbench serve --reuse-port`` binds two listening sockets before the stack starts
(:func:`bind_node`) and hands them over in :attr:`StackOptions.sockets
<pushbench.servers.base.StackOptions.sockets>`:

- the *shared* one on ``--host:--port`` with ``SO_REUSEPORT`` (the clients' address);
- the node's *own* one on ``--host`` and a free port, without it: a request there always
  reaches this process, which is how the runner posts the ticker to one node and reads
  each node's ``/stats`` (on the shared port a request lands on any of them).

The ready line names both (:func:`ready_line`); the runner reads the node's URL back
(``pushbench.runner.server``).
"""

from __future__ import annotations

import socket

from .base import StackOptions

__all__ = ["BACKLOG", "HELP", "bind_node", "listening_socket", "ready_line", "url"]

BACKLOG = 2048
HELP = (
    "listen on --host:--port with SO_REUSEPORT beside other processes of the stack (the "
    "kernel spreads the connections over them), and on a port of this process's own for "
    "control and /stats; the ready line names both (default: off)"
)


def listening_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A non-blocking TCP socket listening on ``host:port`` (0: a free port);
    ``reuse_port``: with ``SO_REUSEPORT``, so other processes of the same user may listen
    on the same address and port. ``proto`` is IPPROTO_TCP (asyncio sets TCP_NODELAY on
    accepted sockets only when it says so)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_node(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """(the shared ``SO_REUSEPORT`` socket on ``host:port``, this node's own socket on a
    free port of ``host``). OSError when the port is held by a socket without
    ``SO_REUSEPORT`` (or by another user)."""
    shared = listening_socket(host, port, reuse_port=True)
    try:
        own = listening_socket(host, 0)
    except BaseException:
        shared.close()
        raise
    return shared, own


def url(host: str, port: int, tls: bool = False) -> str:
    """``http://host:port`` (``https`` with ``tls``; an IPv6 literal in brackets)."""
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


def ready_line(stack: str, host: str, port: int, options: StackOptions) -> str:
    """``pushbench serve``'s ready line: ``pushbench serve: stack=raw listening on URL``;
    with ``--reuse-port`` (``options.sockets``) the shared port's URL stays where a reader
    of that line expects it, followed by the node's own."""
    tls = options.ssl is not None
    line = f"pushbench serve: stack={stack} listening on {url(host, port, tls)}"
    if not options.sockets:
        return line
    own = url(host, int(options.sockets[1].getsockname()[1]), tls)
    return f"{line} (SO_REUSEPORT; this node: {own})"
