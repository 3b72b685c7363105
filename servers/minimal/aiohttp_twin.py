"""The hand-written twin of the aiohttp stack: the floor of what aiohttp costs.

A ticker publishes open loop (message *i* due at ``start + i/rate``, stamped so; paced
by :func:`pushbench.schedule.open_loop`, the ticker's own, so both servers keep the same
schedule and latency ratios compare servers, not timers) and writes each envelope
(:func:`pushbench.contract.encode`'s bytes, from one bytes format) straight to every
open WebSocket and SSE response from its own task; held long polls wake on one shared
event; a deque of ``--history`` envelopes answers ``since`` and ``Last-Event-ID``.

Left out, compared with pushbench's aiohttp stack: the hub (one stream, whatever
``topic`` is asked for), per-connection queues and tasks, slow-consumer limits (a
blocked client blocks the ticker), parameter checks (bad input is a 500), tokens,
Origin and connection limits, ``/publish``, ``/echo``, ``/health``, the
browser page, SSE ``retry:`` and heartbeats, WebSocket pings, close codes, counters
per message, and the pacing-lag percentiles (mean and max only). Compression is off.

    python -m pushbench.servers.minimal.aiohttp_twin --host 127.0.0.1 --port 8080
    # prints: pushbench twin: stack=aiohttp-twin listening on http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import signal
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from pushbench.contract import clock_body, now_ns
from pushbench.schedule import open_loop
from pushbench.settings import Settings

NAME = "aiohttp-twin"
ENVELOPE = b'{"t":%s,"s":%d,"sch":%d,"pub":%d,"p":"%s"}'  # contract.encode's bytes
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


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


class Twin:
    """The whole server state: a sequence number, a history, the open connections."""

    def __init__(self, history: int) -> None:
        self.seq = 0
        self.history: deque[tuple[int, bytes]] = deque(maxlen=history)
        self.ws: set[web.WebSocketResponse] = set()
        self.sse: set[web.StreamResponse] = set()
        self.arrived = asyncio.Event()  # replaced after every publish: wakes the long polls
        self.ticker: Ticker | None = None
        self.task: asyncio.Task[None] | None = None
        self.gaps = self.gap_messages = 0

    def after(self, since: int) -> list[tuple[int, bytes]]:
        """Envelopes with a seq above ``since`` still in history (seqs are contiguous)."""
        k = self.seq - since
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
        for ws in tuple(self.ws):
            try:
                await ws.send_frame(data, WSMsgType.TEXT)
            except ConnectionError:
                self.ws.discard(ws)
        frame = b"id: %d\ndata: %s\n\n" % (self.seq, data)
        for resp in tuple(self.sse):
            try:
                await resp.write(frame)
            except ConnectionError:
                self.sse.discard(resp)
        self.arrived.set()
        self.arrived = asyncio.Event()
        if not t.sent:
            t.first_seq = self.seq
        t.last_seq = self.seq
        t.sent += 1

    async def catch_up(
        self, since: str | None, send: Callable[[int, bytes], Awaitable[Any]]
    ) -> None:
        """Send what came after ``since``, until nothing is left: then the caller joins
        the live set with no await in between, so nothing is missed or sent twice."""
        cursor = int(since) if since else None
        while cursor is not None and (items := self.after(cursor)):
            for seq, data in items:
                await send(seq, data)
            cursor = items[-1][0]

    # --- handlers --------------------------------------------------------------

    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        await self.catch_up(
            request.query.get("since"), lambda s, d: ws.send_frame(d, WSMsgType.TEXT)
        )
        self.ws.add(ws)
        try:
            async for _ in ws:  # client messages are ignored; ends when the client goes
                pass
        finally:
            self.ws.discard(ws)
        return ws

    async def sse_handler(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers=SSE_HEADERS)
        await resp.prepare(request)
        since = request.headers.get("Last-Event-ID") or request.query.get("since")
        await self.catch_up(since, lambda s, d: resp.write(b"id: %d\ndata: %s\n\n" % (s, d)))
        self.sse.add(resp)
        try:
            await asyncio.Event().wait()  # until the client goes (handler cancellation)
        finally:
            self.sse.discard(resp)
        return resp

    async def poll_handler(self, request: web.Request) -> web.StreamResponse:
        since = int(request.query.get("since") or self.seq)
        items = self.after(since)
        timeout = float(request.query.get("timeout") or 30)
        if not items and timeout > 0:
            try:
                async with asyncio.timeout(timeout):
                    await self.arrived.wait()
            except TimeoutError:
                pass
            items = self.after(since)
        last = items[-1][0] if items else since
        body = b'{"last":%d,"messages":[%s]}' % (last, b",".join(d for _, d in items))
        return web.Response(body=body, content_type="application/json")

    async def ticker_handler(self, request: web.Request) -> web.StreamResponse:
        q = request.query
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
        return web.json_response(self.ticker_status())

    def ticker_status(self) -> dict[str, Any]:
        running = self.task is not None and not self.task.done()
        return {} if self.ticker is None else self.ticker.status(running)

    async def stats_handler(self, request: web.Request) -> web.StreamResponse:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return web.json_response(
            {
                "server": {"stack": NAME, "twin_of": "aiohttp", "compression": "off"},
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


async def _clock(request: web.Request) -> web.Response:
    """``GET /clock``: the contract's answer (:func:`pushbench.contract.clock_body`)."""
    return web.Response(body=clock_body(), content_type="application/json")


async def serve(host: str, port: int, history: int) -> None:
    twin = Twin(history)
    app = web.Application()
    app.router.add_get("/ws", twin.ws_handler)
    app.router.add_get("/sse", twin.sse_handler)
    app.router.add_get("/poll", twin.poll_handler)
    app.router.add_get("/stats", twin.stats_handler)
    app.router.add_get("/clock", _clock)  # the contract's: remote workers' offset estimate
    app.router.add_post("/control/ticker", twin.ticker_handler)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    port = runner.addresses[0][1]  # the real one when 0 was asked
    gc.freeze()  # the start-up heap, as pushbench serve does (pushbench.servers.serve)
    print(f"pushbench twin: stack={NAME} listening on http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        if twin.task is not None:
            twin.task.cancel()
        await runner.cleanup()


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
        runner.run(serve(args.host, args.port, args.history))


if __name__ == "__main__":
    main()
