"""The report's figures, drawn from a stored run (never by re-running anything).

Each function takes a :class:`~.load.Run` and an output directory and returns
:class:`~.figure.Plot` records: a PNG with its title and a caption saying how
to read it, or, when the run holds no data for it, no file and a ``missing``
text naming what is absent and which scenario produces it. The figures live
by kind — latency (:mod:`.plots_latency`), rate sweeps (:mod:`.plots_rate`),
cost (:mod:`.plots_cost`) — on the shared helpers of :mod:`.figure`; this
module lists them in report order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .figure import MAX_POINT_FIGURES, Plot
from .load import Run
from .plots_cost import bytes_per_message, cpu_per_message, memory_per_connection
from .plots_faults import reconnect_times
from .plots_latency import latency_over_time, latency_percentiles
from .plots_rate import latency_vs_rate, throughput_vs_rate
from .plots_topology import latency_by_net, latency_by_proxy

__all__ = ["MAX_POINT_FIGURES", "PLOTS", "Plot", "render_all"]


#: Every figure of a scenario report, in report order (the codec figures come from their run).
PLOTS: tuple[Callable[[Run, Path], list[Plot]], ...] = (
    latency_percentiles,
    latency_vs_rate,
    throughput_vs_rate,
    bytes_per_message,
    cpu_per_message,
    memory_per_connection,
    latency_over_time,
    latency_by_proxy,  # issue 12 item 8 (h33): when the run has proxied cells
    latency_by_net,  # issue 12 item 8 (h33): when the run has relayed cells
    reconnect_times,  # issue 12 items 5 and 8: when the run has fault cells
)


def render_all(run: Run, out: Path) -> list[Plot]:
    """Draw every figure of :data:`PLOTS` into ``out``."""
    plots: list[Plot] = []
    for draw in PLOTS:
        plots.extend(draw(run, out))
    return plots
