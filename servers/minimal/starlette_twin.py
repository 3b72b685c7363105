"""The hand-written twin of the Starlette stack: the floor of Starlette, sse-starlette
and uvicorn (run as pushbench's stack runs it: httptools, websockets-sansio).

A ticker publishes open loop (message *i* due at ``start + i/rate``, stamped so; paced
by :func:`pushbench.schedule.open_loop`, the ticker's own, so both servers keep the same
schedule and latency ratios compare servers, not timers) and sends each envelope
(:func:`pushbench.contract.encode`'s bytes, from one bytes format) to every WebSocket
from its own task (``await websocket.send_text``, the framework's broadcast idiom);
an SSE stream is an sse-starlette body, so it has the one queue its iterator needs;
held long polls wake on one shared event; a deque of ``--history`` envelopes answers
``since`` and ``Last-Event-ID``.

Left out, compared with pushbench's Starlette stack: the hub (one stream, whatever
``topic`` is asked for), pusher tasks, slow-consumer limits (a blocked WebSocket
blocks the ticker), parameter checks (bad input is a 500), tokens, Origin and
connection limits, ``/publish``, ``/echo``, ``/health``, the browser page,
SSE ``retry:``, close codes, counters per message, and the pacing-lag percentiles
(mean and max only). Keepalive is the libraries' default; compression is off.

    python -m pushbench.servers.minimal.starlette_twin --host 127.0.0.1 --port 8080
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import signal
import socket
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from pushbench.contract import clock_body, now_ns
from pushbench.schedule import open_loop
from pushbench.settings import Settings

NAME = "starlette-twin"
ENVELOPE = b'{"t":%s,"s":%d,"sch":%d,"pub":%d,"p":"%s"}'  # contract.encode's bytes
GONE = (WebSocketDisconnect, RuntimeError, ConnectionError)  # a send to a closed socket


@dataclass(slots=True)
class Ticker:
    """What ``POST /control/ticker`` asked for, and what the ticker did so far."""

    topic: str
    rate: float
    count: int | None
    start_ns: int
    t: bytes  # the topic as a JSON string
    p: bytes  # the payload: size × "x", as pushbench's ticker sends
    sent: int = 0
    first_seq: int = 0
    last_seq: int = 0
    lag_sum_ns: int = 0
    lag_max_ns: int = 0

    def lag(self, lag_ns: int) -> None:
        self.lag_sum_ns += lag_ns
        self.lag_max_ns = max(self.lag_max_ns, lag_ns)

    def status(self, running: bool) -> dict[str, Any]:
        keys = ("topic", "rate", "count", "sent", "start_ns", "first_seq", "last_seq")
        return {k: getattr(self, k) for k in keys} | {
            "payload_size": len(self.p),
            "running": running,
            "lag_max_us": self.lag_max_ns / 1e3,
            "lag_mean_us": self.lag_sum_ns / max(self.sent, 1) / 1e3,
            "lag_p50_us": None,  # not kept: no per-publish array in a twin
            "lag_p99_us": None,
        }


def sse_frame(seq: int, data: bytes) -> bytes:
    return b"id: %d\ndata: %s\n\n" % (seq, data)


class Twin:
    """The whole server state: a sequence number, a history, the open connections."""

    def __init__(self, history: int) -> None:
        self.seq = 0
        self.history: deque[tuple[int, bytes]] = deque(maxlen=history)
        self.ws: set[WebSocket] = set()
        self.sse: set[asyncio.Queue[bytes]] = set()
        self.arrived = asyncio.Event()  # replaced after every publish: wakes the long polls
        self.ticker: Ticker | None = None
        self.task: asyncio.Task[None] | None = None
        self.gaps = self.gap_messages = 0

    def after(self, since: int | str | None) -> list[tuple[int, bytes]]:
        """Envelopes with a seq above ``since`` still in history (seqs are contiguous)."""
        if since is None or since == "":
            return []
        k = self.seq - int(since)
        if k > len(self.history):
            self.gaps += 1
            self.gap_messages += k - len(self.history)
            k = len(self.history)
        return [self.history[-i] for i in range(k, 0, -1)]

    async def publish(self, due_ns: int) -> None:
        t = self.ticker
        assert t is not None
        self.seq += 1
        data = ENVELOPE % (t.t, self.seq, due_ns, now_ns(), t.p)
        self.history.append((self.seq, data))
        frame = sse_frame(self.seq, data)
        for queue in self.sse:
            queue.put_nowait(frame)
        text = data.decode()  # ASGI text frames are str (once, for every socket)
        for ws in tuple(self.ws):
            try:
                await ws.send_text(text)
            except GONE:
                self.ws.discard(ws)
        self.arrived.set()
        self.arrived = asyncio.Event()
        if not t.sent:
            t.first_seq = self.seq
        t.last_seq = self.seq
        t.sent += 1

    # --- endpoints ------------------------------------------------------------------

    async def ws_endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        cursor = websocket.query_params.get("since")
        while items := self.after(cursor):  # until caught up, then join at once
            for _, data in items:
                await websocket.send_text(data.decode())
            cursor = str(items[-1][0])
        self.ws.add(websocket)
        try:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass  # client messages are ignored
        finally:
            self.ws.discard(websocket)

    async def sse_endpoint(self, request: Request) -> Response:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        since = request.headers.get("last-event-id") or request.query_params.get("since")
        for seq, data in self.after(since):
            queue.put_nowait(sse_frame(seq, data))
        self.sse.add(queue)

        async def events() -> AsyncIterator[bytes]:
            try:
                while True:
                    chunks = [await queue.get()]
                    while not queue.empty():
                        chunks.append(queue.get_nowait())
                    yield b"".join(chunks)
            finally:
                self.sse.discard(queue)

        return EventSourceResponse(events(), sep="\n")

    async def poll_endpoint(self, request: Request) -> Response:
        since = int(request.query_params.get("since") or self.seq)
        items = self.after(since)
        timeout = float(request.query_params.get("timeout") or 30)
        if not items and timeout > 0:
            try:
                async with asyncio.timeout(timeout):
                    await self.arrived.wait()
            except TimeoutError:
                pass
            items = self.after(since)
        last = items[-1][0] if items else since
        body = b'{"last":%d,"messages":[%s]}' % (last, b",".join(d for _, d in items))
        return Response(body, media_type="application/json")

    async def ticker_endpoint(self, request: Request) -> Response:
        q = request.query_params
        if self.task is not None:
            self.task.cancel()
        rate = float(q["rate"])
        count = int(q["count"]) if "count" in q else None  # None: until replaced
        start = now_ns() + int(float(q.get("delay") or 0) * 1e9)
        topic = q.get("topic", "bench")
        payload = b"x" * int(q.get("size") or 100)
        self.ticker = Ticker(topic, rate, count, start, json.dumps(topic).encode(), payload)
        self.task = asyncio.create_task(
            open_loop(self.publish, rate=rate, start_ns=start, count=count, on_lag=self.ticker.lag)
        )
        return JSONResponse(self.ticker_status())

    def ticker_status(self) -> dict[str, Any]:
        running = self.task is not None and not self.task.done()
        return {} if self.ticker is None else self.ticker.status(running)

    async def stats_endpoint(self, request: Request) -> Response:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return JSONResponse(
            {
                "server": {"stack": NAME, "twin_of": "starlette", "compression": "off"},
                "ticker": self.ticker_status(),
                "published": self.seq,
                "connections_open": len(self.ws) + len(self.sse),
                "history": self.history.maxlen,
                "history_gaps": self.gaps,
                "history_gap_messages": self.gap_messages,
                "slow_consumers_dropped": 0,  # a twin never drops anyone
                "cpu_user_s": usage.ru_utime,
                "cpu_sys_s": usage.ru_stime,
                "max_rss_kb": usage.ru_maxrss,
                "absent": ["messages_delivered", "bytes_written", "requests", "subscribers"],
            }
        )


class Server(uvicorn.Server):
    """uvicorn's Server, leaving SIGINT/SIGTERM to :func:`serve` (exit 0 on SIGTERM)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _clock(request: Request) -> Response:
    """``GET /clock``: the contract's answer (:func:`pushbench.contract.clock_body`)."""
    return Response(clock_body(), media_type="application/json")


async def serve(host: str, port: int, history: int, loop: str) -> None:
    twin = Twin(history)
    app = Starlette(
        routes=[
            WebSocketRoute("/ws", twin.ws_endpoint),
            Route("/sse", twin.sse_endpoint),
            Route("/poll", twin.poll_endpoint),
            Route("/stats", twin.stats_endpoint),
            Route("/clock", _clock),  # the contract's: remote workers' offset estimate
            Route("/control/ticker", twin.ticker_endpoint, methods=["POST"]),
        ]
    )
    config = uvicorn.Config(
        app, http="httptools", ws="websockets-sansio", loop=loop, lifespan="off",
        ws_per_message_deflate=False, access_log=False, log_level="warning",
    )  # fmt: skip
    # proto IPPROTO_TCP, not create_server's 0: asyncio sets TCP_NODELAY only on accepted
    # sockets whose proto says TCP (else a response written in two parts waits ~40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    server = Server(config)
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, setattr, server, "should_exit", True)
    port = sock.getsockname()[1]  # listening already: connections wait in the backlog
    gc.freeze()  # the start-up heap, as pushbench serve does (pushbench.servers.serve)
    print(f"pushbench twin: stack={NAME} listening on http://{host}:{port}", flush=True)
    try:
        await server.serve(sockets=[sock])
    finally:
        if twin.task is not None:
            twin.task.cancel()
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--history", type=int, default=1000)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    Settings.from_environ(os.environ).apply()  # the pacing's timerfd switch, as everywhere
    factory = None
    if args.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(args.host, args.port, args.history, args.loop))


if __name__ == "__main__":
    main()
