"""Run a scenario's ``[abuse]`` probes: per stack a freshly started server (the runner's
own start path, pinned like any cell's, auth on), every probe of :data:`.probes.PROBES`
in turn with RSS, ``/health`` latency and log bytes measured around it, then the server
stopped by pid. Records: :mod:`pushbench.schema.abuse`.

The server is told its auth secret through ``env NAME=VALUE`` in front of its command
(never in its own argv, and nothing here reads the environment); its head timeout is
the spec's, its connection cap above every probe's count. The probes run in this
process; a probe that raises or outlives its bound is recorded as failed with the
reason, and the run goes on.
"""

from __future__ import annotations

import asyncio
import resource
import secrets
import shutil
import time
from pathlib import Path

from pushbench.procs import Pinning, ProcessGroup, sample
from pushbench.scenario import Cell, from_dict
from pushbench.scenario.abuse import AbuseSpec
from pushbench.schema.abuse import Health, Outcome, ProbeRecord

from ..memory import server_port
from ..server import start_server
from .health import Sampler
from .probes import PROBES, Probe, Target

__all__ = ["SECRET_ENV", "abuse_cell", "run_abuse", "run_stack"]

SECRET_ENV = "PUSHBENCH_ABUSE_SECRET"
SETTLE_S = 1.0  # after a probe's connections close, before the "after" RSS reading


def abuse_cell(stack: str, spec: AbuseSpec, scenario: str = "abuse") -> Cell:
    """The cell whose server the probes attack: a WebSocket cell of ``stack`` sized for
    the idle probe, built by the scenario parser so it has every field's default."""
    data = {"name": scenario, "stacks": stack, "transports": "ws", "rate": 0}
    data |= {"subscribers": spec.idle_conns, "duration_s": 1, "warmup_s": 0, "repeats": 1}
    return from_dict(data).cells()[0]


def _server_args(spec: AbuseSpec) -> list[str]:
    most = max(spec.idle_conns, spec.upgrade_flood, spec.slowloris_conns) + 1000
    args = ["--auth-secret-env", SECRET_ENV, "--head-timeout-s", repr(spec.head_timeout_s)]
    args += ["--max-connections", str(most)]
    return [*args, "--max-control-rate", repr(max(spec.slow_consumer_rate, 100000.0))]


def _raise_open_files(spec: AbuseSpec) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * max(spec.idle_conns, spec.upgrade_flood) + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def _rss(pid: int) -> int | None:
    s = sample(pid)
    return None if s is None else s.rss_bytes


def _log_size(path: Path | None) -> int:
    return path.stat().st_size if path is not None and path.exists() else 0


def _bound_s(spec: AbuseSpec) -> float:
    return 30.0 + spec.slowloris_s + 2 * spec.slow_consumer_s + 4 * spec.timeout_s


async def _probe(
    stack: str, probe: Probe, t: Target, spec: AbuseSpec, log: Path | None
) -> ProbeRecord:
    before, log_before, start = _rss(t.pid), _log_size(log), time.monotonic()
    sampler = Sampler(t, spec.health_interval_s, spec.timeout_s)
    sampler.start()
    status, reason, outcome = "ok", "", Outcome()
    try:
        outcome = await asyncio.wait_for(probe.run(t, spec), _bound_s(spec))
    except Exception as exc:  # a probe's failure is a finding, not the run's end
        status, reason = "failed", f"{type(exc).__name__}: {exc}"[:500]
    health: Health = await sampler.stop()
    seconds = time.monotonic() - start
    await asyncio.sleep(SETTLE_S)
    if sample(t.pid) is None:
        status, reason = "failed", reason or "the server exited"
    return ProbeRecord(
        stack=stack,
        probe=probe.name,
        size=probe.size(spec),
        status=status,
        reason=reason,
        seconds=round(seconds, 3),
        rss_before_bytes=before,
        rss_under_bytes=sampler.peak_rss,
        rss_after_bytes=_rss(t.pid),
        log_bytes=_log_size(log) - log_before,
        health=health,
        outcome=outcome,
    )


def run_stack(
    stack: str, spec: AbuseSpec, log_dir: Path, pinning: Pinning, scenario: str = "abuse"
) -> list[ProbeRecord]:
    """Every probe against one freshly started server of ``stack``, stopped by pid after."""
    group = ProcessGroup(log_dir)
    secret = secrets.token_hex(16)
    env = shutil.which("env") or "/usr/bin/env"
    try:
        server = start_server(
            group,
            abuse_cell(stack, spec, scenario),
            pinning,
            extra_args=_server_args(spec),
            argv_prefix=[env, f"{SECRET_ENV}={secret}"],
        )
        port = server_port(server.base_url)
        assert port is not None, server.base_url
        target = Target("127.0.0.1", port, server.started.pid, secret.encode())
        log = server.started.log_path

        async def all_probes() -> list[ProbeRecord]:
            return [await _probe(stack, p, target, spec, log) for p in PROBES]

        return asyncio.run(all_probes())
    except Exception as exc:  # the server did not start: one failed record per probe
        why = f"{type(exc).__name__}: {exc}"[:500]
        return [ProbeRecord(stack, p.name, p.size(spec), "failed", why) for p in PROBES]
    finally:
        for started in list(group.started):
            group.stop(started)
        group.started.clear()


def run_abuse(
    spec: AbuseSpec, run_dir: Path, pinning: Pinning, scenario: str = "abuse"
) -> list[ProbeRecord]:
    """Every stack of ``spec`` in turn (:func:`run_stack`); logs under
    ``run_dir/logs/abuse-<stack>/``."""
    _raise_open_files(spec)
    records: list[ProbeRecord] = []
    for stack in spec.stacks:
        records += run_stack(stack, spec, run_dir / "logs" / f"abuse-{stack}", pinning, scenario)
    return records
