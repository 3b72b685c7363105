"""Structural cost of the serving path: calls per delivered message, counted, not timed.

Starts a stack in this process (its ``STACK.run`` on the running loop), opens
``subscribers`` streaming connections (WebSocket or SSE) with clients that only
count bytes (asyncio Protocols: they create no tasks, futures or handles of their
own), or makes ``requests`` short/long polls, publishes ``messages`` messages one
per loop turn, and profiles that window with cProfile. The result is how many
times a few telling functions ran — JSON encodes, per-transport framing, task
creations, event-loop handles (``call_soon``: every task wake-up is one), timers
(``call_at``), ``wait_for`` / ``timeout`` — which does not depend on the machine's
load, unlike a CPU time.

Used by ``tests/test_fanout_tax.py`` to pin the structure; run as a script it
prints the table for every stack × transport (``python tests/fanout_probe.py``).
"""

from __future__ import annotations

import asyncio
import cProfile
import importlib
import pstats
import sys
from collections.abc import Callable
from dataclasses import dataclass

from pushbench.hub import Hub
from pushbench.servers.base import StackOptions
from pushbench.service import PushService, ServerConfig

#: (label, file suffix, function name) of what is counted; a label sums its rows.
WATCHED: tuple[tuple[str, str, str], ...] = (
    ("json_encode", "pushbench/contract.py", "encode_fields"),
    ("json_dumps", "json/__init__.py", "dumps"),
    ("sse_event", "pushbench/sse.py", "event"),
    ("ws_frame", "wire/frames.py", "encode_frame"),
    ("create_task", "asyncio/base_events.py", "create_task"),
    ("call_soon", "asyncio/base_events.py", "call_soon"),
    ("call_at", "asyncio/base_events.py", "call_at"),
    ("wait_for", "asyncio/tasks.py", "wait_for"),
    ("timeout", "asyncio/timeouts.py", "timeout"),
    ("next_batch", "pushbench/hub.py", "next_batch"),
    ("event_set", "asyncio/locks.py", "set"),
)


@dataclass(frozen=True)
class Probe:
    """Counts of :data:`WATCHED` over a window, and how many messages were delivered."""

    counts: dict[str, int]
    published: int
    delivered: int  # messages written to subscribers (the service's counter)

    def per_delivery(self, name: str) -> float:
        return self.counts.get(name, 0) / max(1, self.delivered)

    def per_message(self, name: str) -> float:
        return self.counts.get(name, 0) / max(1, self.published)


class _Sink(asyncio.Protocol):
    """A client that sends its request and then only counts what arrives."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)


def _request(transport: str, topic: str) -> bytes:
    if transport == "ws":
        return (
            f"GET /ws?topic={topic} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    return f"GET /sse?topic={topic} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def _counts(profile: cProfile.Profile) -> dict[str, int]:
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    out = {label: 0 for label, _, _ in WATCHED}
    for (filename, _line, func), (_cc, ncalls, *_rest) in stats.items():
        for label, suffix, name in WATCHED:
            if func == name and filename.endswith(suffix):
                out[label] += ncalls
    return out


async def _until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise TimeoutError("probe: condition not reached")
        await asyncio.sleep(0.005)


async def probe_stream(
    stack: str, transport: str, *, subscribers: int = 10, messages: int = 100
) -> Probe:
    """Fan ``messages`` messages out to ``subscribers`` streaming connections of ``stack``."""
    config = ServerConfig(ping_interval=0, heartbeat_interval=60.0)
    service = PushService(Hub(), config)
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    module = importlib.import_module(f"pushbench.servers.{stack}")
    loop_name = "asyncio"
    server = asyncio.create_task(
        module.STACK.run(service, "127.0.0.1", 0, ready.set_result, stop, StackOptions(loop_name))
    )
    port = await ready
    loop = asyncio.get_running_loop()
    sinks: list[_Sink] = []
    try:
        for _ in range(subscribers):
            _, sink = await loop.create_connection(
                lambda: _Sink(_request(transport, "probe")), "127.0.0.1", port
            )
            sinks.append(sink)
        await _until(lambda: service.hub.stats.subscribers == subscribers)
        await asyncio.sleep(0.05)  # handshakes, preludes and headers out of the window
        base = service.stats.messages_delivered
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(messages):
            await service.hub.publish("probe", "x" * 100)
            await asyncio.sleep(0)  # one message per loop turn, as a paced ticker
        await _until(lambda: service.stats.messages_delivered - base >= messages * subscribers)
        profile.disable()
        delivered = service.stats.messages_delivered - base
    finally:
        for sink in sinks:
            if sink.transport is not None:
                sink.transport.abort()
        stop.set()
        await server
    return Probe(_counts(profile), messages, delivered)


async def probe_polls(stack: str, kind: str, *, requests: int = 50) -> Probe:
    """``requests`` polls in a row on one keep-alive connection: short polls of a topic
    with one message, or long polls each answered by a message published while held."""
    service = PushService(Hub(), ServerConfig(ping_interval=0))
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    module = importlib.import_module(f"pushbench.servers.{stack}")
    server = asyncio.create_task(
        module.STACK.run(service, "127.0.0.1", 0, ready.set_result, stop, StackOptions())
    )
    port = await ready
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def poll(since: int, timeout: float) -> None:
        query = f"topic=probe&since={since}&timeout={timeout:g}"
        writer.write(f"GET /poll?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)

    try:
        await service.hub.publish("probe", "x" * 100)
        await poll(0, 0)  # the connection's first request out of the window
        profile = cProfile.Profile()
        profile.enable()
        for i in range(requests):
            if kind == "shortpoll":
                await poll(0, 0)
            else:
                held = asyncio.ensure_future(poll(i + 1, 5))
                await _until(lambda: service.hub.stats.subscribers == 1, 5.0)
                await service.hub.publish("probe", "x" * 100)
                await held
        profile.disable()
    finally:
        writer.close()
        stop.set()
        await server
    counts = _counts(profile)
    if kind == "longpoll":  # the probe's own task per held request is not the server's
        counts["create_task"] -= requests
    return Probe(counts, requests, requests)


def main() -> None:
    rows = [
        ("raw", "ws"),
        ("raw", "sse"),
        ("aiohttp_stack", "ws"),
        ("aiohttp_stack", "sse"),
        ("starlette_stack", "ws"),
        ("starlette_stack", "sse"),
    ]
    labels = [label for label, _, _ in WATCHED]
    print("stack/transport".ljust(22) + "".join(f"{lb:>12}" for lb in labels))
    for stack, transport in rows:
        if len(sys.argv) > 1 and stack not in sys.argv[1:]:
            continue
        probe = asyncio.run(probe_stream(stack, transport))
        cells = "".join(f"{probe.per_delivery(lb):12.3f}" for lb in labels)
        print(f"{stack}/{transport}".ljust(22) + cells)
    print("(calls per delivered message: 10 subscribers x 100 messages, one per loop turn)")
    for stack in ("raw", "aiohttp_stack", "starlette_stack"):
        if len(sys.argv) > 1 and stack not in sys.argv[1:]:
            continue
        for kind in ("shortpoll", "longpoll"):
            probe = asyncio.run(probe_polls(stack, kind))
            cells = "".join(f"{probe.per_message(lb):12.3f}" for lb in labels)
            print(f"{stack}/{kind}".ljust(22) + cells)
    print("(polls: calls per request, 50 requests on one keep-alive connection)")


if __name__ == "__main__":
    main()
