"""Abuse probes as a measured dimension (issue 17 item 5): :mod:`.probes` (the probes as
data rows), :mod:`.health` (``/health`` latency and peak RSS while one runs), :mod:`.run`
(per stack: start the server, run every probe, record). Records:
:mod:`pushbench.schema.abuse`; the report's "Robustness" table reads them."""

from __future__ import annotations

from .run import run_abuse

__all__ = ["run_abuse"]
