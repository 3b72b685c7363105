"""``pushbench serve``: run one server stack until SIGINT or SIGTERM.

Stacks are a table, name → module; each module exposes
``async start(settings, host, port) -> RunningServer``. Adding aiohttp or
Starlette is one row here plus its module. Once listening, exactly one line
goes to stdout (flushed), which is what the runner and the tests wait for::

    pushbench serve: stack=raw listening on http://127.0.0.1:8765

A signal starts a graceful shutdown: Close 1001 to every WebSocket, at most
``--close-timeout`` seconds for peers to answer, then exit status 0.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from . import Settings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from . import RunningServer

    StartFn = Callable[[Settings, str, int], Awaitable[RunningServer]]

# stack name → module exposing ``start``; imported only for the chosen stack.
STACKS: dict[str, str] = {
    "raw": "servers.raw",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = Settings()
    parser.add_argument("--stack", choices=sorted(STACKS), default="raw", help="server stack")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port to bind; 0 picks a free one (default 8765)"
    )
    parser.add_argument(
        "--ping-interval",
        type=float,
        default=d.ping_interval,
        metavar="S",
        help="seconds between keepalive pings, 0 = off (default %(default)s)",
    )
    parser.add_argument(
        "--ping-timeout",
        type=float,
        default=d.ping_timeout,
        metavar="S",
        help="a peer silent this long after a ping is aborted (default %(default)s)",
    )
    parser.add_argument(
        "--close-timeout",
        type=float,
        default=d.close_timeout,
        metavar="S",
        help="wait this long for the peer's Close, then abort (default %(default)s)",
    )
    parser.add_argument(
        "--max-message-size",
        type=int,
        default=d.max_message_size,
        metavar="BYTES",
        help="larger incoming messages are refused with close 1009 (default %(default)s)",
    )
    parser.add_argument(
        "--write-buffer-limit",
        type=int,
        default=d.write_buffer_limit,
        metavar="BYTES",
        help="a broadcast past this many buffered bytes drops the client with 1013 "
        "(default %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    import asyncio
    import importlib

    try:
        settings = Settings(
            ping_interval=args.ping_interval,
            ping_timeout=args.ping_timeout,
            close_timeout=args.close_timeout,
            max_message_size=args.max_message_size,
            write_buffer_limit=args.write_buffer_limit,
        )
    except ValueError as exc:
        print(f"pushbench serve: error: {exc}", file=sys.stderr)
        return 2
    start: StartFn = importlib.import_module(STACKS[args.stack]).start
    return asyncio.run(_serve(args.stack, start, settings, args.host, args.port))


async def _serve(name: str, start: StartFn, settings: Settings, host: str, port: int) -> int:
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        server = await start(settings, host, port)
    except OSError as exc:  # typically: the port is taken
        print(f"pushbench serve: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    bound_host, bound_port = server.address
    if ":" in bound_host:  # IPv6 literal: brackets in a URL
        bound_host = f"[{bound_host}]"
    url = f"http://{bound_host}:{bound_port}"
    print(f"pushbench serve: stack={name} listening on {url}", flush=True)
    await stop.wait()
    await server.shutdown()
    return 0
