"""``pushbench serve``: run one server stack until SIGINT or SIGTERM.

The stacks are the rows of :mod:`pushbench.registry` that name a module (an
external stack, started from its own command line, is not served from here); each
module exposes ``STACK`` (:class:`pushbench.servers.base.Stack`) and is imported only
when chosen, so adding a stack is one registry row plus its module. This command
builds what every stack shares — the hub (in-process or Redis), the
:class:`~pushbench.service.PushService` and its
:class:`~pushbench.service.ServerConfig` — so every stack runs with the same
knobs, then hands them to ``STACK.run``. Once listening, exactly one line goes
to stdout (flushed), and nothing before it; it is what the runner and the
tests wait for::

    pushbench serve: stack=raw listening on http://127.0.0.1:8765

A signal starts a graceful shutdown: the stack closes its WebSockets with
1001, ends its streams and answers its held long polls, the ticker stops, the
hub stops, exit status 0, and nothing is logged (``tests/test_shutdown.py``
checks every stack with a connection of every transport open).
Exit status 1: the server could not start (port taken, Redis unreachable);
2: a bad option value, named in the message.

Secrets never appear in argv or in logs: ``--auth-secret-env`` names the
environment variable holding the token secret. With it, ``/control/*`` and ``/echo``
take a control-scope token (:func:`pushbench.auth.make_control_token`); without it,
a non-loopback ``--host`` is refused (exit 2) unless ``--insecure-bind`` is given.
``--max-control-rate`` caps the ticker's rate (400 over it) with or without auth.
Once listening, the start-up heap is frozen (``gc.freeze``, as twins and workers do).
"""

from __future__ import annotations

import argparse
import gc
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pushbench import lograte, registry
from pushbench.faults import Faults
from pushbench.fdlimit import FD_SLACK, SERVER_FDS_PER_CONN, NofileLimit, raise_nofile
from pushbench.lograte import LogRateLimit
from pushbench.service import (
    TICKER_KEYS,
    ConfigError,
    HttpError,
    ServerConfig,
    bind_refusal,
    parse_ticker,
)

from . import reuseport
from .base import StackOptions

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pushbench.hub import Hub

    from .base import Stack

LOOPS = ("asyncio", "uvloop")
WS_IMPLS = ("auto", "none", "websockets", "websockets-sansio", "wsproto")  # uvicorn's --ws
DEFAULT_WS_IMPL = StackOptions.ws
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"  # issue 12 item 4 (h31)
DEFAULT_NATS_PREFIX = "pushbench"
DEFAULT_REDIS_PREFIX = "pushbench:"  # RedisHub's default
DEFAULT_HISTORY = 1000  # Hub's defaults
DEFAULT_QUEUE_LIMIT = 10000
DEFAULT_LOG_BURST = 10  # a client must not flood the log (pushbench.lograte)
DEFAULT_LOG_INTERVAL = 60.0


def stack_names() -> tuple[str, ...]:
    """The stacks ``pushbench serve`` runs: the registry's rows with a module, in its order."""
    return tuple(s.name for s in registry.stacks() if s.module is not None)


def stack_module(name: str) -> str:
    """The module exposing ``STACK`` for stack ``name`` (RegistryError if unknown)."""
    module = registry.stack(name).module
    if module is None:
        raise registry.RegistryError(f"stack {name!r} is external: not served by pushbench serve")
    return module


class OptionError(Exception):
    """A bad option value found after argparse: exit status 2, naming the option."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"argument {option}: {message}")
        self.option = option


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in [0, 65535], not {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = ServerConfig()
    add = parser.add_argument
    add(
        "--stack",
        choices=sorted(stack_names()),
        default="raw",
        help="server stack (default %(default)s)",
    )
    add("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    add(
        "--insecure-bind",
        action="store_true",
        help="allow a non-loopback --host without --auth-secret-env (refused otherwise: "
        "anyone reaching the port could publish and drive the ticker; default: refused)",
    )
    add("--port", type=_port, default=8765, help="port to bind, 0 = any free one (default 8765)")
    add("--reuse-port", action="store_true", help=reuseport.HELP)  # h44 (issue 18 item 2)
    add(
        "--loop",
        choices=LOOPS,
        default="asyncio",
        help="event loop the stack runs on (default %(default)s)",
    )
    add(  # h25 (compression)
        "--compression",
        choices=("off", "deflate"),
        default="off",
        help="permessage-deflate on WebSockets: off (never negotiated) or deflate "
        "(accepted when the client offers it) (default %(default)s)",
    )
    add(
        "--ws-impl",
        choices=WS_IMPLS,
        default=None,
        metavar="IMPL",
        help=f"uvicorn's WebSocket implementation, one of {', '.join(WS_IMPLS)}; "
        f"only meaningful for --stack starlette, ignored by the others "
        f"(default {DEFAULT_WS_IMPL})",
    )
    log = parser.add_argument_group("log")
    log.add_argument(
        "--log-burst",
        type=_count,
        default=DEFAULT_LOG_BURST,
        help="at most this many similar log records (same logger, message template and "
        "peer) per --log-interval; the rest are counted and summed up in one "
        "'suppressed K similar records' line (default %(default)s)",
    )
    log.add_argument(
        "--log-interval",
        type=_seconds,
        default=DEFAULT_LOG_INTERVAL,
        help="seconds of the log rate limit's window (default %(default)s)",
    )
    hub = parser.add_argument_group("hub")
    hub.add_argument(
        "--hub",
        choices=("memory", "redis", "nats"),
        default="memory",
        help="in-process hub, or Redis pub/sub or NATS JetStream shared by several servers "
        "(default %(default)s)",
    )
    hub.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        metavar="URL",
        help="Redis for --hub redis (default %(default)s)",
    )
    hub.add_argument(
        "--redis-prefix",
        default=DEFAULT_REDIS_PREFIX,
        metavar="PREFIX",
        help="prefix of the Redis keys and channels for --hub redis: servers sharing one "
        "prefix share its topics' sequence and history; another prefix starts afresh "
        "(default %(default)s)",
    )
    # issue 12 item 4 (scale-out, h31): the NATS hub
    hub.add_argument(
        "--nats-url",
        default=DEFAULT_NATS_URL,
        metavar="URL",
        help="NATS (JetStream on) for --hub nats (default %(default)s)",
    )
    hub.add_argument(
        "--nats-prefix",
        default=DEFAULT_NATS_PREFIX,
        metavar="PREFIX",
        help="prefix of the NATS streams and subjects for --hub nats ([A-Za-z0-9_-]): "
        "servers sharing one prefix share its topics' sequence and history "
        "(default %(default)s)",
    )
    hub.add_argument(
        "--history",
        type=_count,
        default=DEFAULT_HISTORY,
        metavar="N",
        help="messages kept per topic for resume and polling (default %(default)s)",
    )
    hub.add_argument(
        "--queue-limit",
        type=_count,
        default=DEFAULT_QUEUE_LIMIT,
        metavar="N",
        help="a subscriber this many messages behind is dropped as a slow consumer "
        "(default %(default)s)",
    )
    hub.add_argument(
        "--faults",
        type=_faults,
        default=None,
        metavar="SPEC",
        help="deliberate faults for the instrument's self-checks, e.g. 'delay_ms=5', "
        "'drop_every=100', 'pause_ms=200,pause_at_s=1' (pause counted from ticker start); "
        "never for real measurements (default: none)",
    )
    ws = parser.add_argument_group("WebSocket")
    ws.add_argument(
        "--ping-interval",
        type=float,
        default=d.ping_interval,
        metavar="S",
        help="seconds between keepalive pings, 0 = off (default %(default)s)",
    )
    ws.add_argument(
        "--ping-timeout",
        type=float,
        default=d.ping_timeout,
        metavar="S",
        help="a peer silent this long after a ping is dropped (raw, starlette; aiohttp waits "
        "half the ping interval; default %(default)s)",
    )
    ws.add_argument(
        "--close-timeout",
        type=float,
        default=d.close_timeout,
        metavar="S",
        help="wait this long for a peer to close, then abort (raw; the others use their "
        "own; default %(default)s)",
    )
    ws.add_argument(
        "--max-message-size",
        type=int,
        default=d.max_message_size,
        metavar="BYTES",
        help="larger messages to /echo are refused with close 1009 (default %(default)s)",
    )
    ws.add_argument(
        "--write-buffer-limit",
        type=int,
        default=d.write_buffer_limit,
        metavar="BYTES",
        help="per-connection output buffer; writes pause at half of it (raw; default %(default)s)",
    )
    http = parser.add_argument_group("SSE, polling and publishing")
    http.add_argument(
        "--heartbeat-interval",
        type=float,
        default=d.heartbeat_interval,
        metavar="S",
        help="seconds between SSE heartbeat comments (default %(default)s)",
    )
    http.add_argument(
        "--sse-retry-ms",
        type=int,
        default=d.sse_retry_ms,
        metavar="MS",
        help="the reconnection delay SSE clients are told (default %(default)s)",
    )
    http.add_argument(
        "--max-publish-bytes",
        type=int,
        default=d.max_publish_bytes,
        metavar="BYTES",
        help="largest payload of POST /publish or a /ws text message, 413 / 1009 beyond "
        "(default %(default)s)",
    )
    limits = parser.add_argument_group("access and limits")
    limits.add_argument(
        "--max-connections",
        type=int,
        default=d.max_connections,
        metavar="N",
        help="open WebSockets and SSE streams beyond this are refused with 429 "
        "(default %(default)s)",
    )
    limits.add_argument(
        "--head-timeout-s",
        type=float,
        default=d.head_timeout,
        metavar="S",
        help="close a connection that has not sent a whole request head within S seconds "
        "of connecting or of its last response (slowloris; idle keep-alive included) "
        "(default %(default)g)",
    )
    limits.add_argument(
        "--auth-secret-env",
        default=None,
        metavar="NAME",
        help="require tokens, checked with the secret in environment variable NAME "
        "(never on the command line; default: no tokens required)",
    )
    limits.add_argument(
        "--max-control-rate",
        type=float,
        default=d.max_control_rate,
        metavar="MSG_PER_S",
        help="POST /control/ticker (and --ticker) with a higher rate is refused with 400 "
        "(default %(default)g)",
    )
    limits.add_argument(
        "--origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="allow WebSocket upgrades only from this Origin; repeat for several "
        "(default: any origin)",
    )
    # issue 12 item 2 (TLS)
    tls = parser.add_argument_group("TLS")
    tls.add_argument(
        "--tls-cert",
        type=Path,
        default=None,
        metavar="PEM",
        help="serve https:// and wss:// with this certificate (chain) file; needs --tls-key "
        "(default: plaintext)",
    )
    tls.add_argument(
        "--tls-key",
        type=Path,
        default=None,
        metavar="PEM",
        help="the private key of --tls-cert (default: none)",
    )
    load = parser.add_argument_group("server-originated load")
    load.add_argument(
        "--ticker",
        default=None,
        metavar="SPEC",
        help="start the ticker at startup, as POST /control/ticker would: "
        '"topic=T,rate=R,size=N,count=C,duration=S,delay=D" (topic required; defaults '
        "rate=100 per s, size=100 bytes, no count or duration limit, delay=0; "
        "default: no ticker)",
    )


def config_from(args: argparse.Namespace, environ: Mapping[str, str]) -> ServerConfig:
    """The ServerConfig the options describe → OptionError naming a bad one.

    ``environ`` is the environment the CLI read (``--auth-secret-env`` names a variable
    of it: the secret never travels in argv)."""
    env = environ
    secret: bytes | None = None
    if args.auth_secret_env is not None:
        value = env.get(args.auth_secret_env, "")
        if not value:
            raise OptionError(
                "--auth-secret-env", f"environment variable {args.auth_secret_env} is not set"
            )
        secret = value.encode()
    try:
        return ServerConfig(
            ping_interval=args.ping_interval,
            ping_timeout=args.ping_timeout,
            close_timeout=args.close_timeout,
            heartbeat_interval=args.heartbeat_interval,
            sse_retry_ms=args.sse_retry_ms,
            max_message_size=args.max_message_size,
            max_publish_bytes=args.max_publish_bytes,
            write_buffer_limit=args.write_buffer_limit,
            max_connections=args.max_connections,
            auth_secret=secret,
            max_control_rate=args.max_control_rate,
            head_timeout=args.head_timeout_s,
            origins=tuple(args.origin) if args.origin else None,
        )
    except ConfigError as exc:
        option = "head_timeout_s" if exc.field == "head_timeout" else exc.field
        raise OptionError("--" + option.replace("_", "-"), exc.message) from None


def ticker_query(spec: str, config: ServerConfig) -> dict[str, str]:
    """``--ticker "topic=T,rate=R,..."`` → the query POST /control/ticker takes.

    Validated here with the service's own parser, so a bad value stops the
    command before anything starts; unknown keys are refused (a typo would
    otherwise silently fall back to a default).
    """
    query: dict[str, str] = {}
    for part in spec.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or key not in TICKER_KEYS:
            raise OptionError(
                "--ticker", f"expected KEY=VALUE with KEY in {', '.join(TICKER_KEYS)}"
            )
        if key in query:
            raise OptionError("--ticker", f"{key} given twice")
        query[key] = value.strip()
    try:
        parse_ticker(query, config)
    except HttpError as exc:
        raise OptionError("--ticker", exc.error) from None
    return query


def run(args: argparse.Namespace) -> int:
    import asyncio
    import importlib

    try:
        config = config_from(args, args.environ)
        ticker = ticker_query(args.ticker, config) if args.ticker is not None else None
        refusal = bind_refusal(args.host, config, args.insecure_bind)
        if refusal:
            raise OptionError("--host", refusal)
    except OptionError as exc:
        print(f"pushbench serve: error: {exc}", file=sys.stderr)
        return 2
    try:
        context = _tls_context(args.tls_cert, args.tls_key)
        sockets = reuseport.bind_node(args.host, args.port) if args.reuse_port else ()
    except (OptionError, OSError) as exc:  # h44: OSError: the shared port is not shareable
        print(f"pushbench serve: error: {exc}", file=sys.stderr)
        return 2
    if args.faults is not None and args.hub != "memory":
        print("pushbench serve: error: argument --faults: needs --hub memory", file=sys.stderr)
        return 2
    options = StackOptions(
        loop=args.loop,
        ws=args.ws_impl or DEFAULT_WS_IMPL,
        ssl=context,
        compression=args.compression,
        sockets=sockets,
    )
    stack: Stack = importlib.import_module(stack_module(args.stack)).STACK
    loop_factory = None
    if args.loop == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
    # issue 18 item 2: a descriptor per connection, past the usual open-file limits
    nofile = raise_nofile(SERVER_FDS_PER_CONN * config.max_connections + FD_SLACK)
    # Said when --max-connections asks for more than allowed; the default only records it.
    if not nofile.enough and config.max_connections != ServerConfig().max_connections:
        print(f"pushbench serve: warning: {nofile.line()}", file=sys.stderr)
    limit = LogRateLimit(args.log_burst, args.log_interval)
    handler = lograte.install(limit)
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(_serve(args, stack, config, ticker, options, limit, nofile))
    finally:
        limit.sweep(flush=True)
        lograte.uninstall(handler)


def _faults(value: str) -> Faults:
    try:
        return Faults.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _make_hub(args: argparse.Namespace) -> Hub:
    if args.hub == "redis":
        from pushbench.hub_redis import RedisHub

        return RedisHub(
            url=args.redis_url,
            prefix=args.redis_prefix,
            history=args.history,
            queue_limit=args.queue_limit,
        )
    if args.hub == "nats":  # issue 12 item 4 (h31)
        from pushbench.hub_nats import NatsHub

        return NatsHub(
            url=args.nats_url,
            prefix=args.nats_prefix,
            history=args.history,
            queue_limit=args.queue_limit,
        )
    from pushbench.hub import Hub

    return Hub(history=args.history, queue_limit=args.queue_limit, faults=args.faults)


def _tls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """The server's SSL context of --tls-cert/--tls-key (None: neither) → OptionError when
    only one is given or the files do not load."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise OptionError("--tls-cert" if cert is None else "--tls-key", "needed with the other")
    from pushbench.tls import server_context

    try:
        return server_context(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise OptionError("--tls-cert", f"cannot load {cert} / {key}: {exc}") from None


async def _serve(
    args: argparse.Namespace,
    stack: Stack,
    config: ServerConfig,
    ticker: dict[str, str] | None,
    options: StackOptions,
    limit: LogRateLimit,
    nofile: NofileLimit | None = None,
) -> int:
    import asyncio
    import signal

    from pushbench.service import PushService

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:  # from the start: a signal during startup still ends cleanly
        loop.add_signal_handler(sig, stop.set)
    ready = False

    def on_ready(port: int) -> None:
        nonlocal ready
        ready = True
        gc.freeze()  # full collections of the start-up heap paused the server ~37 ms each
        service.info["gc_frozen"] = str(gc.get_freeze_count())
        print(reuseport.ready_line(stack.name, args.host, port, options), flush=True)

    sweeping = asyncio.create_task(_sweep(limit))
    hub = _make_hub(args)
    try:
        try:
            await hub.start()
        except OSError as exc:  # RedisHubError names the (redacted) URL
            print(f"pushbench serve: cannot start the {args.hub} hub: {exc}", file=sys.stderr)
            return 1
        service = PushService(hub, config)
        service.info.update(
            stack=stack.name,
            loop=args.loop,
            # a stack that takes --ws-impl records it; for the others it is the stack's own
            ws_impl=options.ws if "ws_impl" in registry.stack(stack.name).options else stack.name,
            compression=options.compression,
            # issue 18 item 2: the open-file limit it raised itself (None: not raised here)
            open_files="not raised" if nofile is None else nofile.line(),
            open_files_soft=str(None if nofile is None else nofile.soft),  # h44: a number
            faults=str(args.faults) if args.faults is not None else "none",
        )
        try:
            if ticker is not None:
                await service.run_ticker("POST", ticker)
            try:
                await stack.run(service, args.host, args.port, on_ready, stop, options)
            except OSError as exc:
                if ready:
                    raise
                where = f"{args.host}:{args.port}"
                print(f"pushbench serve: cannot listen on {where}: {exc}", file=sys.stderr)
                return 1
        finally:
            if service.ticker is not None:
                await service.ticker.stop()
        if not stop.is_set():
            print(f"pushbench serve: stack {stack.name} stopped by itself", file=sys.stderr)
            return 1
        return 0
    finally:
        sweeping.cancel()
        await hub.stop()
        for sig in signals:
            loop.remove_signal_handler(sig)


async def _sweep(limit: LogRateLimit) -> None:
    """Every interval, the summaries of the log rate limit's ended windows."""
    import asyncio

    while True:
        await asyncio.sleep(limit.interval)
        limit.sweep()
