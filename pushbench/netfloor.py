"""The kernel's floor under every CPU-per-message figure: what loopback TCP itself costs.

Why: a server's "CPU per message" and a client's are mostly the kernel's on loopback.
Sending one small segment runs the sender's TCP output *and* the receiver's TCP input
(the loopback device hands the packet over in the sender's context); receiving it runs
``epoll_wait``, ``recv`` and the ACK that ``recv`` sends, whose input runs in the
receiver's context. How much that costs depends on the machine far more than on Python:
on the project's VM it was 2.6 µs per send one week and 8 µs on another host. Without
the floor beside them, a reader cannot tell how much of a figure is the stack's and how
much no code above the kernel could remove.

How: one process, pinned like a server, listens on loopback and starts a receiver
(``python -m pushbench.netfloor --receive PORT``, through :mod:`pushbench.procs`),
pinned like the clients, which opens :data:`CONNECTIONS` TCP connections to it. Every
``1 / rate`` s the sender writes one ``segment``-byte segment to each connection with
the raw stack's compiled fan-out (``_fanout.send_each``: one ``send()`` per connection,
the GIL released); the receiver reads them with a compiled epoll loop
(``_netfloor.drain``). Each side's CPU time over its window, divided by the segments it
handled, is its floor: the least CPU a server can spend to deliver one message to one
connection at that load, and the least a client can spend to take it in. Neither
per-segment path runs Python; where the helpers are not built the probe runs the same
loops in Python, says so (``compiled`` false), and its figures are then upper bounds.

The default load is the floor scenario's (100 connections × 1,000 segments/s) and the
segment a WebSocket frame of a 100-byte payload in pushbench's envelope (175 B). A run
measures it once before its first cell (``metadata.json`` ``kernel_floor``); ``pushbench
net-floor`` measures it alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import socket
import sys
import time
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

from pushbench import procs

__all__ = [
    "CONNECTIONS",
    "RATE",
    "SECONDS",
    "SEGMENT",
    "KernelFloor",
    "main",
    "measure",
    "probe",
    "receive",
]

CONNECTIONS = 100
RATE = 1000  # segments per second to each connection
SEGMENT = 175  # bytes: 2-byte WebSocket header + 100 B payload + 73 B envelope
SECONDS = 2.0
_SETTLE_S = 0.1  # after the receiver is ready, before the first tick
_TAIL_S = 0.3  # the receiver keeps reading this long after the sender's window
_START_S = 10.0  # for the receiver to connect, and to end after its window

_fanout: ModuleType | None
_drain: ModuleType | None
try:
    from pushbench import _fanout
except ImportError:  # pragma: no cover - the helper is optional
    _fanout = None
try:
    from pushbench import _netfloor as _drain
except ImportError:  # pragma: no cover - the helper is optional
    _drain = None


@dataclass(frozen=True)
class KernelFloor:
    """One measurement of the loopback floor (``metadata.json`` ``kernel_floor``)."""

    connections: int
    rate: int  # segments per second to each connection
    segment_bytes: int
    seconds: float  # the sender's window
    sent: int  # segments sent in full
    received: int  # segments received (bytes // segment_bytes)
    send_ns: float  # sender CPU per segment
    recv_ns: float  # receiver CPU per segment
    sender_cpu_fraction: float  # of one core, over the sender's window
    compiled: bool  # both per-segment loops compiled (else Python: upper bounds)
    server_cpu: int | None  # where the sender ran
    client_cpu: int | None  # where the receiver ran

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KernelFloor:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})

    def line(self) -> str:
        how = "compiled loops" if self.compiled else "Python loops (upper bounds)"
        return (
            f"loopback TCP floor: {self.segment_bytes} B segments, {self.connections} "
            f"connections × {self.rate:,}/s for {self.seconds:g} s ({how}): "
            f"send {self.send_ns / 1000:.2f} µs of CPU per segment (CPU {self.server_cpu}, "
            f"{self.sender_cpu_fraction:.0%} busy), receive {self.recv_ns / 1000:.2f} µs "
            f"(CPU {self.client_cpu}); {self.received:,} of {self.sent:,} received"
        )


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _accept(listener: socket.socket, n: int) -> list[socket.socket]:
    """The ``n`` connections the receiver opens, Nagle off (a server's setting)."""
    listener.settimeout(_START_S)
    out = []
    for _ in range(n):
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        out.append(sock)
    return out


def _drain_py(socks: list[socket.socket], seconds: float) -> tuple[int, int, int]:
    """:func:`_netfloor.drain` in Python, where it is not built."""
    total = reads = wakeups = 0
    deadline = time.monotonic() + seconds
    with selectors.DefaultSelector() as sel:
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            ready = sel.select(left)
            wakeups += bool(ready)
            for key, _ in ready:
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(sock)
                    continue
                total += len(data)
                reads += 1
    return total, reads, wakeups


def receive(port: int, connections: int, seconds: float, cpu: int | None, compiled: bool) -> int:
    """The receiver (``--receive PORT``): pin, connect, say ``ready``, read until the
    deadline, print its figures as one JSON line: [cpu_ns, bytes, reads, wakeups]."""
    _pin(cpu)
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
    for sock in socks:
        sock.setblocking(False)
    print("ready", flush=True)
    t0 = time.process_time_ns()
    if compiled and _drain is not None:
        nbytes, reads, wakeups = _drain.drain([s.fileno() for s in socks], seconds)
    else:
        nbytes, reads, wakeups = _drain_py(socks, seconds)
    cpu_ns = time.process_time_ns() - t0
    print(json.dumps([cpu_ns, nbytes, reads, wakeups]), flush=True)
    for sock in socks:
        sock.close()
    return 0


def _send(socks: list[socket.socket], data: bytes, rate: int, seconds: float) -> int:
    """Tick ``rate`` times a second for ``seconds``, a segment to every socket each tick
    → segments sent in full (a socket that did not take one whole is not counted)."""
    fds = [s.fileno() for s in socks]
    sent, period = 0, 1.0 / rate
    start = nxt = time.monotonic()
    while nxt - start < seconds:
        if _fanout is not None:
            sent += len(fds) - len(_fanout.send_each(fds, data))
        else:
            for s in socks:
                with contextlib.suppress(BlockingIOError):
                    sent += s.send(data) == len(data)
        nxt += period
        pause = nxt - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    return sent


def _check(connections: int, rate: int, segment: int, seconds: float) -> None:
    if connections < 1 or rate < 1 or segment < 1 or not seconds > 0:
        raise ValueError("--connections, --rate and --segment must be ≥ 1 and --seconds > 0")


def probe(
    *,
    connections: int = CONNECTIONS,
    rate: int = RATE,
    segment: int = SEGMENT,
    seconds: float = SECONDS,
    server_cpu: int | None = None,
    client_cpu: int | None = None,
) -> KernelFloor:
    """Measure the floor in this process (the sender) and a receiver process.

    Pins this process to ``server_cpu``: call it in a process of its own (:func:`measure`).
    The receiver is stopped on every way out (killed if it outlives its window).
    """
    _check(connections, rate, segment, seconds)
    compiled = _fanout is not None and _drain is not None
    window = seconds + _SETTLE_S + _TAIL_S
    argv = [sys.executable, "-m", "pushbench.netfloor", f"--connections={connections}"]
    argv += [f"--seconds={window}", f"--python={int(not compiled)}"]
    if client_cpu is not None:
        argv.append(f"--client-cpu={client_cpu}")
    _pin(server_cpu)
    rd, wr = os.pipe()
    with socket.create_server(("127.0.0.1", 0), backlog=connections) as listener:
        port = listener.getsockname()[1]
        proc = procs.spawn([*argv, f"--receive={port}"], output=wr, die_with_parent=True)
        os.close(wr)
        servers: list[socket.socket] = []
        try:
            with os.fdopen(rd, "r") as said:
                servers = _accept(listener, connections)
                if (line := said.readline()).strip() != "ready":
                    raise RuntimeError(f"the receiver did not start: {line.strip()!r}")
                time.sleep(_SETTLE_S)
                t0, c0 = time.monotonic(), time.process_time_ns()
                sent = _send(servers, b"x" * segment, rate, seconds)
                send_cpu, wall = time.process_time_ns() - c0, time.monotonic() - t0
                line = said.readline()
            proc.wait(timeout=_START_S)
        finally:
            for sock in servers:
                sock.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    try:
        recv_cpu, nbytes, _, _ = json.loads(line)
    except ValueError:
        raise RuntimeError(f"the receiver failed: {line.strip()!r}") from None
    received = nbytes // segment
    return KernelFloor(
        connections=connections,
        rate=rate,
        segment_bytes=segment,
        seconds=seconds,
        sent=sent,
        received=received,
        send_ns=send_cpu / sent if sent else float("nan"),
        recv_ns=recv_cpu / received if received else float("nan"),
        sender_cpu_fraction=send_cpu / 1e9 / wall if wall > 0 else float("nan"),
        compiled=compiled,
        server_cpu=server_cpu,
        client_cpu=client_cpu,
    )


def measure(
    server_cpu: int | None,
    client_cpu: int | None,
    *,
    seconds: float = SECONDS,
    connections: int = CONNECTIONS,
    rate: int = RATE,
    segment: int = SEGMENT,
) -> KernelFloor:
    """:func:`probe` in a process of its own (the caller's affinity is left alone)."""
    _check(connections, rate, segment, seconds)
    argv = [
        sys.executable,
        "-m",
        "pushbench.netfloor",
        f"--seconds={seconds}",
        f"--connections={connections}",
        f"--rate={rate}",
        f"--segment={segment}",
        "--json",
    ]
    if server_cpu is not None:
        argv.append(f"--server-cpu={server_cpu}")
    if client_cpu is not None:
        argv.append(f"--client-cpu={client_cpu}")
    status, out, err = procs.run_captured(argv, timeout=seconds + 2 * _START_S)
    if status != 0:
        why = err.strip().splitlines()[-1:] or [f"exit {status}"]
        raise RuntimeError(f"the loopback floor probe failed: {why[0]}")
    return KernelFloor.from_dict(json.loads(out))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=SECONDS, help="the sender's window")
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    parser.add_argument("--rate", type=int, default=RATE, help="segments/s to each connection")
    parser.add_argument("--segment", type=int, default=SEGMENT, help="bytes per segment")
    parser.add_argument("--server-cpu", type=int, help="the sender's CPU")
    parser.add_argument("--client-cpu", type=int, help="the receiver's CPU")
    parser.add_argument("--json", action="store_true", help="print the record as JSON")


def _add_receiver_arguments(parser: argparse.ArgumentParser) -> None:
    """The receiver's own options (the probe starts it; not for people)."""
    parser.add_argument("--receive", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--python", type=int, default=0, help=argparse.SUPPRESS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pushbench.netfloor", description=__doc__)
    add_arguments(parser)
    _add_receiver_arguments(parser)
    args = parser.parse_args(argv)
    if args.receive is not None:
        return receive(
            args.receive, args.connections, args.seconds, args.client_cpu, not args.python
        )
    try:
        floor = probe(
            connections=args.connections,
            rate=args.rate,
            segment=args.segment,
            seconds=args.seconds,
            server_cpu=args.server_cpu,
            client_cpu=args.client_cpu,
        )
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"pushbench net-floor: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(floor.as_dict()) if args.json else floor.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
