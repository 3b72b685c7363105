"""What every server stack serves, independent of the stack: one table-driven core.

A stack (aiohttp, Starlette on uvicorn, raw asyncio) only adapts its request
and response objects to :class:`PushService`; parameter checks, auth, error
bodies, poll batches, SSE framing and counters live here once, so the stacks
cannot drift apart. The URL scheme (same on every stack):

=================================  =============================================
``GET /ws?topic=&since=``          WebSocket push stream (one text frame per message)
``GET /sse?topic=&since=``         Server-Sent Events; Last-Event-ID resumes
``GET /poll?topic=&since=&timeout=``  long poll: hold until a message after ``since``
``GET /poll?topic=&since=&timeout=0`` short poll: answer at once (maybe empty)
``GET /echo``                      WebSocket echo (same opcode back)
``POST /publish?topic=&sched=``    body = payload → ``{"seq": N}``; ``sched``: due time (ns)
``GET /health``, ``GET /stats``    readiness, counters
``GET /clock``                     the server's CLOCK_MONOTONIC ns, for the browser client
``GET /client``, ``/client.js``    the browser client page (:mod:`pushbench.client_page`)
``POST /control/ticker?...``       start server-side load; ``DELETE`` stops it
=================================  =============================================

Errors are a status with a short JSON body ``{"error": "..."}``.

With an auth secret, the topic paths take a subscribe-scope token for their topic,
and ``/control/*`` and ``/echo`` a control-scope token (:mod:`pushbench.auth`;
``Authorization: Bearer`` or ``token=``): 401 without a valid one, 403 for a token of
the other scope. A ticker's rate is capped by ``ServerConfig.max_control_rate``
(400 over it). Without a secret nothing is checked, so :func:`bind_refusal` keeps
such a server on loopback unless told otherwise (``pushbench serve --insecure-bind``).

A publishing client carries the time its message was *scheduled* (``sched=`` on
POST /publish, ``{"sch":N,"p":"…"}`` as a WebSocket text message: see
:mod:`pushbench.contract`); the envelope keeps it, so chat latency is measured
from the client's schedule like the ticker's. A value that is no integer or lies
in the future is refused with 400 (on a WebSocket: the close code the stack maps
400 to); a publish without one is scheduled at its arrival, as before.
"""

from __future__ import annotations

import ipaddress
import json
import operator
import resource
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

from . import sse
from .auth import WRONG_SCOPE, bearer, check_control_token, check_token
from .contract import (
    ENCODING,
    check_scheduled,
    clock_body,
    now_ns,
    parse_publish_frame,
    valid_topic,
)
from .hub import Hub, Item
from .payloads import PAYLOAD_KINDS
from .ticker import Ticker
from .wire import Opcode, encode_frame

__all__ = [
    "TICKER_KEYS",
    "ConfigError",
    "HttpError",
    "Params",
    "PushService",
    "ServerConfig",
    "ServiceStats",
    "TickerOptions",
    "bind_refusal",
    "is_loopback",
    "parse_ticker",
]

MAX_SEQ = 2**62


class ConfigError(ValueError):
    """A :class:`ServerConfig` value out of range; ``field`` names it (for a CLI to map)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ServerConfig:
    """The knobs of a push server, read alike by every stack so runs compare like with like.

    The WebSocket defaults follow the common libraries (websockets pings every
    20 s and waits 20 s; aiohttp accepts 4 MiB messages). ``ping_interval`` 0
    turns keepalive off. ``max_message_size`` bounds what ``/echo`` accepts
    (``/ws`` publishes are bounded by ``max_publish_bytes``). Where a library
    fixes a mechanism itself, its stack cannot honour the knob: aiohttp waits
    half the ping interval for a pong and has its own close timeout; only the
    raw stack has ``close_timeout`` and ``write_buffer_limit``.
    """

    ping_interval: float = 20.0  # WebSocket keepalive, 0 = off
    ping_timeout: float = 20.0  # a peer silent this long after a ping is dead
    close_timeout: float = 5.0  # wait this long for a peer's Close / EOF, then abort
    heartbeat_interval: float = 15.0  # SSE comment lines
    sse_retry_ms: int = 1000
    max_message_size: int = 4 << 20  # largest incoming WebSocket message (1009 beyond)
    max_publish_bytes: int = 65536
    write_buffer_limit: int = 1 << 20  # per-connection output buffer bound (bytes)
    default_poll_timeout: float = 30.0
    max_poll_timeout: float = 120.0
    max_connections: int = 20000
    auth_secret: bytes | None = None  # tokens required when set
    max_control_rate: float = 100_000.0  # highest ticker rate /control/ticker accepts (msg/s)
    # s a connection may wait for (or spend sending) a request head, idle keep-alive included
    head_timeout: float = 30.0
    origins: tuple[str, ...] | None = None  # WebSocket Origin allow-list when set

    def __post_init__(self) -> None:
        # Nonsense is refused here, once, rather than surfacing as odd timer behaviour.
        if not self.head_timeout > 0:  # written so that nan fails too
            raise ConfigError("head_timeout", "must be > 0")
        if not self.ping_interval >= 0:  # written so that nan fails too
            raise ConfigError("ping_interval", "must be >= 0 (0 turns keepalive off)")
        if not self.sse_retry_ms >= 0:
            raise ConfigError("sse_retry_ms", "must be >= 0")
        for name in (
            "ping_timeout",
            "close_timeout",
            "heartbeat_interval",
            "max_message_size",
            "max_publish_bytes",
            "write_buffer_limit",
            "default_poll_timeout",
            "max_poll_timeout",
            "max_connections",
            "max_control_rate",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(name, "must be > 0")
        if self.default_poll_timeout > self.max_poll_timeout:
            raise ConfigError("default_poll_timeout", "must be <= max_poll_timeout")


class HttpError(Exception):
    """A request the service refuses: ``status`` and a short reason for the JSON body."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(f"{status} {error}")
        self.status = status
        self.error = error

    def body(self) -> bytes:
        return json.dumps({"error": self.error}).encode()


class Params(NamedTuple):
    """A request's validated topic, ``since`` and poll timeout (a tuple: made per request)."""

    topic: str
    since: int | None
    timeout: float


@dataclass
class ServiceStats:
    connections_open: int = 0
    connections_total: int = 0
    connections_refused: int = 0
    messages_delivered: int = 0
    bytes_written: int = 0
    requests: int = 0
    bad_requests: int = 0
    auth_failures: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def _int(query: Mapping[str, str], name: str, lo: int, hi: int) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    # isascii: str.isdigit() also accepts "²" and other digits int() refuses (→ 500).
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        raise HttpError(400, f"{name} must be an integer in [{lo}, {hi}]")
    value = int(raw)
    if not lo <= value <= hi:
        raise HttpError(400, f"{name} must be an integer in [{lo}, {hi}]")
    return value


def _float(query: Mapping[str, str], name: str, lo: float, hi: float) -> float | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise HttpError(400, f"{name} must be a number in [{lo}, {hi}]") from None
    if not lo <= value <= hi:  # also rejects nan
        raise HttpError(400, f"{name} must be a number in [{lo}, {hi}]")
    return value


class PushService:
    """The stack-independent half of every push server."""

    def __init__(self, hub: Hub, config: ServerConfig | None = None) -> None:
        self.hub = hub
        self.config = config or ServerConfig()
        self.stats = ServiceStats()
        self.ticker: Ticker | None = None
        # The self-check pause (a fault) counts from the ticker's start or, when clients
        # publish instead (chat cells), from the first publish a client sends.
        self._pause_pending = hub.faults is not None and hub.faults.pause_ms > 0
        # What this server is (stack, loop, WebSocket implementation, compression,
        # faults), reported in /stats so results record what was measured.
        self.info: dict[str, str] = {}
        # The last poll answer (see _batch).
        self._batch_last: Item | None = None
        self._batch_key = (0, 0)
        self._batch_body = b""

    # --- requests ---------------------------------------------------------

    def params(self, query: Mapping[str, str], last_event_id: str | None = None) -> Params:
        """Validate topic / since / timeout and the token → Params, or HttpError.

        ``last_event_id`` (SSE's header) wins over ``since`` when present.
        """
        self.stats.requests += 1
        try:
            topic = query.get("topic", "")
            if not valid_topic(topic):
                raise HttpError(400, "topic must be 1-64 characters of [A-Za-z0-9_.-]")
            since = _int(query, "since", 0, MAX_SEQ)
            leid = last_event_id if last_event_id is not None else query.get("lastEventId")
            if leid:
                since = _int({"Last-Event-ID": leid}, "Last-Event-ID", 0, MAX_SEQ)
            timeout = _float(query, "timeout", 0.0, self.config.max_poll_timeout)
        except HttpError:
            self.stats.bad_requests += 1
            raise
        secret = self.config.auth_secret
        if secret is not None:
            why = check_token(secret, topic, query.get("token"))
            if why:
                raise self._auth_failed(why)
        return Params(
            topic, since, self.config.default_poll_timeout if timeout is None else timeout
        )

    def _auth_failed(self, why: str) -> HttpError:
        self.stats.auth_failures += 1
        return HttpError(403 if why == WRONG_SCOPE else 401, f"token {why}")

    def check_control(self, query: Mapping[str, str], authorization: str | None) -> None:
        """``/control/*`` and ``/echo``: with an auth secret, a control-scope token
        (``Authorization: Bearer`` first, else ``token=``) → HttpError 401 without a
        valid one, 403 for a subscriber token. Without a secret: nothing to check."""
        secret = self.config.auth_secret
        if secret is None:
            return
        why = check_control_token(secret, bearer(authorization) or query.get("token"))
        if why:
            raise self._auth_failed(why)

    def check_origin(self, origin: str | None) -> None:
        """WebSocket Origin allow-list (``config.origins``) → HttpError(403) if refused.

        Only browsers send Origin, and a browser always does, so a request
        without one (a benchmark client, curl) is not refused: the list guards
        against cross-site pages, which tokens in the URL alone do not.
        """
        allowed = self.config.origins
        if allowed is not None and origin is not None and origin not in allowed:
            self.stats.auth_failures += 1
            raise HttpError(403, "origin not allowed")

    def open_connection(self) -> None:
        """Count a long-lived connection; HttpError(429) past ``max_connections``.

        A flood of connections is the clients' excess, hence a 4xx.
        """
        if self.stats.connections_open >= self.config.max_connections:
            self.stats.connections_refused += 1
            raise HttpError(429, "too many connections")
        self.stats.connections_open += 1
        self.stats.connections_total += 1

    def close_connection(self) -> None:
        self.stats.connections_open -= 1

    async def publish(self, query: Mapping[str, str], body: bytes) -> bytes:
        """POST /publish → ``{"seq": N}``; the body is the payload (UTF-8, bounded)."""
        params = self.params(query)
        if len(body) > self.config.max_publish_bytes:
            raise self._too_large()
        try:
            payload = body.decode()
        except UnicodeDecodeError:
            self.stats.bad_requests += 1
            raise HttpError(400, "payload must be UTF-8") from None
        scheduled = self._scheduled(query.get("sched"))
        seq = await self.hub.publish(params.topic, payload, scheduled)
        return json.dumps({"seq": seq}).encode()

    def _scheduled(self, raw: str | int | None) -> int | None:
        """A publisher's scheduled time (None: absent, scheduled on arrival) → ns, or
        HttpError(400); arms the self-check pause on the first client publish."""
        if self._pause_pending:
            self._arm_pause()
        if raw is None or raw == "":
            return None
        try:
            return check_scheduled(raw, now_ns())
        except ValueError as exc:
            self.stats.bad_requests += 1
            raise HttpError(400, str(exc)) from None

    def _arm_pause(self) -> None:
        """Start the self-check pause's countdown (once: a ticker start re-arms it)."""
        self._pause_pending = False
        if self.hub.faults is not None:
            self.hub.faults.arm_pause()

    def publish_too_large(self, query: Mapping[str, str]) -> HttpError:
        """The error for a publish whose body is known to be over the limit before it
        was all read (Content-Length, or a stream cut off past the limit).

        Checks the query first, so a bad topic or token is still answered
        400/401 exactly as :meth:`publish` would; otherwise returns the 413.
        """
        self.params(query)
        return self._too_large()

    @staticmethod
    def publish_close_code(status: int) -> int:
        """The close code every stack sends when :meth:`publish_text` refuses a publish:
        1009 (message too big) for 413, 1008 (policy violation) for a malformed one."""
        return 1009 if status == 413 else 1008

    async def publish_text(self, topic: str, text: str) -> int:
        """A publish arriving as a text message on an open WebSocket → its seq.

        The socket was authorised for ``topic`` when it opened. The text is the payload,
        or ``{"sch":N,"p":"payload"}`` with its scheduled time
        (:func:`~pushbench.contract.parse_publish_frame`; a malformed one is HttpError 400).
        The payload is bounded like POST /publish (HttpError 413, which the stack answers
        with close 1009).
        """
        try:
            payload, raw = parse_publish_frame(text)
        except ValueError as exc:
            self.stats.bad_requests += 1
            raise HttpError(400, str(exc)) from None
        limit = self.config.max_publish_bytes
        if len(payload) > limit or (len(payload) * 4 > limit and len(payload.encode()) > limit):
            raise self._too_large()
        return await self.hub.publish(topic, payload, self._scheduled(raw))

    def _too_large(self) -> HttpError:
        self.stats.bad_requests += 1
        return HttpError(413, f"payload over {self.config.max_publish_bytes} bytes")

    async def poll(self, params: Params) -> bytes:
        """GET /poll: long when timeout > 0, short (immediate) when 0 → JSON batch."""
        if not self.hub.topic_ready(params.topic):  # in-process: always ready, no await
            await self.hub.ensure_topic(params.topic)
        since = params.since if params.since is not None else self.hub.last_seq(params.topic)
        if params.timeout > 0:
            items = await self.hub.wait(params.topic, since, params.timeout)
        else:
            items = self.hub.since(params.topic, since)
        body = self._batch(items, since)
        self.count(len(items), len(body))
        return body

    def _batch(self, items: list[Item], since: int) -> bytes:
        """:func:`batch`, built once for every poll answered with the same items from the
        same ``since`` (the long polls one publish answers, short polls of one moment):
        the last body is kept, keyed by its last item (one object per message), its
        length and ``since``."""
        if not items:
            return batch(items, since)
        last = items[-1]
        if last is self._batch_last and (since, len(items)) == self._batch_key:
            return self._batch_body
        body = batch(items, since)
        self._batch_last, self._batch_key, self._batch_body = last, (since, len(items)), body
        return body

    def poll_since(self, params: Params) -> int:
        """The ``since`` a poll answers from: its own, or (absent) the topic's newest seq.
        The topic must be ready (:meth:`Hub.topic_ready`)."""
        return params.since if params.since is not None else self.hub.last_seq(params.topic)

    def poll_answer(self, items: list[Item], since: int) -> bytes:
        """A poll's answer from items the stack took from :meth:`Hub.since`, counted:
        :meth:`poll` for a stack that holds its long polls itself."""
        body = self._batch(items, since)
        self.count(len(items), len(body))
        return body

    def count(self, messages: int, nbytes: int) -> None:
        self.stats.messages_delivered += messages
        self.stats.bytes_written += nbytes

    # --- SSE --------------------------------------------------------------

    def sse_prelude(self) -> bytes:
        return sse.retry(self.config.sse_retry_ms)

    # --- observability ----------------------------------------------------

    def stats_body(self) -> bytes:
        s = asdict(self.stats)
        extra = s.pop("extra")
        s.update(extra)
        s["hub_backend"] = self.hub.backend
        s["encoding"] = ENCODING
        s["slow_consumers_dropped"] = self.hub.stats.slow_consumers_dropped + extra.get(
            "slow_consumers_dropped", 0
        )
        s["published"] = self.hub.stats.published
        s["subscribers"] = self.hub.stats.subscribers
        # History per topic, and the requests whose ``since`` it no longer reached.
        s["history"] = self.hub.history
        s["history_gaps"] = self.hub.stats.history_gaps
        s["history_gap_messages"] = self.hub.stats.history_gap_messages
        if self.ticker is not None:
            s["ticker"] = self.ticker.status()
        s["server"] = self.info
        # Process CPU (µs resolution, unlike /proc's 10 ms ticks) and peak RSS, so a
        # runner can charge CPU per delivered message without sampling /proc.
        usage = resource.getrusage(resource.RUSAGE_SELF)
        s["cpu_user_s"] = usage.ru_utime
        s["cpu_sys_s"] = usage.ru_stime
        s["max_rss_kb"] = usage.ru_maxrss
        return json.dumps(s).encode()

    @staticmethod
    def clock_body() -> bytes:
        """``GET /clock``: :func:`pushbench.contract.clock_body` (every stack, one shape)."""
        return clock_body()

    # --- server-originated load -------------------------------------------

    async def control_ticker(
        self, method: str, query: Mapping[str, str], authorization: str | None
    ) -> bytes:
        """``/control/ticker``: :meth:`check_control` (the request's ``Authorization``
        header), then :meth:`run_ticker`."""
        self.check_control(query, authorization)
        return await self.run_ticker(method, query)

    async def run_ticker(self, method: str, query: Mapping[str, str]) -> bytes:
        """POST starts (or replaces) the ticker, DELETE stops it → its status. No token
        check: for ``pushbench serve --ticker``; requests go through :meth:`control_ticker`."""
        if method == "DELETE":
            if self.ticker is not None:
                await self.ticker.stop()
            return json.dumps(self.ticker.status() if self.ticker else {}).encode()
        options = parse_ticker(query, self.config)
        if self.ticker is not None:
            await self.ticker.stop()
        self.ticker = Ticker(
            self.hub,
            options.topic,
            rate=options.rate,
            payload_size=options.size,
            payload_kind=options.kind,
            count=options.count,
            duration_s=options.duration,
            start_delay_s=options.delay,
        )
        self.ticker.start()
        self._arm_pause()  # the self-check pause counts from ticker start
        return json.dumps(self.ticker.status()).encode()


@dataclass(frozen=True)
class TickerOptions:
    """A validated ticker request (see :func:`parse_ticker`)."""

    topic: str
    rate: float
    size: int
    count: int | None
    duration: float | None
    delay: float
    kind: str = "filler"  # h25 (compression): what the payload holds (pushbench.payloads)


TICKER_KEYS = ("topic", "rate", "size", "count", "duration", "delay", "kind")


def parse_ticker(query: Mapping[str, str], config: ServerConfig) -> TickerOptions:
    """Validate the parameters of a ticker → TickerOptions, or HttpError(400).

    The one parser for ``POST /control/ticker`` and ``pushbench serve
    --ticker``, so both accept exactly the same values. Keys other than
    :data:`TICKER_KEYS` are ignored here (a query may carry a token).
    """
    topic = query.get("topic", "")
    if not valid_topic(topic):
        raise HttpError(400, "topic must be 1-64 characters of [A-Za-z0-9_.-]")
    rate = _float(query, "rate", 0.001, 1e6) or 100.0
    if rate > config.max_control_rate:
        cap = config.max_control_rate
        raise HttpError(400, f"rate over this server's cap of {cap:g} msg/s (max_control_rate)")
    size = _int(query, "size", 0, config.max_publish_bytes)
    kind = query.get("kind", "filler")
    if kind not in PAYLOAD_KINDS:
        raise HttpError(400, f"kind must be one of {', '.join(PAYLOAD_KINDS)}")
    return TickerOptions(
        topic=topic,
        rate=rate,
        size=100 if size is None else size,
        count=_int(query, "count", 1, 10**9),
        duration=_float(query, "duration", 0.001, 86400.0),
        delay=_float(query, "delay", 0.0, 60.0) or 0.0,
        kind=kind,
    )


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` listens on loopback only: ``localhost`` or a loopback
    address (127.0.0.0/8, ::1). A wildcard ("", 0.0.0.0, ::) or any other name is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_refusal(host: str, config: ServerConfig, insecure_bind: bool) -> str:
    """Why a server with ``config`` must not bind ``host`` ("" if it may).

    Without an auth secret anyone who reaches the port can publish, subscribe and
    drive the ticker, so such a server stays on loopback unless ``insecure_bind``
    says the exposure is meant (a benchmark on a private network)."""
    if config.auth_secret is not None or insecure_bind or is_loopback(host):
        return ""
    return (
        f"{host or '(all interfaces)'} is not a loopback address and no auth secret is set: "
        "anyone reaching the port could drive the server "
        "(set --auth-secret-env, or --insecure-bind if this exposure is meant)"
    )


_DATA = operator.attrgetter("data")


def batch(items: list[Item], since: int) -> bytes:
    """A poll answer built from the already-encoded items, no re-encoding:
    ``{"last": <seq of the last item, or since>, "messages": [...]}``."""
    last = items[-1].seq if items else since
    return b'{"last":%d,"messages":[' % last + b",".join(map(_DATA, items)) + b"]}"


def ws_frame(item: Item) -> bytes:
    """The item as one unmasked, uncompressed text frame: the bytes every server-side
    WebSocket writer sends for it (aiohttp's, websockets', ours), made once per message
    and shared by every subscriber (cache it with ``item.framed("ws", ws_frame)``)."""
    return encode_frame(Opcode.TEXT, item.data)


def sse_frame(item: Item) -> bytes:
    """The SSE event of an item, cached on it (see :meth:`Item.framed`)."""
    return sse.event(item.data, item.seq)
