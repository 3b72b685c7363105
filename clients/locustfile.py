"""Locust users for pushbench's push transports: ``locust -f clients/locustfile.py``.

One User class per transport with a ``gevent`` client in :mod:`pushbench.registry`
— ``WsUser``, ``SseUser``, ``LongPollUser``, ``ShortPollUser`` (named by
:mod:`pushbench.clients.locust_users`) — all the same :class:`PushUser` over the
row's :class:`~pushbench.clients.locust_common.PushSession` class, made here from
the rows when Locust imports this file. A user connects to ``--host``
(the server's base URL, e.g. ``http://127.0.0.1:8080``), subscribes to the
topic and stays subscribed; every message it receives is one Locust request
event (type = the transport, name = the topic, response time = receive −
scheduled publish time, length = its bytes on the socket), every failed or
broken connection a failure. The server must publish by itself: start it
with ``pushbench serve --ticker "topic=bench,rate=100"`` (or
``POST /control/ticker``). See ``docs/locust.md``.

Options (command line, ``locust.conf``, the web UI's custom parameters, or
the environment variables named): ``--push-topic`` (``LOCUST_PUSH_TOPIC``,
default ``bench``), ``--push-token`` (``LOCUST_PUSH_TOKEN``; prefer the
variable, argv is visible to every local user), ``--push-poll-interval``
and ``--push-poll-timeout`` (seconds, short and long polling),
``--push-connect-timeout``. Outside Locust's options:
``PUSHBENCH_RECEIPTS_DIR`` makes every process that runs users write its
receipts (``<pid>.npz``) and counters (``<pid>.json``) there when it quits,
and a ``<pid>.ready`` note while users connect (``pushbench.clients.locust_worker``
reads them); ``PUSHBENCH_RECEIPTS_CAPACITY`` sizes the receipt arrays
(rows per process, default 2,000,000).

Two changes to Locust's defaults, both through its documented hooks:
response times are bucketed to two significant digits at every scale (Locust
rounds everything under 100 ms to whole milliseconds, which would show every
sub-millisecond push as 0 ms), and ``SIGUSR1`` to a local or master process
ends the test the way ``--run-time`` does (the runner quits: users stopped, a
master's workers send their last report first, so the HTML report and the
final stats include it).

Locust imports this file as its entry point: the process's
:class:`~pushbench.settings.Settings` are read from the environment and applied
here, at import.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any, ClassVar

import gevent
import locust.stats
from locust import User, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from pushbench import registry
from pushbench.clients.locust_common import PushSession, session_class
from pushbench.clients.locust_process import LocustProcess
from pushbench.clients.locust_users import user_classes
from pushbench.schema.worker import WorkerSpec
from pushbench.settings import Settings

SETTINGS = Settings.from_environ(os.environ)
SETTINGS.apply()

RECEIPTS_DIR_ENV = "PUSHBENCH_RECEIPTS_DIR"
CAPACITY_ENV = "PUSHBENCH_RECEIPTS_CAPACITY"
END_SIGNAL = signal.SIGUSR1

_process: LocustProcess | None = None
_stats_final_at: float | None = None  # time.monotonic() when the runner quit on END_SIGNAL
_locust_bucket = locust.stats.bucket_response_time


def bucket_response_time(response_time: float) -> float:
    """Locust's buckets from 10 ms up (two significant digits: 147 → 150); below, two
    significant digits as well (0.347 → 0.35) where Locust would round to whole
    milliseconds. Comparisons only: this runs twice per message."""
    if response_time >= 10:
        return _locust_bucket(response_time)
    if response_time >= 1:
        return round(response_time, 1)
    if response_time >= 0.1:
        return round(response_time, 2)
    return round(response_time, 3)


# Locust's documented extension point (stats.bucket_response_time); its percentile code
# takes any numeric keys, and the master/worker protocol sends float keys fine.
locust.stats.bucket_response_time = bucket_response_time  # type: ignore[assignment]


#: The ``--push-*`` options: (flag, type, default, help); each also reads LOCUST_PUSH_*.
OPTIONS: tuple[tuple[str, type, Any, str], ...] = (
    ("--push-topic", str, "bench", "topic to subscribe to"),
    ("--push-token", str, "", "access token, when the server wants one (prefer the env var)"),
    ("--push-poll-interval", float, 0.1, "short polling: seconds between polls"),
    ("--push-poll-timeout", float, 30.0, "long polling: seconds the server may hold a poll"),
    ("--push-connect-timeout", float, 10.0, "seconds to connect and finish the handshake"),
)


def _add_options(parser: Any, **_kwargs: Any) -> None:
    for flag, kind, default, text in OPTIONS:
        parser.add_argument(  # on the parser itself: only its add_argument takes is_secret
            flag,
            type=kind,
            default=default,
            env_var="LOCUST_" + flag[2:].replace("-", "_").upper(),
            is_secret=flag == "--push-token",
            help=f"{text} (default {default!r})",
        )


def _on_init(environment: Environment, **_kwargs: Any) -> None:
    global _process
    out = os.environ.get(RECEIPTS_DIR_ENV)
    _process = LocustProcess(
        environment.events.request.fire,
        out_dir=Path(out) if out else None,
        capacity=int(os.environ.get(CAPACITY_ENV) or 2_000_000),
        clock_skew_ns=SETTINGS.clock_skew_ns,
    )
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        _process.role = "worker"
        _process.worker_index = runner.worker_index
    elif isinstance(runner, MasterRunner):
        _process.role = "master"
    if runner is not None and not isinstance(runner, WorkerRunner):
        gevent.signal_handler(END_SIGNAL, _end_test, environment)


def _end_test(environment: Environment) -> None:
    """End the test as ``--run-time`` does: ``quit`` stops the users (a master tells its
    workers, which stop theirs and send a last stats report, and waits for it)."""
    global _stats_final_at
    runner = environment.runner
    if runner is not None:
        runner.quit()
        _stats_final_at = time.monotonic()


def _on_test_stopping(**_kwargs: Any) -> None:
    if _process is not None:
        _process.lag.stop()  # stopping users and writing reports are not the run's pauses


def _on_quitting(environment: Environment, **_kwargs: Any) -> None:
    if _process is None:
        return
    if isinstance(environment.runner, WorkerRunner):  # the master assigns it after init
        _process.worker_index = environment.runner.worker_index
    _process.write_outputs()
    options = environment.parsed_options
    if _process.role != "worker" and options is not None and options.csv_prefix:
        # Locust rewrites the CSV files every CSV_STATS_INTERVAL_SEC, not at exit: give
        # its writer one more turn after the last reports are in (at the end of quit).
        since = time.monotonic() - (_stats_final_at or time.monotonic())
        gevent.sleep(max(0.0, locust.stats.CSV_STATS_INTERVAL_SEC + 0.1 - since))


# Locust's EventHook.add_listener is unannotated.
events.init_command_line_parser.add_listener(_add_options)  # type: ignore[no-untyped-call]
events.init.add_listener(_on_init)  # type: ignore[no-untyped-call]
events.test_stopping.add_listener(_on_test_stopping)  # type: ignore[no-untyped-call]
events.quitting.add_listener(_on_quitting)  # type: ignore[no-untyped-call]


def _spec(user: PushUser) -> WorkerSpec:
    """The user's connection settings, from ``--host`` and the ``--push-*`` options
    (defaults when Locust runs without a command line, e.g. as a library)."""
    options = user.environment.parsed_options

    def opt(name: str, default: Any) -> Any:
        return getattr(options, name, default)

    return WorkerSpec(
        transport=user.transport,
        base_url=(user.host or "").rstrip("/"),
        topic=opt("push_topic", "bench"),
        token=opt("push_token", "") or None,
        poll_interval_s=opt("push_poll_interval", 0.1),
        poll_timeout_s=opt("push_poll_timeout", 30.0),
        connect_timeout_s=opt("push_connect_timeout", 10.0),
    )


class PushUser(User):
    """One subscriber: its session is made at start (a bad ``--host`` or option stops
    the user there, once) and its single task receives until Locust stops the user."""

    abstract = True
    transport: ClassVar[str]
    session: PushSession

    def on_start(self) -> None:
        if _process is None:
            raise RuntimeError("clients/locustfile.py: the init event has not run")
        self.session = _process.new_session(session_class(self.transport), _spec(self))

    @task
    def receive(self) -> None:
        self.session.serve()


def _user_class(transport: str, name: str) -> type[PushUser]:
    """The User class of ``transport``: :class:`PushUser` bound to it."""
    row = registry.transport(transport)
    doc = f"{row.label}: ``GET {row.path}``, one Locust request event per message."
    attrs = {"transport": transport, "__module__": __name__, "__doc__": doc}
    return type(name, (PushUser,), attrs)


# Locust finds the User classes among this module's globals (by name on its command line).
for _transport, _name in user_classes().items():
    globals()[_name] = _user_class(_transport, _name)
