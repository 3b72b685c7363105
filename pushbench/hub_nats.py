"""A hub fed by NATS JetStream, so several server processes deliver one stream (scale-out).

Same contract as :mod:`pushbench.hub_redis` — the broker, not a process, numbers and
orders each topic, and history outlives any one server — on NATS (Debian's
``nats-server`` ≥ 2.9 with ``-js``; the ``nats-py`` client):

- **one stream per topic**, in memory, ``max_msgs`` = the hub's ``history`` (the oldest
  discarded), created by the first publisher. The stream's sequence number *is* the
  topic's sequence number (monotonic from 1), whatever the number of publishers;
- **publish** is a JetStream publish on ``<prefix>.in.<topic>``; its ack carries the
  sequence number. A batch (a late ticker's catch-up) is written whole before its acks
  are awaited: one round trip. Nothing is delivered locally;
- **delivery**: the stream *republishes* each stored message on ``<prefix>.out.<topic>``
  with its sequence number in the ``Nats-Sequence`` header, in stream order; every
  process (the publisher's included) subscribes to ``<prefix>.out.>`` with a core NATS
  subscription and hands each message to :class:`~pushbench.hub_broker.BrokerHub`, which
  fills gaps from the stream and keeps local history for ``since=``;
- **history** (resume, warming, gaps): messages fetched from the stream one sequence
  number at a time (``STREAM.MSG.GET``; a cold topic's warming, once per process, and
  rare gap fills), so a subscriber that reconnects to another node resumes there.

Topics are hex-encoded in subjects and stream names (``[A-Za-z0-9_.-]`` topics may hold
dots, which NATS reads as token separators). ``prefix`` (letters, digits, ``_``, ``-``)
namespaces the streams and subjects, so runs sharing one nats-server do not mix.
Wire format of a message body: ``b"<scheduled_ns> <published_ns> " + payload`` (the
sequence number is the stream's); clocks as in :mod:`pushbench.hub_redis`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext, api
from nats.js.errors import BadRequestError, NotFoundError

from .contract import Envelope, encode
from .hub import Item
from .hub_broker import BrokerHub

__all__ = ["NatsHub", "NatsHubError", "parse_body"]

log = logging.getLogger(__name__)

_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,64}")


class NatsHubError(ConnectionError):
    """NATS could not be reached or used at start(); the message names the URL."""


def parse_body(data: bytes) -> tuple[int, int, str]:
    """A message body → (scheduled_ns, published_ns, payload); ValueError otherwise."""
    scheduled, published, payload = data.split(b" ", 2)
    return int(scheduled), int(published), payload.decode()


class NatsHub(BrokerHub):
    """A :class:`~pushbench.hub.Hub` whose sequence numbers and order come from JetStream.

    ``url``: ``nats://host:port``; ``prefix``: the namespace of streams and subjects;
    ``history`` also bounds the streams this process creates; ``connect_timeout`` bounds
    start() and each request to the server.
    """

    backend = "nats"

    def __init__(
        self,
        *,
        url: str = "nats://127.0.0.1:4222",
        prefix: str = "pushbench",
        history: int = 1000,
        queue_limit: int = 10000,
        connect_timeout: float = 5.0,
    ) -> None:
        if not _PREFIX.fullmatch(prefix):
            raise ValueError(f"NATS prefix {prefix!r}: 1-64 of [A-Za-z0-9_-]")
        super().__init__(history=history, queue_limit=queue_limit)
        self.url = url
        self.prefix = prefix
        self.connect_timeout = connect_timeout
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._streams: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- naming -------------------------------------------------------------

    def stream(self, topic: str) -> str:
        return f"{self.prefix}_{topic.encode().hex()}"

    def in_subject(self, topic: str) -> str:
        return f"{self.prefix}.in.{topic.encode().hex()}"

    def out_subject(self, topic: str) -> str:
        return f"{self.prefix}.out.{topic.encode().hex()}"

    def _describe(self) -> str:
        return self.url

    # --- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Connect, subscribe to every topic's republished messages, and return once the
        server has the subscription (anything published after that reaches this hub).
        Raises :class:`NatsHubError` naming the URL when NATS is unreachable."""
        if self._nc is not None:
            return
        try:
            async with asyncio.timeout(self.connect_timeout):
                nc = await nats.connect(
                    servers=[self.url],
                    connect_timeout=max(1, round(self.connect_timeout)),
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.1,
                    allow_reconnect=True,
                    reconnected_cb=self._reconnected,
                    error_cb=self._error,
                )
                await nc.subscribe(f"{self.prefix}.out.>", cb=self._on_msg)
                await nc.flush()
        except (NatsError, OSError, TimeoutError) as exc:
            what = "timed out" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
            raise NatsHubError(f"NATS hub: cannot use NATS at {self.url}: {what}") from exc
        self._nc = nc
        self._js = nc.jetstream(timeout=self.connect_timeout)

    async def stop(self) -> None:
        """Close the connection (no more live messages), then drop subscribers."""
        for task in list(self._tasks):
            task.cancel()
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
        await super().stop()

    async def _reconnected(self) -> None:
        """After a reconnection: what was published meanwhile is in the streams only."""
        self.reconnects += 1
        log.info("NATS hub %s: reconnected", self.url)
        task = asyncio.get_running_loop().create_task(self._reconcile())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _error(self, exc: Exception) -> None:
        log.warning("NATS hub %s: %s", self.url, exc)

    # --- publishing ---------------------------------------------------------

    async def _send(self, topic: str, bodies: list[bytes]) -> list[int]:
        """Store ``bodies`` in the topic's stream (created on first use) → their sequence
        numbers: every message is written before any ack is awaited (one round trip;
        one connection, so the stream stores them in this order)."""
        js = self._jetstream()
        if topic not in self._streams:
            await self._add_stream(js, topic)
        subject = self.in_subject(topic)
        if len(bodies) == 1:
            return [int((await js.publish(subject, bodies[0])).seq)]
        acks = [await js.publish_async(subject, body) for body in bodies]
        return [int(ack.seq) for ack in await asyncio.gather(*acks)]

    async def _add_stream(self, js: JetStreamContext, topic: str) -> None:
        config = api.StreamConfig(
            name=self.stream(topic),
            subjects=[self.in_subject(topic)],
            max_msgs=max(1, self.history),
            storage=api.StorageType.MEMORY,
            discard=api.DiscardPolicy.OLD,
            republish=api.RePublish(src=self.in_subject(topic), dest=self.out_subject(topic)),
        )
        try:
            await js.add_stream(config)
        except BadRequestError:  # created by another process with another history: use it
            await js.stream_info(self.stream(topic))
        self._streams.add(topic)

    # --- receiving ----------------------------------------------------------

    async def _on_msg(self, msg: Msg) -> None:
        """A republished message: its topic from the subject, its seq from the header."""
        try:
            topic = bytes.fromhex(msg.subject.rsplit(".", 1)[1]).decode()
            seq = int((msg.headers or {})["Nats-Sequence"])
            item = self._item(topic, seq, msg.data)
        except (ValueError, KeyError, IndexError) as exc:
            log.warning("NATS hub: skipping malformed message on %r: %s", msg.subject, exc)
            return
        try:
            await self._on_item(item)
        except Exception as exc:  # a failed gap fill: the next message or reconnect retries
            log.warning("NATS hub %s: cannot deliver %r #%d: %s", self.url, topic, seq, exc)

    async def _range(self, topic: str, after: int, upto: int | None) -> tuple[int, list[Item]]:
        js = self._jetstream()
        try:
            info = await js.stream_info(self.stream(topic))
        except NotFoundError:
            return 0, []
        cur, first = int(info.state.last_seq), int(info.state.first_seq)
        hi = cur if upto is None or upto < 0 or upto > cur else upto
        items: list[Item] = []
        for seq in range(max(after + 1, first), hi + 1):
            try:
                raw: Any = await js.get_msg(self.stream(topic), seq)
            except NotFoundError:
                continue  # discarded meanwhile: the jump is counted on delivery
            try:
                items.append(self._item(topic, seq, raw.data or b""))
            except ValueError as exc:
                log.warning("NATS hub: skipping malformed history entry of %r: %s", topic, exc)
        return cur, items

    # --- internals ----------------------------------------------------------

    def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("NatsHub is not started (await hub.start() first)")
        return self._js

    @staticmethod
    def _item(topic: str, seq: int, data: bytes) -> Item:
        """A body → the Item, encoded once (identically in every process)."""
        scheduled, published, payload = parse_body(data)
        return Item(topic, seq, encode(Envelope(topic, seq, scheduled, published, payload)))
