"""The order of a run: rounds that run every cell once, shuffled by a recorded seed.

Drift (a CPU warming up, a neighbour's load, the page cache, thermal limits) moves
every figure measured while it lasts. With a cell's repeats back to back, all of
them land in one stretch of the run and a drift reads as a difference between
cells. So the runner measures in *rounds*: round k runs repeat k of every selected
cell once, in an order shuffled per round by one :class:`random.Random` seeded with
the run's ``order_seed`` (recorded in ``metadata.json``; ``pushbench run --seed N``
repeats an order). Repeats are rounds: a cell with fewer repeats than another is in
the first rounds only. Each row carries its ``round`` and its ``run_index`` (its
place in the run); ``cells.csv`` lists the rows in scenario order all the same.

The saturation search's probes depend on the listed rates' results, so they come
after the listed rounds, in *probe rounds*: each holds the next repeat wanted by
every ``[slo]`` group still searching, shuffled by the same generator, so a probe
rate's repeats are spread over consecutive probe rounds, interleaved with the other
groups' probes. A group's search (:func:`.saturation.search`, unchanged) is
*replayed* before every probe round, from the listed rates' rows as it first saw
them: it asks for its probes' repeats through its ``measure`` callback in order; a
repeat already measured is answered with its row (added to the rows the search
sees, as a measurement would be), and the first one not measured yet ends the
replay as the group's want for this round (:class:`_Wanted`, a BaseException so that no ``except
Exception`` in the search can swallow it). A search that returns is finished: its
``saturation.csv`` row. The same seed gives the same probe order when the same
probes are wanted (they follow the measured figures).
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pushbench.scenario import Cell

from .options import RunOptions
from .progress import Progress
from .saturation import search

__all__ = ["Planned", "ProbeRounds", "interleave", "new_seed"]


@dataclass(frozen=True)
class Planned:
    """One run of the plan: a cell, its repeat, and the round it belongs to."""

    cell: Cell
    repeat: int
    round: int


def new_seed() -> int:
    """A fresh seed for a run's order (recorded, so that order can be run again)."""
    return secrets.randbelow(2**32)


def interleave(runs: Sequence[tuple[Cell, int]], rng: random.Random) -> list[Planned]:
    """``runs`` (cell, repeat) in rounds: round k = every cell's repeat k, shuffled."""
    by_round: dict[int, list[Cell]] = {}
    for cell, repeat in runs:
        by_round.setdefault(repeat, []).append(cell)
    plan: list[Planned] = []
    for number in sorted(by_round):
        cells = by_round[number]
        rng.shuffle(cells)
        plan += [Planned(cell, number, number) for cell in cells]
    return plan


class _Wanted(BaseException):
    """A replayed search asks for a probe repeat not measured yet."""

    def __init__(self, cell: Cell, repeat: int) -> None:
        super().__init__(cell.cell_id, repeat)
        self.cell, self.repeat = cell, repeat


class ProbeRounds:
    """The saturation search of every ``[slo]`` group, one probe round at a time.

    ``rows`` is the run's list of rows (the listed rates' and, as they are
    measured, the probes'); :meth:`record` tells which row answers which probe.
    ``results`` holds the ``saturation.csv`` row of each finished group, in group order.
    """

    def __init__(
        self, groups: dict[Cell, list[Cell]], rows: list[dict[str, Any]], options: RunOptions
    ) -> None:
        self._groups = groups
        self._pending = list(groups)
        self._rows = rows
        self._options = options
        self._probes: dict[tuple[str, int], dict[str, Any]] = {}
        self._seen: list[dict[str, Any]] = []  # the rows the search being replayed sees
        self._finished: dict[Cell, dict[str, Any]] = {}

    @property
    def results(self) -> list[dict[str, Any]]:
        return [self._finished[g] for g in self._groups if g in self._finished]

    def next_round(self, rng: random.Random, number: int) -> list[Planned]:
        """The runs of probe round ``number``, shuffled: one wanted repeat per group still
        searching (groups that want nothing more are finished here)."""
        wanted: list[Planned] = []
        for group in list(self._pending):
            silent = Progress("off", 0, 0.0)  # the replay's own counting is not the run's
            self._seen = [row for row in self._rows if not row["probe"]]
            try:
                out = search(
                    group, self._groups[group], self._seen, self._replay, self._options, silent
                )
            except _Wanted as want:
                wanted.append(Planned(want.cell, want.repeat, number))
            else:
                self._finished[group] = out
                self._pending.remove(group)
        rng.shuffle(wanted)
        return wanted

    def record(self, planned: Planned, row: dict[str, Any]) -> None:
        """``row`` is the measurement of the probe run ``planned``."""
        self._probes[(planned.cell.cell_id, planned.repeat)] = row

    def _replay(self, cell: Cell, repeat: int, probe: bool) -> dict[str, Any]:
        row = self._probes.get((cell.cell_id, repeat))
        if row is None:
            raise _Wanted(cell, repeat)
        self._seen.append(row)
        return row
