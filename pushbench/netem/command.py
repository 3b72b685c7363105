"""``pushbench relay``: run the network-conditions relay until SIGINT or SIGTERM.

The runner starts it (through :mod:`pushbench.procs`) between a cell's clients and its
server when the cell's ``net`` is not ``loopback``; it is a process of its own so its CPU
is measured apart from the clients' and the server's. Once listening it prints exactly
one line, flushed, which the runner waits for::

    pushbench relay: net=wan listening on 127.0.0.1:40123

On a signal it stops listening, aborts the connections it relays and prints its
counters to stderr (the cell's log). Exit status 1: it could not listen; 2: a bad option.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys

from .profiles import PROFILES, profile
from .relay import Relay

__all__ = ["READY_PREFIX", "add_arguments", "run"]

READY_PREFIX = "pushbench relay:"


def _target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    relayed = [n for n, p in PROFILES.items() if p.relay]
    parser.add_argument("--target", type=_target, required=True, help="server HOST:PORT")
    parser.add_argument("--net", choices=relayed, required=True, help="network profile")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (loopback)")
    parser.add_argument("--port", type=int, default=0, help="listen port (0: a free one)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the jitter")
    parser.add_argument(
        "--stall-at-s", type=float, default=None, help="stall connections at (s after accept)"
    )
    parser.add_argument("--stall-s", type=float, default=0.0, help="how long a stall lasts")
    parser.add_argument(
        "--cut-at-s", type=float, default=None, help="cut connections at (s after accept)"
    )


def run(args: argparse.Namespace) -> int:
    shape = dataclasses.replace(
        profile(args.net), stall_at_s=args.stall_at_s, stall_s=args.stall_s, cut_at_s=args.cut_at_s
    )
    return asyncio.run(_serve(Relay(shape, args.target, args.seed), args.host, args.port))


async def _serve(relay: Relay, host: str, port: int) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        bound = await relay.start(host, port)
    except OSError as exc:
        print(f"{READY_PREFIX} error: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    print(f"{READY_PREFIX} net={relay.profile.name} listening on {host}:{bound}", flush=True)
    await stop.wait()
    await relay.close()
    print(f"{READY_PREFIX} stopped: {relay.counters}", file=sys.stderr)
    return 0
