"""Whether the host, not the transports, moved some of a run's kept repeats.

A repeat during which the hypervisor took at least the run's ``steal_at`` of a core
(``steal_fraction_max``, measured by :mod:`pushbench.runner.steal`) is re-measured; when
re-measures run out, or the re-measure was no better, it is kept. Its figures then include
the host's contention, so the report's banner and ``pushbench run``'s terminal text both
say so (:func:`stolen`), with the cells and the worst share, and what to do.
"""

from __future__ import annotations

from typing import Any

__all__ = ["STEAL_BANNER_AT", "stolen"]


#: The share of a core stolen from which a kept repeat is named in the banner, when the
#: run's ``speed`` record does not say the ``steal_at`` it re-measured from.
STEAL_BANNER_AT = 0.05


def stolen(cells: Any, speed: Any) -> str:
    """The banner for ok repeats during which the hypervisor took ≥ the run's ``steal_at``
    of a core (kept: re-measures ran out, or the re-measure was no better): their figures
    include the host's contention. Empty when none, or the run has no steal column."""
    if "steal_fraction_max" not in cells:
        return ""
    at = STEAL_BANNER_AT
    if isinstance(speed, dict) and speed.get("steal_at") is not None:
        at = float(speed["steal_at"])
    ok = cells[cells["status"] == "ok"]
    hit = ok[ok["steal_fraction_max"].fillna(0.0) >= at]
    if not len(hit):
        return ""
    ids = ", ".join(dict.fromkeys(hit["cell_id"]))
    worst = float(hit["steal_fraction_max"].max())
    return (
        f"{len(hit)} of {len(ok)} kept repeat(s) ran while the hypervisor took ≥ "
        f"{at:.0%} of a core (steal time, up to {worst:.0%}): the machine was slower "
        "for them than for the others, so their cells' spread and any verdict near its "
        f"margin may be the host's, not the transports'; rerun on a quieter machine: {ids}."
    )
