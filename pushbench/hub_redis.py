"""A hub fed by Redis pub/sub, so several server processes deliver one stream.

Scale-out needs every process (on one host or many) to hand its subscribers
*the same* stream: the same sequence numbers, in the same order, with the same
bytes. :class:`RedisHub` gets that by letting Redis, not the process, decide
the order:

- **publish** runs one Lua script (EVALSHA, falling back to EVAL when Redis has
  forgotten the script) that INCRBYs the topic's sequence key, PUBLISHes the
  message (or a late ticker's batch, in one call) on the topic's channel and
  appends it to a bounded history list.
  Redis runs scripts one at a time, so the order on the channel *is* the
  sequence order, whatever the number of publishers and processes.
- **delivery** happens only through the channel, also for the publishing
  process (its ``publish`` returns the sequence number but delivers nothing
  locally), so every process sees one order. A listener task PSUBSCRIBEs to the
  prefix's channels, encodes each message once per process with
  :func:`pushbench.contract.encode` (deterministic, so identical bytes
  everywhere) and hands it to :meth:`Hub._deliver`. Fan-out, local history and
  the slow-consumer policy stay in :class:`~pushbench.hub.Hub`.
- **gaps**: if the listener sees a sequence number jump (say it missed messages
  while reconnecting), it fetches the missing ones from the history list before
  delivering, so subscribers never see a gap that Redis still holds. After
  every (re)subscription it also catches every known topic up to Redis's
  current sequence number, so topics that stay quiet after an outage are
  complete too.
- **resume** beyond this process's life: :meth:`RedisHub.ensure_topic` loads the
  Redis history of a topic into local history the first time the process uses
  it, so the synchronous :meth:`Hub.since` / :meth:`Hub.subscribe` can serve
  ``since`` from it. Call ``await hub.ensure_topic(topic)`` before
  ``last_seq``, ``since`` or ``subscribe`` on a topic (``wait`` does it
  itself); the base hub's version does nothing. The first live message of a
  topic warms it too (a gap from 0), filling history without handing the old
  messages to live subscribers, who asked for messages from now on.

Wire format on the channel and in the history list (ASCII decimal, one space
each)::

    b"<seq> <scheduled_ns> <published_ns> " + payload.encode("utf-8")

Keys under ``prefix`` (default ``pushbench:``): ``<prefix>{<topic>}:seq`` (the
counter), ``<prefix>{<topic>}:hist`` (the history list, bounded by the
publisher's ``history``) and the channel ``<prefix>ch:<topic>``. The braces
are a Redis Cluster hash tag keeping a topic's two keys in one slot; the client
here talks to a single Redis server.

Clocks: ``scheduled_ns`` and ``published_ns`` are stamped by the *publishing*
process with its CLOCK_MONOTONIC (``published_ns`` just before the script is
sent, so the Redis round trip counts as delivery latency, which is the real
cost of scale-out). CLOCK_MONOTONIC compares across processes on one host
only: measuring latency across hosts needs synchronised clocks (PTP, or
CLOCK_REALTIME under chrony with its error reported), not these stamps.

Redis must not be flushed or restarted under running servers: sequence numbers
live in Redis. A reset that a reconnect reveals (Redis's counter below ours)
is logged and the topic restarts from Redis's counter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from .contract import Envelope, encode
from .hub import Item
from .hub_broker import BrokerHub

__all__ = ["RedisHub", "RedisHubError", "pack_message", "parse_message"]

log = logging.getLogger(__name__)

# KEYS[1] sequence counter, KEYS[2] history list.
# ARGV[1] channel, ARGV[2] history bound, ARGV[3..] "<scheduled_ns> <published_ns> <payload>"
# (one or more messages, numbered consecutively in this order).
# Returns the sequence number of the first.
PUBLISH_LUA = """
local n = #ARGV - 2
local last = redis.call('INCRBY', KEYS[1], n)
local bound = tonumber(ARGV[2])
for i = 1, n do
  local msg = string.format('%d ', last - n + i) .. ARGV[i + 2]
  redis.call('PUBLISH', ARGV[1], msg)
  if bound > 0 then redis.call('RPUSH', KEYS[2], msg) end
end
if bound > 0 then
  redis.call('LTRIM', KEYS[2], -bound, -1)
else
  redis.call('DEL', KEYS[2])
end
return last - n + 1
"""

# KEYS[1] sequence counter, KEYS[2] history list.
# ARGV[1] after (exclusive), ARGV[2] up to (inclusive; negative: the latest).
# Returns {current seq, {messages in that range still held}}. The list always
# ends at the current seq and is contiguous (the publish script keeps it so),
# which turns sequence numbers into list indices.
RANGE_LUA = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = redis.call('LLEN', KEYS[2])
local first = cur - n + 1
local lo = math.max(tonumber(ARGV[1]) + 1, first)
local hi = tonumber(ARGV[2])
if hi < 0 or hi > cur then hi = cur end
if n == 0 or lo > hi then return {cur, {}} end
return {cur, redis.call('LRANGE', KEYS[2], lo - first, hi - first)}
"""


class RedisHubError(ConnectionError):
    """Redis could not be reached or used at start(); the message names the URL."""


def pack_message(seq: int, scheduled_ns: int, published_ns: int, payload: str) -> bytes:
    """The channel / history form of a message (what the publish script produces)."""
    return b"%d %d %d " % (seq, scheduled_ns, published_ns) + payload.encode()


def parse_message(data: bytes) -> tuple[int, int, int, str]:
    """Inverse of :func:`pack_message` → (seq, scheduled_ns, published_ns, payload).

    Raises ValueError (UnicodeDecodeError included) on anything else.
    """
    seq, scheduled, published, payload = data.split(b" ", 3)
    return int(seq), int(scheduled), int(published), payload.decode()


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, fit for error messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    except ValueError:
        return "<unparsable Redis URL>"


async def _close(pubsub: PubSub) -> None:
    """Close a PubSub (its ``aclose`` is the one untyped redis-py call we make)."""
    await pubsub.aclose()  # type: ignore[no-untyped-call]


def _glob_escape(s: bytes) -> bytes:
    """``s`` matched literally by a Redis glob pattern."""
    return re.sub(rb"([\\*?\[\]])", rb"\\\1", s)


class RedisHub(BrokerHub):
    """A :class:`Hub` whose sequence numbers and delivery order come from Redis.

    ``url`` is any redis-py URL (``redis://``, ``rediss://``, ``unix://``);
    ``prefix`` namespaces the keys and channels, so runs sharing one Redis do
    not mix. ``history`` also bounds the Redis history list of topics this
    process publishes to. ``connect_timeout`` bounds start() and each
    (re)connection; ``max_connections`` caps the connection pool.
    """

    backend = "redis"

    def __init__(
        self,
        *,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str = "pushbench:",
        history: int = 1000,
        queue_limit: int = 10000,
        connect_timeout: float = 5.0,
        max_connections: int = 64,
    ) -> None:
        super().__init__(history=history, queue_limit=queue_limit)
        self.url = url
        self.prefix = prefix
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections  # pool size, the listener's included
        self._channel_prefix = f"{prefix}ch:".encode()
        self._pattern = _glob_escape(self._channel_prefix) + b"*"
        self._redis: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._shas: dict[str, str] = {}

    # --- naming -------------------------------------------------------------

    def seq_key(self, topic: str) -> str:
        return f"{self.prefix}{{{topic}}}:seq"

    def history_key(self, topic: str) -> str:
        return f"{self.prefix}{{{topic}}}:hist"

    def channel(self, topic: str) -> str:
        return f"{self.prefix}ch:{topic}"

    # --- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Connect, load the scripts, PSUBSCRIBE and start the listener.

        Returns once the subscription is confirmed, so anything published
        after that reaches this hub. Raises :class:`RedisHubError` naming the
        URL when Redis is unreachable or refuses.
        """
        if self._redis is not None:
            return
        r: aioredis.Redis | None = None
        try:
            # No automatic retries: a retried publish whose reply was lost would
            # publish twice; the listener does its own reconnecting.
            # A blocking pool: a burst of publishes waits for a free connection
            # instead of failing with "Too many connections".
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url,
                max_connections=self.max_connections,
                timeout=20,
                retry=Retry(NoBackoff(), 0),
                socket_connect_timeout=self.connect_timeout,
                socket_keepalive=True,
            )
            r = aioredis.Redis.from_pool(pool)
            async with asyncio.timeout(self.connect_timeout):
                await r.ping()
                for source in (PUBLISH_LUA, RANGE_LUA):
                    self._shas[source] = str(await r.script_load(source))
            pubsub = await self._psubscribe(r)
        except (RedisError, OSError, ValueError) as exc:
            if r is not None:
                await r.aclose()
            what = "timed out" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
            raise RedisHubError(
                f"Redis hub: cannot use Redis at {redact(self.url)}: {what}"
            ) from exc
        self._redis = r
        self._pubsub = pubsub
        self._listener = asyncio.get_running_loop().create_task(
            self._listen(), name=f"RedisHub listener {redact(self.url)}"
        )

    async def stop(self) -> None:
        """Stop the listener, close the connections, then drop subscribers (base hub)."""
        task, self._listener = self._listener, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            await _close(pubsub)
        r, self._redis = self._redis, None
        if r is not None:
            await r.aclose()
        await super().stop()

    # --- publishing ---------------------------------------------------------

    async def _send(self, topic: str, bodies: list[bytes]) -> list[int]:
        """Sequence, PUBLISH and store every message in one script call (one round
        trip; Redis runs it whole, so the batch is contiguous everywhere) → their
        sequence numbers.

        Nothing is delivered locally: this process's subscribers get the
        messages from the channel like every other process's.
        """
        first = int(
            await self._script(
                PUBLISH_LUA,
                (self.seq_key(topic), self.history_key(topic)),
                (self.channel(topic), self.history, *bodies),
            )
        )
        return list(range(first, first + len(bodies)))

    # --- internals ----------------------------------------------------------

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("RedisHub is not started (await hub.start() first)")
        return self._redis

    async def _script(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA the script; EVAL it (which also caches it) if Redis lost it."""
        r = self._client()
        try:
            return await r.evalsha(self._shas[source], len(keys), *keys, *args)
        except NoScriptError:
            return await r.eval(source, len(keys), *keys, *args)

    async def _psubscribe(self, r: aioredis.Redis) -> PubSub:
        """A PubSub on the prefix's channels, returned once Redis confirmed it."""
        pubsub = r.pubsub()
        try:
            async with asyncio.timeout(self.connect_timeout):
                await pubsub.psubscribe(self._pattern)
                while True:
                    msg = await pubsub.get_message(timeout=None)
                    if msg is not None and msg["type"] == "psubscribe":
                        return pubsub
        except BaseException:
            await _close(pubsub)
            raise

    async def _listen(self) -> None:
        """Deliver channel messages; on any failure resubscribe and catch up."""
        backoff = 0.05
        while True:
            try:
                if self._pubsub is None:
                    self._pubsub = await self._psubscribe(self._client())
                    self.reconnects += 1
                    log.info("Redis hub %s: resubscribed", redact(self.url))
                    await self._reconcile()
                    backoff = 0.05
                msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                if msg is not None and msg["type"] == "pmessage":
                    await self._on_message(msg["channel"], msg["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "Redis hub %s: listener failed (%s); resubscribing in %.2f s",
                    redact(self.url),
                    exc,
                    backoff,
                )
                pubsub, self._pubsub = self._pubsub, None
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await _close(pubsub)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _on_message(self, channel: bytes, data: bytes) -> None:
        """One channel message: fill any gap before it from history, then deliver it
        (:meth:`BrokerHub._on_item`)."""
        topic = channel[len(self._channel_prefix) :].decode()
        try:
            item = self._item(topic, data)
        except ValueError as exc:
            log.warning("Redis hub: skipping malformed message on %r: %s", channel, exc)
            return
        await self._on_item(item)

    def _describe(self) -> str:
        return redact(self.url)

    async def _range(self, topic: str, after: int, upto: int | None) -> tuple[int, list[Item]]:
        """Redis's counter of ``topic`` and its history list after ``after`` (up to
        ``upto``), in one script call; a malformed entry is logged and skipped."""
        cur, raw = await self._script(
            RANGE_LUA,
            (self.seq_key(topic), self.history_key(topic)),
            (after, -1 if upto is None else upto),
        )
        items = []
        for data in raw:
            try:
                items.append(self._item(topic, data))
            except ValueError as exc:
                log.warning("Redis hub: skipping malformed history entry of %r: %s", topic, exc)
        return int(cur), items

    def _item(self, topic: str, data: bytes) -> Item:
        """Channel bytes → the Item, encoded once (identically in every process)."""
        seq, scheduled, published, payload = parse_message(data)
        return Item(topic, seq, encode(Envelope(topic, seq, scheduled, published, payload)))
