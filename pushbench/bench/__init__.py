"""Benchmarks: cases declared as data, one runner each, results stored as data.

- :mod:`.codec` (cases), :mod:`.codec_runner`, :mod:`.codec_profile`: the
  WebSocket frame codec against wsproto, websockets and aiohttp (``pushbench
  bench-codec``), timed by the shared loop of :mod:`.timing`;
- :mod:`.peers`: the per-library adapters, one module per library, and the
  reference codec they are checked against;
- :mod:`.client` (cases, rules, summaries), :mod:`.client_runner`: how many
  messages per second a client worker receives on one core (``pushbench
  bench-client``);
- :mod:`.feeder`: the process that feeds it, sending only pre-encoded frames
  (``python -m pushbench.bench.feeder JSON``).

The records they store are :mod:`pushbench.schema` (``codec``, ``client_bench``);
rendering lives in :mod:`pushbench.report`, which never imports this package, and
this package never imports the report: :mod:`pushbench.commands` composes the two.
"""
