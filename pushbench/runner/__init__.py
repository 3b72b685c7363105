"""``pushbench run SCENARIO``: measure every cell of a scenario (``docs/runner-design.md``).

For each cell × repeat: a fresh server started from the cell's stack row
(``pushbench serve --port 0``, or an external command line) pinned to the
server CPUs, client workers pinned to the client CPUs
(``pushbench.clients.worker``; ``pushbench.clients.browser_worker`` or
``pushbench.clients.locust_worker`` when the cell's ``client`` says so — all
read the same :class:`~pushbench.schema.worker.WorkerSpec` and write the same
:class:`~pushbench.schema.worker.WorkerResult`), then the load: the server's
ticker, or for chat cells the publishing clients themselves. Everything
started is stopped in a ``finally``: on success, on a crash, on Ctrl-C and on
SIGTERM.

``cells.csv`` (the columns of :mod:`pushbench.schema.cells`, whose version
``metadata.json`` records as ``cells_schema``) is rewritten atomically after
every cell, so an interrupted run keeps what it measured;
``series/<cell>-r<k>.csv`` keeps the latency over time. Cells with an
``[slo]`` get a saturation search and ``saturation.csv``.

One module per responsibility: :mod:`.command` (the CLI's options and exit
codes), :mod:`.orchestrate` (the run loop, signals, metadata), :mod:`.rounds` (the
order: every cell once per round, shuffled by a recorded seed), :mod:`.cell`
(one cell × repeat: processes, load, window), :mod:`.server` (starting the
stack), :mod:`.rows` (outputs → the row), :mod:`.window` (client CPU per core and
per-message ratios over the measured window), :mod:`.memory` (server memory readings
at several connection counts, kernel socket memory), :mod:`.saturation` (the SLO search),
:mod:`.progress` (the live line, or plain lines in a log, with an ETA),
:mod:`.summary` (the table printed at the end), :mod:`.tables` (CSV writing)
and :mod:`.options` (what a run is given and returns). ``pushbench run``
itself is :mod:`pushbench.commands.run`: this runner, then the report.
"""

from __future__ import annotations

from pushbench.schema.cells import ALL_COLUMNS, EXTRA_COLUMNS, SATURATION_COLUMNS

from .command import add_arguments, run
from .options import CellFailed, RunOptions, RunResult
from .orchestrate import run_scenario

__all__ = [
    "ALL_COLUMNS",
    "EXTRA_COLUMNS",
    "SATURATION_COLUMNS",
    "CellFailed",
    "RunOptions",
    "RunResult",
    "add_arguments",
    "run",
    "run_scenario",
]
