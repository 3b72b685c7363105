"""Benchmarks: cases declared as data, one runner each, results stored as data.

- :mod:`.codec`: the WebSocket frame codec against wsproto, websockets and
  aiohttp (``pushbench bench-codec``);
- :mod:`.client`: how many messages per second a client worker receives on
  one core, fed by a process that only sends pre-encoded frames
  (``pushbench bench-client``);
- :mod:`.peers`: the per-library adapters and the reference codec they are
  checked against.

Rendering lives in :mod:`pushbench.report`, storage in :mod:`pushbench.results`.
"""
