"""The light publish path (``pushbench.clients.publisher``): ``POST /publish`` without aiohttp.

- Each publish is the prepared request with its scheduled time, on a keep-alive
  connection reused while the server keeps it; a connection the server closes is
  replaced, a non-200 answer raises :class:`SessionEnded`, and every byte of every
  connection is counted by the kernel meter, exactly as written and read.
- A light SSE client's chat publishes take this path (not aiohttp's).

Everything binds 127.0.0.1 port 0 and stops what it started.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from pushbench.clients.common import ConnStats, SessionEnded
from pushbench.clients.http_light import LightHttpClient
from pushbench.clients.publisher import LightPublisher, publish_request
from pushbench.clients.recorder import Recorder
from pushbench.clients.sse import SseClient
from pushbench.schema.worker import WorkerSpec

pytestmark = pytest.mark.timeout(60)


def arun(coro: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner() as runner:
        runner.run(coro)


def _spec(base_url: str, rate: float = 10.0) -> WorkerSpec:
    return WorkerSpec.from_dict(
        {
            "transport": "sse",
            "base_url": base_url,
            "topic": "chat",
            "connections": 1,
            "capacity": 100,
            "publish": {"rate": rate, "payload_size": 5},
        }
    )


@dataclass
class Scripted:
    """A publish server answering by script: per request, (status, close after it)."""

    script: list[tuple[int, bool]]
    scheds: list[int] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    connections: int = 0
    read: int = 0  # bytes the server read, over every connection
    written: int = 0

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes = b""
    ) -> None:
        """Answer requests by script (``head``: the first request's, already read)."""
        self.connections += 1
        try:
            while self.script:
                head = head or await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                length = next(
                    int(v) for n, _, v in (x.partition(":") for x in lines[1:])
                    if n.lower() == "content-length"
                )  # fmt: skip
                body = await reader.readexactly(length)
                self.read += len(head) + length
                query = parse_qs(urlsplit(lines[0].split()[1]).query)
                self.scheds.append(int(query["sched"][0]))
                self.bodies.append(body)
                status, close = self.script.pop(0)
                answer = b'{"seq":%d}' % len(self.scheds)
                out = (
                    b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n%s\r\n%s"
                    % (status, len(answer), b"Connection: close\r\n" if close else b"", answer)
                )
                writer.write(out)
                self.written += len(out)
                await writer.drain()
                if close:
                    break
                head = b""
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def test_publishes_reuse_replace_refuse_and_count_every_byte() -> None:
    async def main() -> None:
        fake = Scripted([(200, False), (200, True), (200, False), (503, False), (200, False)])
        server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        spec = _spec(f"http://127.0.0.1:{port}")
        stats = ConnStats(0)
        pub = LightPublisher(spec, stats, "127.0.0.1", port, f"127.0.0.1:{port}", None, b"hello")
        await pub.publish(1_000)
        await pub.publish(2_000)  # answered with Connection: close
        await asyncio.sleep(0.05)  # the server's FIN arrives
        await pub.publish(3_000)  # on a new connection
        with pytest.raises(SessionEnded, match="503"):
            await pub.publish(4_000)
        await pub.publish(5_000)  # a refusal does not spoil the connection
        assert fake.connections == 2
        assert len(pub.connections) == 1
        pub.close()
        server.close()
        await server.wait_closed()
        assert fake.scheds == [1_000, 2_000, 3_000, 4_000, 5_000]
        assert fake.bodies == [b"hello"] * 5
        # The kernel's count, from before each connect: exactly the requests and answers.
        assert stats.bytes_out == fake.read
        assert stats.bytes_in == fake.written
        assert stats.handshake_bytes_out == stats.handshake_bytes_in == 0
        assert stats.sockets_metered == 2

    arun(main())


def test_the_request_is_the_minimal_post_with_the_schedule() -> None:
    spec = _spec("http://127.0.0.1:9/base")
    before, after = publish_request(spec, "127.0.0.1:9", b"xyz")
    assert before + b"%d" % 42 + after == (
        b"POST /base/publish?topic=chat&sched=42 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Length: 3\r\n\r\nxyz"
    )


def test_an_unanswered_publish_fails_when_the_server_hangs_up() -> None:
    async def main() -> None:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.close()

        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        stats = ConnStats(0)
        pub = LightPublisher(
            _spec(f"http://127.0.0.1:{port}"), stats, "127.0.0.1", port, "x", None, b"a"
        )
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(pub.publish(1), 5)
        assert not pub.idle and not pub.connections
        pub.close()
        server.close()
        await server.wait_closed()

    arun(main())


def test_a_light_sse_client_publishes_on_the_light_path() -> None:
    """The SSE client's publish path is :meth:`LightHttpClient.publish_light`, and
    its publisher is closed (its meters added) when the client ends."""
    calls: list[int] = []

    class Probe(SseClient):
        async def publish_light(self, due_ns: int) -> None:
            calls.append(due_ns)
            await super().publish_light(due_ns)

    async def main() -> None:
        fake = Scripted([(200, False)] * 1000)

        async def route(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            first = await reader.readuntil(b"\r\n\r\n")
            if first.startswith(b"GET /sse"):  # an endless, empty event stream
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                await reader.read()
                writer.close()
                return
            await fake.handle(reader, writer, first)

        server = await asyncio.start_server(route, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        spec = _spec(f"http://127.0.0.1:{port}", rate=50.0)
        stats = ConnStats(0)
        stop = asyncio.Event()
        task = asyncio.ensure_future(Probe.serve(0, spec, Recorder(100), stats, stop))
        for _ in range(500):
            if stats.published >= 5:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 10)
        server.close()
        await server.wait_closed()
        assert stats.published >= 5 and stats.publish_errors == 0, stats.last_error
        assert len(calls) >= 5 and fake.scheds[:5] == calls[:5]
        assert stats.bytes_out >= fake.read > 0  # the publishes' bytes are metered

    assert issubclass(SseClient, LightHttpClient)
    arun(main())


def test_a_host_name_is_resolved_and_an_address_literal_is_not() -> None:
    from pushbench.clients import tlsconn

    assert tlsconn.numeric_address("127.0.0.1", 80) == (socket.AF_INET, ("127.0.0.1", 80))
    assert tlsconn.numeric_address("::1", 80) == (socket.AF_INET6, ("::1", 80))
    assert tlsconn.numeric_address("localhost", 80) is None

    async def main() -> None:
        fake = Scripted([(200, False)])
        _, (first, _) = await tlsconn.resolve("localhost", 80)  # the address it will use
        server = await asyncio.start_server(fake.handle, first, 0)
        port = server.sockets[0].getsockname()[1]
        stats = ConnStats(0)
        pub = LightPublisher(
            _spec(f"http://localhost:{port}"), stats, "localhost", port, "x", None, b"a"
        )
        try:
            await pub.publish(7)
        finally:
            pub.close()
            server.close()
            await server.wait_closed()
        assert fake.scheds == [7]

    arun(main())
