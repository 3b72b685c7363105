"""The process's settings: read from the environment once, by an entry point, then applied.

Only the CLI and the process entry points (``pushbench``, the worker modules,
the feeder, the locustfile) read ``os.environ`` and ``sys.argv``: each builds
one :class:`Settings` with :meth:`Settings.from_environ` and calls
:meth:`Settings.apply`, which hands the values to the modules that use them
(the codec's C helpers, the timerfd pacing, the Chromium path). Nothing else in
the package reads the environment, and nothing reads it at import time, so a
test can apply settings of its own. Child processes inherit the environment
the variables came from, so a worker or a server sees the settings the
runner saw; :meth:`Settings.environ` gives them back as variables for a child
started with a clean environment.

- ``PUSHBENCH_NO_SPEEDUPS=1`` → ``speedups = False``: the codec's pure Python/numpy
  path (frame parser, encoder and mask) instead of the compiled one (``_speedups.c``);
- ``PUSHBENCH_NO_RX_LOOP=1`` → ``rx_loop = False``: the light WebSocket and SSE clients
  stay on their asyncio protocols instead of the compiled receive loop
  (:mod:`pushbench.clients.rxengine`; ``PUSHBENCH_NO_SPEEDUPS=1`` turns it off too).
- ``PUSHBENCH_NO_FANOUT=1`` → ``fanout = False``: the raw stack writes each publish to
  each subscriber from Python (its sink and ``transport.write``) instead of one compiled
  call for all of its plain-TCP WebSocket and SSE subscribers (:class:`pushbench.hub.Lane`;
  ``PUSHBENCH_NO_SPEEDUPS=1`` turns it off too).
- ``PUSHBENCH_NO_REMEASURE=1`` → ``remeasure = False``: ``pushbench run`` keeps a repeat
  measured while the machine was slow instead of re-measuring it once
  (:mod:`pushbench.runner.speed`; the test suite sets it, so its runs have exactly
  their planned rows);
- ``PUSHBENCH_COARSE_TIMERS=1`` → ``precise_timers = False``: pacing on asyncio's
  own timers instead of a timerfd;
- ``PUSHBENCH_CHROMIUM=PATH`` → ``chromium = PATH``: the Chromium the browser
  client and the report check use;
- ``PUSHBENCH_CLIENT_FAULTS=recv_bias_ms=10,…`` → ``client_faults``: every asyncio
  client worker breaks itself on purpose (:class:`~pushbench.faults.ClientFaults`, on
  top of its cell's): a broken instrument, which the self-check scenarios must fail on.
  Never for measuring; ``metadata.json`` records it with the other settings.
- ``PUSHBENCH_CLOCK_SKEW_NS=N`` → ``clock_skew_ns``: every client worker (asyncio and
  Locust) takes its clock to be ``CLOCK_MONOTONIC + N`` (a host whose clock is N ns
  ahead), for the test that its offset estimate against ``GET /clock`` recovers it
  (:mod:`pushbench.clients.clockprobe`). Never for measuring.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from pushbench.faults import ClientFaults

__all__ = ["BLAS_ENV_VARS", "ENV", "Settings"]

#: Thread-count variables of the BLAS and OpenMP runtimes numpy may use: recorded per run.
BLAS_ENV_VARS: tuple[str, ...] = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "OPENBLAS_CORETYPE",
)

#: Setting → the environment variable that carries it.
ENV: Mapping[str, str] = {
    "speedups": "PUSHBENCH_NO_SPEEDUPS",
    "precise_timers": "PUSHBENCH_COARSE_TIMERS",
    "chromium": "PUSHBENCH_CHROMIUM",
    "client_faults": "PUSHBENCH_CLIENT_FAULTS",
    "clock_skew_ns": "PUSHBENCH_CLOCK_SKEW_NS",
    "rx_loop": "PUSHBENCH_NO_RX_LOOP",
    "fanout": "PUSHBENCH_NO_FANOUT",
    "remeasure": "PUSHBENCH_NO_REMEASURE",
}


@dataclass(frozen=True)
class Settings:
    """What the environment may change about how pushbench runs (defaults: all on)."""

    speedups: bool = True
    precise_timers: bool = True
    chromium: str | None = None
    #: The BLAS/OpenMP thread variables that were set (name, value): they change numpy.
    blas_env: tuple[tuple[str, str], ...] = ()
    #: Faults every asyncio client worker applies (a deliberately broken instrument).
    client_faults: ClientFaults | None = None
    #: A deliberate clock error of every client worker, ns (issue 18: tests only).
    clock_skew_ns: int = 0
    #: h45: the light clients may use the compiled receive loop (when built).
    rx_loop: bool = True
    #: The raw stack's compiled fan-out (when built).
    fanout: bool = True
    #: ``pushbench run`` re-measures a repeat that ran on a slow machine (runner.speed).
    remeasure: bool = True

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """The settings a process started with ``environ`` runs under."""
        return cls(
            speedups=not environ.get(ENV["speedups"]),
            precise_timers=environ.get(ENV["precise_timers"]) != "1",
            chromium=environ.get(ENV["chromium"]) or None,
            blas_env=tuple((k, environ[k]) for k in BLAS_ENV_VARS if k in environ),
            client_faults=_client_faults(environ.get(ENV["client_faults"], "")),
            clock_skew_ns=_integer(ENV["clock_skew_ns"], environ.get(ENV["clock_skew_ns"], "")),
            rx_loop=not environ.get(ENV["rx_loop"]),
            fanout=not environ.get(ENV["fanout"]),
            remeasure=not environ.get(ENV["remeasure"]),
        )

    def environ(self) -> dict[str, str]:
        """The environment variables that give a child process these settings."""
        out: dict[str, str] = {}
        if not self.speedups:
            out[ENV["speedups"]] = "1"
        if not self.precise_timers:
            out[ENV["precise_timers"]] = "1"
        if self.chromium:
            out[ENV["chromium"]] = self.chromium
        out.update(self.blas_env)
        if self.client_faults is not None:
            out[ENV["client_faults"]] = self.client_faults.as_text()
        if self.clock_skew_ns:
            out[ENV["clock_skew_ns"]] = str(self.clock_skew_ns)
        if not self.rx_loop:
            out[ENV["rx_loop"]] = "1"
        if not self.fanout:
            out[ENV["fanout"]] = "1"
        if not self.remeasure:
            out[ENV["remeasure"]] = "1"
        return out

    def apply(self) -> None:
        """Hand every setting to the module that uses it (idempotent)."""
        from pushbench import browser, timers
        from pushbench.wire import speedups

        speedups.use_speedups(self.speedups)
        speedups.use_rx_loop(self.rx_loop)
        speedups.use_fanout(self.fanout)
        timers.use_precise(self.precise_timers)
        browser.use_chromium(self.chromium)

    def to_dict(self) -> dict[str, Any]:
        """For run metadata."""
        return asdict(self)


def _client_faults(text: str) -> ClientFaults | None:
    """``PUSHBENCH_CLIENT_FAULTS``'s value → the faults (None when unset or all off);
    ValueError (naming the variable) when it cannot be read: a broken instrument must not
    be asked for and silently not be."""
    try:
        faults = ClientFaults.parse(text)
    except ValueError as exc:
        raise ValueError(f"{ENV['client_faults']}: {exc}") from None
    return faults if faults.any else None


def _integer(name: str, text: str) -> int:
    """An integer variable's value (0 when unset); ValueError naming it otherwise."""
    try:
        return int(text.strip() or "0")
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {text!r}") from None
