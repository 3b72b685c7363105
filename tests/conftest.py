"""Shared fixtures: free loopback ports and ``pushbench serve`` subprocesses.

Integration tests run the real command in a child process on 127.0.0.1 with
``--port 0`` and learn the port from its one ready line, so tests never race
each other for a port. Every process a fixture starts is stopped in its
teardown (SIGTERM, then SIGKILL), and a server that logged a traceback or
exited non-zero fails the test that used it: errors inside asyncio callbacks
are only ever logged, never raised into the test.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """The suite runs under the codec path its environment names, as a process would:
    ``PUSHBENCH_NO_SPEEDUPS=1 make test`` runs everything on the pure Python path
    (servers and workers inherit the variable; tests that compare the two paths
    switch explicitly). ``pushbench run`` in a test keeps exactly its planned rows: no
    re-measure of a repeat that ran while the (shared, loaded) machine was slow —
    tests/test_speed.py turns it on where it is the subject."""
    from pushbench.wire import speedups

    speedups.use_speedups(not os.environ.get("PUSHBENCH_NO_SPEEDUPS"))
    os.environ.setdefault("PUSHBENCH_NO_REMEASURE", "1")


READY = re.compile(r"^pushbench serve: stack=(\S+) listening on https?://(\S+):(\d+)$")
TWIN_READY = re.compile(r"^pushbench twin: stack=(\S+) listening on http://(\S+):(\d+)$")
READY_TIMEOUT = 20.0  # cold imports on a loaded CI machine


@dataclass
class ServerProcess:
    """A running ``pushbench serve`` child and where it listens."""

    proc: subprocess.Popen[bytes]
    stack: str
    host: str
    port: int
    log: Path  # the child's stderr

    def url(self, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"

    def ws_url(self, path: str) -> str:
        return self.url(path, "ws")

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the server (if still running) and reap it → exit status.

        Falls back to SIGKILL after ``timeout``; a kill shows as a negative
        status, which :meth:`check` reports.
        """
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode

    def check(self) -> None:
        """Fail if the server exited badly or logged a traceback."""
        rc = self.proc.returncode
        text = self.stderr()
        if rc != 0 or "Traceback" in text:
            pytest.fail(f"{self.stack} server exited {rc}; stderr:\n{text}", pytrace=False)


def start_server(
    log: Path,
    *args: str,
    stack: str = "raw",
    env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
) -> ServerProcess:
    """Start ``pushbench serve --stack STACK`` on a free port of ``host`` (loopback unless
    told), wait until ready.

    ``env`` adds variables to the child's environment (e.g. an auth secret).
    """
    cmd = [sys.executable, "-m", "pushbench.cli", "serve", "--stack", stack]
    cmd += ["--host", host, "--port", "0", *args]
    return _launch(cmd, log, READY, env)


def start_twin(log: Path, stack: str, history: int = 1000) -> ServerProcess:
    """Start the hand-written twin ``stack`` (an external registry row, ``servers/minimal``)
    from its row's argv on port 0, wait for its ready line."""
    from pushbench import registry

    cmd = registry.stack(stack).command("127.0.0.1", 0, history=history, loop="asyncio")
    return _launch(cmd, log, TWIN_READY)


def start_external(log: Path, stack: str, history: int = 1000) -> ServerProcess:
    """Start any external registry row (a twin, the Node server) from its argv on port 0,
    wait for its ready line (``<ready_line> stack=NAME listening on http://HOST:PORT``);
    pytest.skip when the row says what it is missing (``Stack.missing``: node, node_modules)."""
    from pushbench import registry

    row = registry.stack(stack)
    missing = row.missing()
    if missing:
        pytest.skip(missing)
    ready = re.compile(
        "^" + re.escape(row.ready_line) + r" stack=(\S+) listening on http://(\S+):(\d+)$"
    )
    return _launch(row.command("127.0.0.1", 0, history=history, loop="asyncio"), log, ready)


def _launch(
    cmd: list[str], log: Path, ready: re.Pattern[str], env: Mapping[str, str] | None = None
) -> ServerProcess:
    """Run ``cmd`` (stderr to ``log``) until it prints a line matching ``ready`` (groups:
    stack, host, port)."""
    child_env = {**os.environ, **env} if env is not None else None
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, env=child_env)
    assert proc.stdout is not None
    line = b""
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
                raise TimeoutError(f"no ready line within {READY_TIMEOUT} s")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError("server exited before it was ready")
            line += chunk
        match = ready.match(line.decode().strip())
        if match is None:
            raise RuntimeError(f"unexpected ready line {line!r}")
    except Exception as exc:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        raise RuntimeError(f"{' '.join(cmd)}: {exc}\n{log.read_text(errors='replace')}") from exc
    return ServerProcess(proc, match[1], match[2], int(match[3]), log)


@contextlib.contextmanager
def serving(
    log: Path, *args: str, stack: str = "raw", env: Mapping[str, str] | None = None
) -> Iterator[ServerProcess]:
    """:func:`start_server` for a ``with`` block: stopped, then checked, on exit."""
    server = start_server(log, *args, stack=stack, env=env)
    try:
        yield server
    finally:
        server.stop()
    server.check()


StartServer = Callable[..., ServerProcess]


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[StartServer]:
    """``start(*cli_args, stack="raw", env=None)`` → ServerProcess; all stopped and
    checked at teardown."""
    started: list[ServerProcess] = []

    def start(
        *args: str, stack: str = "raw", env: Mapping[str, str] | None = None
    ) -> ServerProcess:
        log = tmp_path / f"server-{len(started)}.stderr"
        server = start_server(log, *args, stack=stack, env=env)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
    for server in started:
        server.check()


@pytest.fixture(scope="module")
def raw_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One raw-stack server with default settings, shared by a test module."""
    with serving(tmp_path_factory.mktemp("raw") / "server.stderr") as server:
        yield server


@pytest.fixture
def unused_tcp_port() -> int:
    """A loopback port free right now (for tools that cannot take port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
