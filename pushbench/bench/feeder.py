"""The firehose feeder of ``pushbench bench-client``: a process that only sends.

``python -m pushbench.bench.feeder JSON`` (``JSON``: a :class:`FeederSpec`)
answers the WebSocket upgrade (:mod:`pushbench.wire.handshake`) and then sends
pre-encoded text frames, each one envelope (:mod:`pushbench.contract`) with a
``payload``-byte payload, on every connection: back to back (``rate`` 0, as
fast as the socket takes them, in writes of about 64 KiB) or at a total rate
(each connection its share, sent every 10 ms, the connections' ticks
staggered). The frames are encoded once, before sending, so its core goes to
writing and little else: the client under test, not the feeder, should set
the pace.

It is its own module so the process imports only what it runs, and so the
measuring side (:mod:`pushbench.bench.client_runner`, which starts it pinned to its
own CPU and reads its ready line, :data:`FEEDER_READY`) stays about measuring.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["FEEDER_READY", "TOPIC", "FeederSpec", "main"]

TOPIC = "bench"
FEEDER_READY = "feeder listening on port "
SEND_CHUNK = 64 * 1024  # bytes per write at saturation: one syscall per ~400 small frames
TICK_S = 0.01  # offered mode: each connection sends what is due every 10 ms
FEEDER_START_TIMEOUT_S = 30.0  # send even if not every expected connection arrived


@dataclass(frozen=True)
class FeederSpec:
    """What the feeder sends: ``rate`` total msgs/s over ``connections`` (0: back to back)."""

    connections: int
    payload: int
    rate: float = 0.0
    topic: str = TOPIC

    def frames(self, count: int) -> tuple[bytes, int]:
        """``count`` text frames of envelopes of equal length, joined → (bytes, frame length).

        Sequence numbers start at 10^9 so they all have the same number of
        digits: a prefix of ``k`` frames is then exactly ``k`` frame lengths.
        """
        from pushbench.contract import Envelope, encode
        from pushbench.wire import Opcode, encode_frame

        now = time.monotonic_ns()
        frames = [
            encode_frame(
                Opcode.TEXT, encode(Envelope(self.topic, 10**9 + i, now, now, "x" * self.payload))
            )
            for i in range(count)
        ]
        return b"".join(frames), len(frames[0])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pushbench.bench.feeder JSON``: serve until SIGTERM or SIGINT.

    ``JSON`` holds the fields of a :class:`FeederSpec`. Binds 127.0.0.1 on a
    free port, prints ``feeder listening on port N`` on stdout, answers every
    upgrade, and once ``connections`` connections are up (or 30 s after the
    first) sends on all of them. It answers a Close with a Close and a Ping with
    a Pong, so clients stop as they would with a server. As every process entry
    point, it applies the settings its environment carries (:mod:`pushbench.settings`).
    """
    import asyncio

    from pushbench.settings import Settings

    Settings.from_environ(os.environ).apply()
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m pushbench.bench.feeder JSON", file=sys.stderr)
        return 2
    spec = FeederSpec(**json.loads(args[0]))
    sent = asyncio.run(_feed(spec))
    print(f"feeder: sent {sent:,} frames on {spec.connections} connections", file=sys.stderr)
    return 0


async def _feed(spec: FeederSpec) -> int:
    """The feeder's event loop → frames sent."""
    import asyncio
    import signal

    from pushbench.wire import FrameReader, Opcode, encode_frame
    from pushbench.wire.errors import HandshakeError, ProtocolError
    from pushbench.wire.handshake import accept, parse_request, reject

    loop = asyncio.get_running_loop()
    _, frame_len = spec.frames(1)
    batch = max(1, SEND_CHUNK // frame_len)
    chunk, _ = spec.frames(batch)
    per_conn = spec.rate / spec.connections
    stop = asyncio.Event()
    go = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    writers: set[asyncio.StreamWriter] = set()  # open connections
    upgraded = [0]  # connections upgraded so far: the next one's index
    sent = [0]
    go_at = [0.0]

    async def back_to_back(writer: asyncio.StreamWriter) -> None:
        while True:
            writer.write(chunk)
            sent[0] += batch
            await writer.drain()  # blocks while the client's socket buffer is full

    async def paced(writer: asyncio.StreamWriter, index: int) -> None:
        # Open loop: what is due by now is sent every tick, late or not; the ticks
        # of the connections are spread over the 10 ms so they do not all burst at once.
        start = go_at[0] + (index % spec.connections) / spec.connections * TICK_S
        done = 0
        k = 0
        while True:
            k += 1
            await asyncio.sleep(max(0.0, start + k * TICK_S - loop.time()))
            due = int(per_conn * (loop.time() - start)) - done
            while due > 0:
                n = min(due, batch)
                writer.write(chunk[: n * frame_len])
                done += n
                due -= n
                sent[0] += n
                await writer.drain()

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | None:
        """Read what the client sends until its Close (→ its code) or EOF (→ None)."""
        frames = FrameReader(masked=True)
        while data := await reader.read(65536):
            for frame in frames.feed(data):
                if frame.opcode == Opcode.CLOSE:
                    return bytes(frame.payload[:2])
                if frame.opcode == Opcode.PING:
                    writer.write(encode_frame(Opcode.PONG, frame.payload))
        return None

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sender: asyncio.Future[None] | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            try:
                response = accept(parse_request(head))
            except HandshakeError as exc:
                writer.write(reject(exc).serialize())
                return
            writer.write(response.serialize())
            index = upgraded[0]
            upgraded[0] += 1
            writers.add(writer)
            if upgraded[0] >= spec.connections:
                go_at[0] = loop.time()
                go.set()
            elif upgraded[0] == 1:
                loop.call_later(FEEDER_START_TIMEOUT_S, go.set)
            await go.wait()
            if not go_at[0]:
                go_at[0] = loop.time()
            sender = asyncio.ensure_future(
                paced(writer, index) if spec.rate > 0 else back_to_back(writer)
            )
            code = await control(reader, writer)
            sender.cancel()
            await asyncio.wait({sender})
            if code is not None:
                writer.write(encode_frame(Opcode.CLOSE, code))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except ProtocolError as exc:
            print(f"feeder: protocol error from a client: {exc}", file=sys.stderr)
        finally:
            if sender is not None:
                sender.cancel()
            writers.discard(writer)
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"{FEEDER_READY}{port}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        for writer in list(writers):
            writer.transport.abort()  # unsent frames are of no use to anyone
    return sent[0]


if __name__ == "__main__":
    sys.exit(main())
