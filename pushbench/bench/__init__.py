"""Benchmarks: cases declared as data, one runner each, results stored as data.

- :mod:`.codec`: the WebSocket frame codec against wsproto, websockets and
  aiohttp (``pushbench bench-codec``);
- :mod:`.client`: how many messages per second a client worker receives on
  one core (``pushbench bench-client``): cases, measuring, stored results;
- :mod:`.feeder`: the process that feeds it, sending only pre-encoded frames
  (``python -m pushbench.bench.feeder JSON``);
- :mod:`.peers`: the per-library adapters and the reference codec they are
  checked against.

Rendering lives in :mod:`pushbench.report`, storage in :mod:`pushbench.results`.
"""
