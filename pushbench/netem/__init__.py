"""Network conditions without netem: profiles (data), a shaping TCP relay on asyncio, its
``pushbench relay`` command and its calibration probe.

- :mod:`.profiles` — the ``net`` dimension's profiles (one-way delay, jitter, bandwidth
  cap per direction), read by scenario validation;
- :mod:`.shaper` — when a chunk may leave (token bucket, delay, jitter, order, stall);
- :mod:`.relay` — the relay itself (accept, connect, shape both directions, cut);
- :mod:`.command` — ``pushbench relay``, the process the runner starts per cell;
- :mod:`.probe` — the echo path and the :class:`~.probe.Calibration` record.

A core module: it imports nothing of the project outside this package.
"""

from __future__ import annotations

from .profiles import DEFAULT_NET, PROFILES, Direction, Profile, net_names, profile

__all__ = ["DEFAULT_NET", "PROFILES", "Direction", "Profile", "net_names", "profile"]
