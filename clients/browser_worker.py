"""Chromium pages as push clients: ``python -m pushbench.clients.browser_worker SPEC.json OUT``.

The browser twin of :mod:`pushbench.clients.worker`, with the same contract
(docs/runner-design.md), so the runner starts either unchanged: the same spec
JSON, ``worker ready`` on stdout once every page has connected or failed its
first attempt, ``warmup_s + duration_s`` of run, SIGTERM/SIGINT ending it early
with ``"complete": false``, and ``OUT.npz`` (``conn``, ``seq``, ``sched_ns``,
``pub_ns``, ``recv_ns``) plus ``OUT.json`` written atomically, the JSON last.

Each of the spec's ``connections`` is one page of the browser client
(``clients/browser/``, served by the stack at ``GET /client``) in a browser
context of its own: Chromium allows 6 HTTP/1.1 connections per host and
context, so SSE streams and held long polls of more pages in one context would
queue behind each other (measured: 8 SSE pages in one context, 6 connect).
A transport without a ``"browser"`` client in :mod:`pushbench.registry` (``ws-aiohttp``
names a Python library and has no browser meaning) and ``publish`` (chat cells, which
the page does not support) are refused.

Chromium is Debian's (:func:`pushbench.browser.chromium_path`), driven by
Playwright through its executable path (never a downloaded browser), headless,
with :data:`pushbench.browser.CHROMIUM_ARGS`; Playwright gives each launch a
new empty profile.

Times. The page stamps every receipt with ``performance.now()`` and maps it to
the server's CLOCK_MONOTONIC by an NTP-style exchange with ``GET /clock``
(error ≤ half the best round trip plus the timer's resolution). On Linux,
Chromium's ``performance.now()`` counts from the document's time origin on
``base::TimeTicks``, which *is* CLOCK_MONOTONIC, and DevTools reports that
origin (``Performance.getMetrics`` → ``NavigationStart``, in µs): the worker
reads it once per page and, when it has it, converts receive times with it
(``clock_source: "cdp"``, error = the timer's resolution), keeping the NTP
mapping as the fallback and reporting how far the two differed
(``clock_ntp_error_us``): a measured check of the page's own method.
docs/browser.md has the details.

What else is measured: CPU of this process *and all its descendants* (the
Playwright driver and every Chromium process) to the ns (:mod:`pushbench.cputime`),
ready → end, split by process kind; TCP payload bytes and segments from the kernel's
TCP counters (``tcpi_bytes_acked`` / ``tcpi_bytes_received``, as the Python clients) of
the browser's sockets to the server, read with ``ss -tinp`` at ready and at
end (``bytes_source: "tcp_info-ss"``; handshake bytes are not separable and
stay 0); the pages' main-thread stalls (a 10 ms timer's lateness) as
``max_loop_lag_ns``. The runner's window signals read CPU and bytes again
(:class:`~.proctree.TreeWindow`); the pages' request counts are not read then.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from pushbench import registry
from pushbench.browser import CHROMIUM_ARGS, MISSING_HINT, chromium_path
from pushbench.schema.worker import WindowMark, WorkerSpec
from pushbench.settings import Settings

from .common import SUMMED, clock, wait_stop
from .proctree import TreeWindow, bytes_between, cpu_between, socket_bytes, tree_cpu
from .recorder import FIELDS
from .status import STATUS_INTERVAL_S, STATUS_JS, LatencyWindow, write_status
from .worker import run_until_signalled, write_outputs

__all__ = [
    "BrowserWorker",
    "PageReceipts",
    "launch_options",
    "main",
    "page_url",
    "receipts",
]

OPEN_CONCURRENCY = 4  # pages being created and loaded at once
COLLECT_TIMEOUT_S = 3.0  # for all pages to stop and hand over their receipts
SETTLED = "() => window.pushbench !== undefined && window.pushbench.state.settled"


class SpecRefused(ValueError):
    """A spec this worker cannot run (a transport or option the browser has no meaning for)."""


def check_spec(spec: WorkerSpec) -> None:
    """Refuse what the page cannot run: a transport the registry gives no browser client,
    or publishing."""
    try:
        browser = "browser" in registry.transport(spec.transport).clients
    except registry.RegistryError:
        browser = False
    if not browser:
        names = [t.name for t in registry.transports() if "browser" in t.clients]
        raise SpecRefused(
            f"transport {spec.transport!r} is not a browser transport "
            f"(one of {', '.join(names)}); use pushbench.clients.worker for it"
        )
    if spec.publish is not None:
        raise SpecRefused(
            "the browser client does not publish (chat cells): use pushbench.clients.worker"
        )


def launch_options(path: Path) -> dict[str, Any]:
    """``chromium.launch`` keywords for the system Chromium at ``path``.

    Playwright adds ``--headless`` itself (in Chromium ≥ 132 that is the new
    headless mode), so the ``--headless=`` flag of CHROMIUM_ARGS is left to it.
    Signals are ours: Playwright would otherwise close the browser on SIGINT
    or SIGTERM before the pages' receipts are read.
    """
    return {
        "executable_path": str(path),
        "args": [a for a in CHROMIUM_ARGS if not a.startswith("--headless")],
        "headless": True,
        "handle_sigint": False,
        "handle_sigterm": False,
        "handle_sighup": False,
    }


def page_url(spec: WorkerSpec, conn: int, capacity: int, **extra: str | int | float) -> str:
    """The URL of one page of the browser client (parameters: clients/browser/client.js)."""
    return spec.url(
        "/client",
        transport=spec.transport,
        conn=conn,
        interval=spec.poll_interval_s,
        timeout=spec.poll_timeout_s,
        capacity=capacity,
        **extra,
    )


# --- receipts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageReceipts:
    """One page's receipts on the server's clock (int64 ns), plus its payloads if kept."""

    seq: npt.NDArray[np.int64]
    sched_ns: npt.NDArray[np.int64]
    pub_ns: npt.NDArray[np.int64]
    recv_ns: npt.NDArray[np.int64]
    payloads: list[str] | None


def _column(taken: dict[str, Any], name: str) -> npt.NDArray[np.float64]:
    raw = base64.b64decode(taken[name])
    return np.frombuffer(raw, dtype="<f8")[: int(taken["n"])]


def receipts(taken: dict[str, Any], origin_ns: int | None = None) -> PageReceipts:
    """``pushbench.take()`` of a page → its receipts as CLOCK_MONOTONIC int64 arrays.

    sch/pub arrive as exact integer distances to the clock sync's server time
    ``base_ns``. A receive time arrives as ns after ``base_ns`` by the page's
    NTP mapping; given the page's time origin on CLOCK_MONOTONIC
    (``origin_ns``, from DevTools), it is mapped exactly instead: the page's
    ``performance.now()`` was ``recv/1e6 + mid_ms``.
    """
    if not taken["info"]["little_endian"]:
        raise ValueError("the page's Float64Arrays are big-endian")
    n = int(taken["n"])
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return PageReceipts(empty, empty, empty, empty, taken.get("payloads"))
    base = int(taken["clock"]["base_ns"])
    seq, sch, pub, recv = (_column(taken, k) for k in ("seq", "sch", "pub", "recv"))
    for name, col in (("seq", seq), ("sch", sch), ("pub", pub)):
        if not np.array_equal(col, np.round(col)):
            raise ValueError(f"page sent a non-integer {name}")
    if origin_ns is None:
        recv_base = base
    else:
        recv_base = origin_ns + round(float(taken["clock"]["mid_ms"]) * 1e6)
    return PageReceipts(
        seq.astype(np.int64),
        base + sch.astype(np.int64),
        base + pub.astype(np.int64),
        recv_base + np.rint(recv).astype(np.int64),
        taken.get("payloads"),
    )


# --- the worker --------------------------------------------------------------------------------


@dataclass
class _Page:
    """One page of the run: where it is, what it answered."""

    conn: int
    page: Any = None  # playwright Page
    origin_ns: int | None = None  # performance.now() == 0 on CLOCK_MONOTONIC (DevTools)
    error: str | None = None
    taken: dict[str, Any] | None = None
    latency_from: int = 0  # the status line's position in the receipts


@dataclass
class BrowserWorker:
    """One worker's run: a browser, its pages, the timed window, the result dictionary."""

    spec: WorkerSpec
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None
    pages: list[_Page] = field(default_factory=list)
    result_receipts: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    marks: dict[str, WindowMark] = field(default_factory=dict)
    _tree: TreeWindow | None = None  # the readings at ready; None: not ready, or over

    def mark_window(self, edge: str) -> None:
        """The runner's window starts or ends: CPU and bytes since ready, read now."""
        if self._tree is not None and edge not in self.marks:
            self.marks[edge] = self._tree.mark(at_end=edge == "end")

    def request_stop(self, reason: str) -> None:
        """Stop early (a signal, or a caller); the first reason given is kept."""
        if self.reason is None:
            self.reason = reason
        self.stop.set()

    @property
    def capacity(self) -> int:
        """Receipts per page: the worker's capacity shared out."""
        return math.ceil(self.spec.capacity / self.spec.connections)

    async def run(self, on_ready: Callable[[], None] | None = None) -> dict[str, Any]:
        """Launch, open every page, run the window, collect → the OUT.json dictionary."""
        from playwright.async_api import async_playwright

        check_spec(self.spec)
        path = chromium_path()
        if path is None:
            raise RuntimeError(f"no Chromium found: {MISSING_HINT}")
        port = urlsplit(self.spec.base_url).port or 80
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(**launch_options(path))
            try:
                self.pages = [_Page(self.spec.first_conn + i) for i in range(self.spec.connections)]
                gate = asyncio.Semaphore(OPEN_CONCURRENCY)
                await asyncio.gather(*(self._open(browser, p, gate) for p in self.pages))
                window = await self._window(port, on_ready)
                await self._collect()
                return self._result(window, browser.version)
            finally:
                with contextlib.suppress(Exception):
                    await browser.close()

    async def _open(self, browser: Any, page: _Page, gate: asyncio.Semaphore) -> None:
        """A context and page of their own, loaded and settled (or failed: ``error``)."""
        timeout_ms = self.spec.connect_timeout_s * 1000
        async with gate:
            if self.stop.is_set():
                page.error = "stopped before it opened"
                return
            try:
                context = await browser.new_context()
                page.page = await context.new_page()
                page.page.on("pageerror", lambda e, c=page.conn: _log(f"page {c}: {e}"))
                url = page_url(self.spec, page.conn, self.capacity)
                await page.page.goto(url, timeout=timeout_ms)
                await page.page.wait_for_function(SETTLED, timeout=timeout_ms)
                page.origin_ns = await _time_origin_ns(context, page.page)
            except Exception as exc:  # the page is counted as failed; the run goes on
                page.error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    async def _window(self, port: int, on_ready: Callable[[], None] | None) -> dict[str, Any]:
        """Ready → end: the run itself, with CPU and socket readings at both ends."""
        spec = self.spec
        if self.stop.is_set():
            now = clock()
            return {"ready_ns": 0, "warmup_end_ns": 0, "end_ns": now, "cpu": None, "bytes": None}
        connected = await asyncio.gather(*(self._connected(p) for p in self.pages))
        cpu0 = tree_cpu(os.getpid())
        sockets0 = socket_bytes(port, set(cpu0))
        ready_ns = clock()
        self._tree = TreeWindow(os.getpid(), port, cpu0, sockets0)
        if on_ready is not None:
            on_ready()
        status = None
        status_path = getattr(spec, "status_path", None)
        if status_path is not None:
            status = asyncio.ensure_future(self._report_status(Path(status_path)))
        try:
            if not await wait_stop(self.stop, spec.warmup_s + spec.duration_s):
                self.reason = "completed"
        finally:
            if status is not None:
                status.cancel()
        end_ns = clock()
        self._tree = None
        cpu1 = tree_cpu(os.getpid())
        sockets1 = socket_bytes(port, set(cpu1))
        nbytes = None
        if sockets0 is not None and sockets1 is not None:
            nbytes = bytes_between(sockets0, sockets1)
        return {
            "ready_ns": ready_ns,
            "warmup_end_ns": ready_ns + int(spec.warmup_s * 1e9),
            "end_ns": end_ns,
            "connected": sum(connected),
            "cpu": cpu_between(cpu0, cpu1, _kind),
            "bytes": nbytes,
        }

    async def _connected(self, page: _Page) -> bool:
        if page.page is None or page.error is not None:
            return False
        with contextlib.suppress(Exception):
            return bool(await page.page.evaluate("pushbench.state.connected"))
        return False

    async def _report_status(self, path: Path) -> None:
        """Every second, as pushbench.clients.worker does: messages so far and the p99 (corrected)
        of the last second's receipts, written atomically for the runner's progress line. Each
        page hands over bucket counts (:data:`STATUS_JS`), merged into one window here."""
        live = [p for p in self.pages if p.page is not None and p.error is None]
        window = LatencyWindow()
        while True:
            await asyncio.sleep(STATUS_INTERVAL_S)
            answers = await asyncio.gather(
                *(p.page.evaluate(STATUS_JS, p.latency_from) for p in live),
                return_exceptions=True,
            )
            messages = 0
            for page, answer in zip(live, answers, strict=True):
                if isinstance(answer, dict):
                    page.latency_from = int(answer["n"])
                    messages += int(answer["messages"])
                    window.add_counts(answer["buckets"])
            body = {"t_ns": clock(), "messages": messages, "p99_us": window.take(99.0)}
            write_status(path, body)

    async def _collect(self) -> None:
        """Stop every page (closes its connection, re-checks its clock), take its receipts."""

        async def one(page: _Page) -> None:
            if page.page is None:
                return
            try:
                await page.page.evaluate("pushbench.stop()")
                page.taken = await page.page.evaluate("pushbench.take()")
            except Exception as exc:
                page.error = page.error or f"collect: {type(exc).__name__}: {exc}"

        live = [p for p in self.pages if p.page is not None]
        try:
            await asyncio.wait_for(asyncio.gather(*(one(p) for p in live)), COLLECT_TIMEOUT_S)
        except TimeoutError:
            _log(f"pages did not hand over their receipts within {COLLECT_TIMEOUT_S} s")

    # --- the result -------------------------------------------------------------------------

    def _result(self, window: dict[str, Any], chromium_version: str) -> dict[str, Any]:
        parts = []
        per_conn = []
        uncollected = 0
        for page in self.pages:
            if page.page is not None and page.taken is None:
                uncollected += 1  # its receipts are lost: the run cannot count as complete
                page.error = page.error or "receipts not collected in time"
            got = None
            if page.taken is not None:
                try:
                    got = receipts(page.taken, page.origin_ns)
                except (ValueError, KeyError) as exc:
                    page.error = page.error or f"receipts: {exc}"
            if got is not None:
                parts.append((page.conn, got))
            per_conn.append(self._per_connection(page, window))
        self.result_receipts = _arrays(parts)
        totals: dict[str, Any] = {k: sum(c[k] for c in per_conn) for k in SUMMED}
        nbytes = window.get("bytes")
        if nbytes is not None:
            totals["bytes_out"], totals["bytes_in"] = nbytes.bytes_out, nbytes.bytes_in
            totals["segs_out"], totals["segs_in"] = nbytes.segs_out, nbytes.segs_in
            bytes_source = "tcp_info-ss" if nbytes.complete else "tcp_info-ss-partial"
        else:
            bytes_source = "unavailable"
        connected = [c for c in per_conn if c["connect_ns"] >= 0]
        totals["connect_ns_mean"] = (
            sum(c["connect_ns"] for c in connected) // len(connected) if connected else -1
        )
        totals["connect_ns_max"] = max((c["connect_ns"] for c in connected), default=-1)
        totals["publish_lag_max_ns"] = 0
        cpu = window.get("cpu") or {}
        taken = [p.taken for p in self.pages if p.taken is not None]
        lags = [t["lag"] for t in taken]
        lag_samples = sum(int(x["samples"]) for x in lags)
        sources = {c["clock_source"] for c in per_conn if c["clock_source"]}
        reason = self.reason or "stopped"
        if uncollected:
            reason = f"{reason}; {uncollected} page(s) did not hand over their receipts"
        return {
            "complete": self.reason == "completed" and not uncollected,
            "reason": reason,
            "uncollected_pages": uncollected,
            "client": "browser",
            "transport": self.spec.transport,
            "connections": self.spec.connections,
            "connected": int(window.get("connected", 0)),
            "connect_failures": self.spec.connections - int(window.get("connected", 0)),
            "ready_ns": window["ready_ns"],
            "warmup_end_ns": window["warmup_end_ns"],
            "end_ns": window["end_ns"],
            "bytes_source": bytes_source,
            "messages": len(self.result_receipts["seq"]),
            "capacity": self.capacity * self.spec.connections,
            "overflow": sum(c["overflow"] for c in per_conn),
            "parse_errors": sum(c["parse_errors"] for c in per_conn),
            "slow_parses": 0,
            "cpu_s": cpu.get("total_s", 0.0),
            "cpu_user_s_run": cpu.get("user_s", 0.0),
            "cpu_sys_s_run": cpu.get("sys_s", 0.0),
            "cpu_run_by_kind_s": cpu.get("by_kind_s", {}),
            "cpu_processes": cpu.get("processes", 0),
            **{f"window_{edge}": mark.to_dict() for edge, mark in self.marks.items()},
            "max_loop_lag_ns": int(max((float(x["max_ms"]) for x in lags), default=0.0) * 1e6),
            "mean_loop_lag_ns": int(sum(float(x["sum_ms"]) for x in lags) * 1e6 / lag_samples)
            if lag_samples
            else 0,
            "loop_lag_samples": lag_samples,
            "loop_lag_source": "page main thread: lateness of a 10 ms timer",
            "clock_source": sources.pop() if len(sources) == 1 else "mixed" if sources else "",
            "clock_rtt_us": max((c["clock_rtt_us"] for c in per_conn), default=0.0),
            "clock_uncertainty_us": max((c["clock_uncertainty_us"] for c in per_conn), default=0.0),
            "clock_ntp_error_us": max(
                (abs(c["clock_ntp_error_us"]) for c in per_conn if c["clock_ntp_error_us"]),
                default=None,
            ),
            "timer_resolution_us": max((c["timer_resolution_us"] for c in per_conn), default=0.0),
            "chromium_version": chromium_version,
            "playwright_version": metadata.version("playwright"),
            "user_agent": taken[0]["info"]["user_agent"] if taken else "",
            "totals": totals,
            "per_connection": per_conn,
            "arrays": list(FIELDS),
            "pid": os.getpid(),
            "python": sys.version.split()[0],
            "spec": self.spec.to_dict(),
        }

    def _per_connection(self, page: _Page, window: dict[str, Any]) -> dict[str, Any]:
        taken = page.taken or {}
        stats: dict[str, Any] = taken.get("stats", {})
        clock_info: dict[str, Any] = taken.get("clock", {})
        info: dict[str, Any] = taken.get("info", {})
        resolution_us = float(info.get("timer_resolution_ms", 0.0)) * 1e3
        rtt_us = float(clock_info.get("rtt_ms", 0.0)) * 1e3
        ntp_error_us = None
        if page.origin_ns is not None and clock_info.get("base_ns"):
            # the NTP mapping's time origin minus the true one (DevTools)
            ntp_origin = int(clock_info["base_ns"]) - float(clock_info["mid_ms"]) * 1e6
            ntp_error_us = (ntp_origin - page.origin_ns) / 1e3
        check = clock_info.get("check") or {}
        connect_ms = float(stats.get("connect_ms", -1))
        return {
            "conn": page.conn,
            "connect_ns": int(connect_ms * 1e6) if connect_ms >= 0 else -1,
            "connects": int(stats.get("connects", 0)),
            "reconnects": int(stats.get("reconnects", 0)),
            "handshake_bytes_out": 0,
            "handshake_bytes_in": 0,
            "bytes_out": 0,  # per page unknown: the totals hold the sockets' sum
            "bytes_in": 0,
            "bytes_source": "unavailable",
            "messages": int(stats.get("messages", 0)),
            "overflow": int(stats.get("overflow", 0)),
            "parse_errors": int(stats.get("parse_errors", 0)),
            "last_seq": int(stats.get("last_seq", 0)),
            "requests": int(stats.get("requests", 0)),
            "empty_polls": int(stats.get("empty_polls", 0)),
            "missed_polls": int(stats.get("missed_polls", 0)),
            "errors": int(stats.get("errors", 0)) + (1 if page.error else 0),
            "last_error": page.error or stats.get("last_error"),
            "published": 0,
            "publish_errors": 0,
            "publish_lag_max_ns": 0,
            "publish_lag_sum_ns": 0,
            "publish_overruns": 0,
            "reconnect_attempts": len(taken.get("attempts", [])),
            "max_loop_lag_ns": int(float(taken.get("lag", {}).get("max_ms", 0.0)) * 1e6),
            "clock_source": ("cdp" if page.origin_ns is not None else "ntp") if taken else "",
            "clock_rtt_us": rtt_us,
            # cdp: exact origin, µs-rounded, plus the timer's step; ntp: half the round trip too
            "clock_uncertainty_us": (resolution_us + 1.0)
            if page.origin_ns is not None
            else float(clock_info.get("uncertainty_ms", 0.0)) * 1e3,
            "clock_ntp_uncertainty_us": float(clock_info.get("uncertainty_ms", 0.0)) * 1e3,
            "clock_ntp_error_us": ntp_error_us,
            "clock_check_error_us": check.get("error_us"),
            "timer_resolution_us": resolution_us,
            "cross_origin_isolated": bool(info.get("cross_origin_isolated", False)),
        }


def _arrays(parts: list[tuple[int, PageReceipts]]) -> dict[str, npt.NDArray[Any]]:
    """The pages' receipts as the recorder's five arrays (page after page)."""
    if not parts:
        return {
            "conn": np.zeros(0, np.uint32),
            **{k: np.zeros(0, np.int64) for k in FIELDS[1:]},
        }
    return {
        "conn": np.concatenate([np.full(len(r.seq), c, np.uint32) for c, r in parts]),
        "seq": np.concatenate([r.seq for _, r in parts]),
        "sched_ns": np.concatenate([r.sched_ns for _, r in parts]),
        "pub_ns": np.concatenate([r.pub_ns for _, r in parts]),
        "recv_ns": np.concatenate([r.recv_ns for _, r in parts]),
    }


async def _time_origin_ns(context: Any, page: Any) -> int | None:
    """The page's ``performance.now() == 0`` on CLOCK_MONOTONIC: DevTools' NavigationStart
    (Chromium's TimeTicks, which on Linux are CLOCK_MONOTONIC), µs; None if unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        cdp = await context.new_cdp_session(page)
        try:
            await cdp.send("Performance.enable")
            metrics = (await cdp.send("Performance.getMetrics"))["metrics"]
            await cdp.send("Performance.disable")
        finally:
            await cdp.detach()
    except Exception:
        return None
    for metric in metrics:
        if metric["name"] == "NavigationStart" and metric["value"] > 0:
            return round(float(metric["value"]) * 1e9)
    return None


def _kind(pid: int, command: str) -> str:
    """Which part of the harness a process of this worker's tree is."""
    if pid == os.getpid():
        return "worker"
    return "playwright_driver" if command.startswith("node") else "chromium"


def _log(message: str) -> None:
    print(f"browser_worker: {message}", file=sys.stderr, flush=True)


# --- output and entry point --------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 when the output was written (also after an early stop), 2 for a spec
    this worker refuses, 1 when the run failed (output still written, incomplete).

    The settings (the Chromium path among them) come from the environment the runner
    started this process with, read here once and applied before anything runs."""
    Settings.from_environ(os.environ).apply()
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m pushbench.clients.browser_worker SPEC.json OUT", file=sys.stderr)
        return 2
    try:
        spec = WorkerSpec.load(args[0])
        check_spec(spec)
    except (OSError, ValueError, TypeError) as exc:
        print(f"browser_worker: {exc}", file=sys.stderr)
        return 2
    worker = BrowserWorker(spec)
    status = 0
    started = time.monotonic()
    try:
        result = asyncio.run(run_until_signalled(worker))
    except Exception as exc:  # still write what there is, marked incomplete
        _log(f"failed after {time.monotonic() - started:.1f} s: {exc!r}")
        worker.reason = f"failed: {type(exc).__name__}: {exc}"
        result = {"complete": False, "reason": worker.reason, "messages": 0}
        worker.result_receipts = _arrays([])
        status = 1
    # A late signal must not kill the process half-way through writing.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    write_outputs(args[1], worker.result_receipts, result)
    return status


if __name__ == "__main__":
    sys.exit(main())
