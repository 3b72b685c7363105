"""The project's own loader: a stored scenario run as pandas DataFrames plus its metadata.

Everything that reads a run — the report, ``pushbench compare``, the
notebooks — goes through :func:`load_run`, so column types, the meaning of a
"scenario point" and the per-cell medians are defined once::

    from pushbench.report.load import load_run
    run = load_run("results/latest")
    run.cells            # one row per cell × repeat (cells.csv), typed
    run.summary()        # one row per cell: medians over the ok repeats and their spread
    run.histogram("aiohttp-ws-sub50-rate200-p100")   # corrected latency, repeats merged
    run.histogram_log("aiohttp-ws-sub50-rate200-p100", 0)   # the repeat's HdrHistogram log
    run.series("aiohttp-ws-sub50-rate200-p100", 0)   # latency over time, or None

Older runs lack some files and columns (``series/``, ``saturation.csv``,
``server_rss_growth_bytes_per_conn``, …); they load all the same, and the
accessors return ``None`` or empty frames so the report can say what is
missing. Nothing here writes to a run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pushbench import metrics
from pushbench.metrics.flags import cell_flags, excluding
from pushbench.results import read_json, resolve_run
from pushbench.schema.cells import ALL_COLUMNS

__all__ = [
    "HEADLINE",
    "IDENTITY",
    "METRICS",
    "POINT",
    "TAIL_COLUMNS",
    "Metric",
    "Run",
    "find_codec_run",
    "load_run",
    "point_label",
    "variant_label",
]


@dataclass(frozen=True)
class Metric:
    """How a result column reads: a label, its unit, and which direction is better."""

    label: str
    unit: str
    lower_is_better: bool = True
    digits: int = 3


#: Result columns a report shows, in order (a column missing from a run is skipped).
METRICS: dict[str, Metric] = {
    "lat_p50_us": Metric("p50 latency", "µs"),
    "lat_p99_us": Metric("p99 latency", "µs"),
    "lat_p999_us": Metric("p99.9 latency", "µs"),
    "lat_max_us": Metric("max latency", "µs"),
    "lat_all_p50_us": Metric("p50 latency, lost = ∞", "µs"),
    "lat_all_p99_us": Metric("p99 latency, lost = ∞", "µs"),
    "lat_all_p999_us": Metric("p99.9 latency, lost = ∞", "µs"),
    "lat_all_max_us": Metric("max latency, lost = ∞", "µs"),
    "delivered_fraction": Metric("delivered", "fraction", lower_is_better=False, digits=4),
    "delivered_msgs_per_s": Metric("delivered", "msgs/s", lower_is_better=False),
    "server_cpu_us_per_msg": Metric("server CPU", "µs/msg"),
    "ticker_cpu_us_per_msg": Metric("ticker's own CPU (in server CPU)", "µs/msg"),
    "server_cpu_fraction": Metric("server CPU", "cores"),
    "bytes_in_per_msg": Metric("TCP payload bytes in", "B/msg"),
    "bytes_out_per_msg": Metric("TCP payload bytes out", "B/msg"),
    "wire_bytes_in_per_msg": Metric("on the wire in (est.)", "B/msg"),
    "wire_bytes_out_per_msg": Metric("on the wire out (est.)", "B/msg"),
    "mem_marginal_bytes_per_conn": Metric("memory (marginal)", "B/conn"),
    "mem_first_conn_bytes": Metric("first-connection set-up", "B"),
    "kernel_sock_bytes_per_conn": Metric("kernel socket memory", "B/conn"),
    "server_rss_growth_bytes_per_conn": Metric("memory", "B/conn"),
    "server_rss_bytes_per_conn": Metric("RSS ÷ conns", "B/conn"),
    "handshake_bytes_per_conn": Metric("handshake TCP payload", "B/conn"),
    "connect_p50_us": Metric("connect p50", "µs"),
    "requests_per_msg": Metric("requests", "per msg"),
    "server_cpu_us_per_request": Metric("server CPU per request", "µs/request"),
    "delivered_msgs_per_client_cpu_s": Metric(
        "client capacity", "msgs/client-CPU-s", lower_is_better=False
    ),
    "bytes_per_conn_per_s": Metric("keepalive TCP payload", "B/conn/s"),
    "wire_bytes_per_conn_per_s": Metric("keepalive on the wire (est.)", "B/conn/s"),
    "errors": Metric("client errors", "count"),
    "reconnects": Metric("reconnects", "count"),
    "slow_consumers_dropped": Metric("slow consumers dropped", "count"),
    # issue 12 item 2 (TLS): the connect time split
    "tcp_connect_p50_us": Metric("TCP connect p50", "µs"),
    "tls_handshake_p50_us": Metric("TLS handshake p50", "µs"),
    # issue 18: workers on other hosts, their latencies corrected to within this bound
    "clock_bound_us": Metric("clock error bound", "µs"),
}

#: The figures ``pushbench compare`` judges and the summary table leads with.
HEADLINE: tuple[str, ...] = (
    "lat_p50_us",
    "lat_p99_us",
    "delivered_msgs_per_s",
    "server_cpu_us_per_msg",
    "bytes_in_per_msg",
)

#: What a cell's transport is: a report line per distinct combination.
IDENTITY: tuple[str, ...] = ("stack", "transport", "client")

#: What a scenario point is: the load, the same for every transport compared at it.
POINT: tuple[str, ...] = (
    "subscribers",
    "publishers",
    "rate_msgs_per_s",
    "payload_bytes",
    "hub",
    "loop",
    "check_delay_ms",
    "check_pause_ms",
    "check_drop_every",
    "check_recv_bias_ms",
    "check_client_stall_ms",
    "check_client_stall_every_ms",
    "check_drop_receipt_every",
    "net",  # network conditions (issue 12 item 6): the relay's profile; loopback: none
    "tls",  # issue 12 item 2: a TLS cell is another point than its plaintext twin
    "via",  # h27: a proxy in front is another point
    "compression",  # issue 12 item 3: permessage-deflate ("off" outside WebSocket cells)
    "payload_kind",  # filler or json (realistic text, for compression cells)
    "fault",  # h32 (issue 12 item 5): a fault in the window is another point ("": none)
    # h42: TLS end to end behind a proxy is another point than TLS ending at the proxy; read
    # as "end-to-end" or "" (direct "server" and "proxy" follow from tls and via: _typed)
    "tls_at",
)

_TEXT = (
    "scenario",
    "cell_id",
    "stack",
    "transport",
    "ws_client",
    "client",
    "hub",
    "loop",
    "bytes_source",
    "status",
    "reason",
    "drain_end",
    "soak_churn",  # issue 17 item 6 (soak)
    "net",
    "via",  # h27
    "upgrade_status",
    "compression",
    "payload_kind",
    "fault",  # h32 (issue 12 item 5)
    "storm_source",
    "tls_at",  # h42
)
_BOOL = ("harness_bound", "probe", "tls")  # tls absent (older runs): plaintext
#: Self-check fault columns newer than some runs: absent means the fault was off (0).
_OFF_WHEN_ABSENT = (
    "check_recv_bias_ms",
    "check_client_stall_ms",
    "check_client_stall_every_ms",
    "check_drop_receipt_every",
)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return bool(value)


def _typed(frame: Any) -> Any:
    """cells.csv as read by pandas → text, bool and numeric columns, whatever the run's age."""
    import pandas as pd

    for col in frame.columns:
        if col in _TEXT:
            frame[col] = frame[col].astype("string").fillna("").astype(str)
        elif col in _BOOL:
            frame[col] = frame[col].map(_as_bool).astype(bool)
        else:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    # A column newer than the run: not measured then. Added at once (one concat, not
    # one insert per column, which fragments the frame and makes pandas warn).
    missing = {
        col: "" if col in _TEXT else float("nan")
        for col in ALL_COLUMNS
        if col not in frame.columns and col not in _BOOL
    }
    missing |= {col: False for col in _BOOL if col not in frame.columns}
    if missing:
        frame = pd.concat([frame, pd.DataFrame(missing, index=frame.index)], axis=1)
    for col in _OFF_WHEN_ABSENT:  # a run before that fault existed did not inject it
        frame[col] = frame[col].fillna(0.0)
    if "client" not in frame.columns:
        frame["client"] = "python"  # runs before browser and Locust clients existed
    frame["client"] = frame["client"].replace("", "python")
    # Outside WebSocket cells (and before the columns existed) nothing was compressed, and
    # the payload was the filler: the same point as an "off"/"filler" WebSocket cell.
    frame["compression"] = frame["compression"].replace("", "off")
    frame["payload_kind"] = frame["payload_kind"].replace("", "filler")
    # h42: as a point, tls_at only tells end to end behind a proxy apart (the rest follows
    # from tls and via), so every older TLS cell stays the point it was
    frame["tls_at"] = frame["tls_at"].where(frame["tls_at"] == "end-to-end", "")
    # The schema's order, whatever the run's age (a column added mid-table reads the same).
    ordered = [c for c in ALL_COLUMNS if c in frame.columns]
    return frame[ordered + [c for c in frame.columns if c not in ordered]]


def point_label(point: dict[str, Any]) -> str:
    """``50 subscribers · 200 msg/s · 100 B`` (+ what differs from the usual: hub, loop, …)."""
    parts = [
        f"{int(point['subscribers'])} subscriber{'s' if point['subscribers'] != 1 else ''}",
        f"{_num(point['rate_msgs_per_s'])} msg/s",
        f"{int(point['payload_bytes'])} B",
    ]
    if point.get("publishers"):
        parts.append(f"{int(point['publishers'])} publishing")
    if point.get("hub") not in (None, "", "memory"):
        parts.append(f"{point['hub']} hub")
    if point.get("loop") not in (None, "", "asyncio"):
        parts.append(str(point["loop"]))
    if point.get("via") not in (None, "", "direct"):  # h27
        parts.append(f"via {point['via']}")
    for col, unit in (("check_delay_ms", "ms delay"), ("check_pause_ms", "ms pause")):
        if point.get(col):
            parts.append(f"{_num(point[col])} {unit}")
    if point.get("check_drop_every"):
        parts.append(f"drop 1/{int(point['check_drop_every'])}")
    if point.get("check_recv_bias_ms"):
        parts.append(f"client +{_num(point['check_recv_bias_ms'])} ms receive bias")
    if point.get("check_client_stall_ms"):
        stall, every = point["check_client_stall_ms"], point.get("check_client_stall_every_ms")
        parts.append(f"client stall {_num(stall)} ms every {_num(every or 0)} ms")
    if point.get("check_drop_receipt_every"):
        parts.append(f"client drops 1/{int(point['check_drop_receipt_every'])} receipts")
    if point.get("net") not in (None, "", "loopback"):  # network conditions (issue 12)
        parts.append(f"net {point['net']}")
    if point.get("tls"):
        parts.append("TLS end to end" if point.get("tls_at") == "end-to-end" else "TLS")
    elif point.get("tls_at") == "end-to-end":  # h42: a label without tls (the TLS table's)
        parts.append("TLS end to end")
    if point.get("fault"):  # h32 (issue 12 item 5)
        parts.append(f"fault {point['fault']}")
    if point.get("compression") not in (None, "", "off"):  # issue 12 item 3
        parts.append(str(point["compression"]))
    if point.get("payload_kind") not in (None, "", "filler"):
        parts.append(f"{point['payload_kind']} payload")
    return " · ".join(parts)


def variant_label(stack: str, transport: str, client: str = "python") -> str:
    """``sse · aiohttp`` (``… · browser`` when not our Python client)."""
    label = f"{transport} · {stack}"
    return label if client in ("", "python") else f"{label} · {client}"


def _num(x: Any) -> str:
    x = float(x)
    return f"{x:,.0f}" if x.is_integer() else f"{x:,.3g}"


@dataclass(frozen=True)
class Run:
    """A stored scenario run: typed ``cells``, ``meta`` and lazily read extras."""

    path: Path
    meta: dict[str, Any]
    cells: Any  # pandas.DataFrame, one row per cell × repeat
    saturation: Any | None = None  # pandas.DataFrame of saturation.csv, if the run has one
    _hist_cache: dict[tuple[str, int], Any] = field(default_factory=dict, repr=False)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        return str(self.meta.get("status") or "unknown")

    @property
    def scenario(self) -> str:
        return str(self.meta.get("scenario") or self.path.name)

    @property
    def ok(self) -> Any:
        """Rows of repeats that measured (status ok)."""
        return self.cells[self.cells["status"] == "ok"]

    @property
    def grid(self) -> Any:
        """Rows of the scenario's own grid: saturation-search probes left out."""
        return self.cells[~self.cells["probe"]]

    def has(self, column: str) -> bool:
        """Whether the run has ``column`` with at least one value."""
        return column in self.cells.columns and bool(self.cells[column].notna().any())

    def points(self, frame: Any | None = None) -> list[dict[str, Any]]:
        """The distinct scenario points of ``frame`` (default: the grid), in file order."""
        frame = self.grid if frame is None else frame
        cols = [c for c in POINT if c in frame.columns]
        seen: list[dict[str, Any]] = []
        for rec in frame[cols].drop_duplicates().to_dict("records"):
            seen.append({k: (None if _isnan(v) else v) for k, v in rec.items()})
        return seen

    def at(self, point: dict[str, Any], frame: Any | None = None) -> Any:
        """Rows of ``frame`` (default: all cells) at ``point``."""
        frame = self.cells if frame is None else frame
        mask = None
        for col, value in point.items():
            if col not in frame.columns:
                continue
            m = frame[col].isna() if value is None else frame[col] == value
            mask = m if mask is None else mask & m
        return frame if mask is None else frame[mask]

    @cached_property
    def _summary(self) -> Any:
        return self._flagged(self._merged_tail(summarize(self.cells)))

    def summary(self) -> Any:
        """One row per cell (see :func:`summarize`); a copy, so callers may change it.

        The tail of a cell whose repeats' histograms are stored (``hist/``) is the
        merged histogram's: ``lat_p999_us`` and ``lat_max_us`` are the p99.9 and the max
        of every ok repeat's corrected latency together (``tail_merged`` True), not a
        median of per-repeat tails; ``…_min``/``…_max`` keep the repeats' own range.
        ``flags`` holds the cell's row flags (:mod:`pushbench.metrics.flags`, each with
        its figures, ``; ``-joined; empty: none), judged against that merged max;
        ``excluding_flags`` those of them that take the cell out of the verdicts (a
        tail-only flag does not).
        """
        return self._summary.copy()

    def _merged_tail(self, summary: Any) -> Any:
        """``summary`` with each cell's p99.9 and max from its repeats' merged histogram."""
        merged = []
        for i, cell_id in zip(summary.index, summary["cell_id"], strict=True):
            hist = self.histogram(str(cell_id)) if summary.at[i, "ok"] else None
            merged.append(hist is not None and bool(hist.total_count))
            if hist is None or not hist.total_count:
                continue
            for column, q in _TAIL:
                value = hist.get_max_value() if q is None else hist.get_value_at_percentile(q)
                summary.at[i, column] = float(value)
                summary.at[i, f"{column}_spread"] = None  # the repeats' range is shown instead
        summary["tail_merged"] = merged
        return summary

    def _flagged(self, summary: Any) -> Any:
        """``summary`` with the ``flags`` of each cell, from its ok repeats' rows."""
        out, out_excluding = [], []
        for cell_id, lat_max in zip(summary["cell_id"], summary["lat_max_us"], strict=True):
            ok = self.ok[self.ok["cell_id"] == cell_id].to_dict("records")
            top = None if lat_max is None or lat_max != lat_max else float(lat_max)
            found = cell_flags(ok, lat_max_us=top)
            texts = [str(f) for f in found]
            texts_excluding = [str(f) for f in excluding(found)]
            # h32 (issue 12 item 5): a cell with a fault in its window is no steady state:
            # out of the verdicts (the "Faults" section reads it)
            faults = {str(r.get("fault") or "") for r in ok} - {""}
            if faults:
                texts.append(f"fault({', '.join(sorted(faults))})")
                texts_excluding.append(texts[-1])
            out.append("; ".join(texts))
            out_excluding.append("; ".join(texts_excluding))
        summary["flags"] = out
        summary["excluding_flags"] = out_excluding
        return summary

    # --- per-repeat files --------------------------------------------------

    def histogram_log(self, cell_id: str, repeat: int) -> metrics.HistogramLog | None:
        """``hist/<cell>-r<k>.hlog`` as read by ``hdrh``'s ``HistogramLogReader``, or None.

        One interval histogram per second and tag (``corrected``, ``uncorrected``);
        runs made before the HdrHistogram log format give one whole-window
        histogram per tag (``legacy``).
        """
        path = self.path / "hist" / f"{cell_id}-r{repeat}.hlog"
        return metrics.read_hlog(path) if path.exists() else None

    def histograms(self, cell_id: str, repeat: int) -> dict[str, Any] | None:
        """``{"corrected", "uncorrected"}`` HdrHistograms of one repeat's window, or None.

        Each is its log's intervals of that tag added up (exact).
        """
        key = (cell_id, repeat)
        if key not in self._hist_cache:
            log = self.histogram_log(cell_id, repeat)
            self._hist_cache[key] = None if log is None else log.merged()
        hists: dict[str, Any] | None = self._hist_cache[key]
        return hists

    def histogram(self, cell_id: str, kind: str = "corrected") -> Any | None:
        """``kind`` latency of every ok repeat of ``cell_id`` merged (exact), or None."""
        rows = self.ok[self.ok["cell_id"] == cell_id]
        found = []
        for repeat in rows["repeat"].astype(int):
            hists = self.histograms(cell_id, int(repeat))
            if hists and kind in hists:
                found.append(hists[kind])
        return metrics.merge_histograms(found) if found else None

    def series(self, cell_id: str, repeat: int) -> Any | None:
        """``series/<cell>-r<k>.csv`` (t_s, width_s, count, p50_us, max_us), or None."""
        import pandas as pd

        path = self.path / "series" / f"{cell_id}-r{repeat}.csv"
        return pd.read_csv(path) if path.exists() else None

    def has_series(self) -> bool:
        return any((self.path / "series").glob("*.csv"))


#: The tail columns taken from a cell's merged histogram: (column, percentile; None: max).
_TAIL: tuple[tuple[str, float | None], ...] = (("lat_p999_us", 99.9), ("lat_max_us", None))


#: The columns :meth:`Run.summary` takes from the merged histogram when the run has one.
TAIL_COLUMNS: tuple[str, ...] = tuple(c for c, _ in _TAIL)


def with_per_request(cells: Any) -> Any:
    """``cells`` with ``server_cpu_us_per_request``, derived, never stored: a poll cell's
    server CPU per HTTP request it answered (CPU per message ÷ requests per message, both
    over the window). What an answer costs whatever the batching: where a saturated poll
    server's CPU per message reads 1 ÷ the rate for every stack, this still tells them
    apart. Empty for streams (no requests per message)."""
    import pandas as pd

    requests = cells["requests_per_msg"]
    per_request = cells["server_cpu_us_per_msg"] / requests.where(requests > 0)
    # One concat, not an insert into a frame of ~200 columns (fragmented: pandas warns).
    return pd.concat([cells, per_request.rename("server_cpu_us_per_request")], axis=1)


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def summarize(cells: Any, columns: Iterable[str] | None = None) -> Any:
    """One row per ``cell_id``: parameters, run counts, flags and each metric over ok repeats.

    For every metric column ``m`` present: ``m`` (median over the ok repeats,
    :func:`pushbench.metrics.repeat_stats`), ``m_min``, ``m_max`` and
    ``m_spread`` (largest relative distance of a repeat from the median).
    ``runs``/``ok``/``failed``/``skipped`` count repeats, ``harness_bound``
    counts ok repeats flagged harness-bound, ``reasons`` joins the distinct
    failure or skip reasons — so nothing failed is hidden by a median.
    """
    import pandas as pd

    wanted = [c for c in (columns or METRICS) if c in cells.columns]
    params = ["cell_id", "scenario", *IDENTITY, "ws_client", *POINT, "probe"]
    params += [c for c in ("poll_interval_s", "poll_timeout_s", "heartbeat_s") if c not in params]
    params = [c for c in params if c in cells.columns]
    out = []
    for cell_id, rows in cells.groupby("cell_id", sort=False):
        rec: dict[str, Any] = {c: rows[c].iloc[0] for c in params}
        rec["cell_id"] = cell_id
        ok = rows[rows["status"] == "ok"]
        rec["runs"] = len(rows)
        for status in ("ok", "failed", "skipped"):
            rec[status] = int((rows["status"] == status).sum())
        rec["harness_bound"] = int(ok["harness_bound"].sum()) if "harness_bound" in ok else 0
        reasons = [r for r in dict.fromkeys(rows["reason"]) if r]
        rec["reasons"] = "; ".join(reasons)
        for col in wanted:
            stats = metrics.repeat_stats(ok[col].tolist())
            rec[col] = None if stats is None else stats.median
            rec[f"{col}_min"] = None if stats is None else stats.min
            rec[f"{col}_max"] = None if stats is None else stats.max
            rec[f"{col}_spread"] = None if stats is None else stats.rel_spread
            rec[f"{col}_n"] = 0 if stats is None else stats.n
        out.append(rec)
    return pd.DataFrame(out)


def load_run(path: Path | str) -> Run:
    """Read a scenario run: ``cells.csv``, ``metadata.json``, ``saturation.csv`` if present.

    ``path`` may be a run directory, a ``latest`` link or a results base.
    Raises FileNotFoundError when there is no ``cells.csv`` (a codec-only run,
    or a run that measured nothing yet).
    """
    import pandas as pd

    run_dir = resolve_run(path)
    cells_path = run_dir / "cells.csv"
    if not cells_path.exists():
        raise FileNotFoundError(
            f"{run_dir} has no cells.csv: not a scenario run (make one with `pushbench run`)"
        )
    meta_path = run_dir / "metadata.json"
    meta: dict[str, Any] = read_json(meta_path) if meta_path.exists() else {}
    cells = with_per_request(_typed(pd.read_csv(cells_path, keep_default_na=True)))
    if cells.empty:
        raise FileNotFoundError(
            f"{cells_path} holds no rows: the run measured nothing "
            f"(status {meta.get('status')!r}, {meta.get('reason') or 'no reason recorded'})"
        )
    sat_path = run_dir / "saturation.csv"
    saturation = None
    if sat_path.exists():
        saturation = pd.read_csv(sat_path)
        for col in ("stack", "transport", "ws_client", "client", "saturated_side", "group_id"):
            if col in saturation.columns:
                saturation[col] = saturation[col].fillna("").astype(str)
    return Run(run_dir, meta, cells, saturation)


def find_codec_run(results: Path | str, exclude: Sequence[Path] = ()) -> Path | None:
    """The newest run directory under ``results`` holding ``codec.json``, or None.

    Run ids start with a UTC timestamp, so the newest sorts last.
    """
    base = Path(results)
    if not base.is_dir():
        return None
    skip = {p.resolve() for p in exclude}
    found = sorted(
        p
        for p in base.iterdir()
        if p.is_dir() and not p.is_symlink() and (p / "codec.json").exists()
    )
    found = [p for p in found if p.resolve() not in skip]
    return found[-1].resolve() if found else None
