"""Typed records that cross a process or a file boundary, in modules of their own.

The benchmarks and the runner write them, the workers and the report read them;
neither side imports the other:

- ``worker``: :class:`~pushbench.schema.worker.WorkerSpec`, the spec the runner hands
  each worker process, and :class:`~pushbench.schema.worker.WorkerResult`, the OUT.json
  every worker kind writes back;
- ``cells``: the columns of ``cells.csv`` (name → what it holds) and their schema version;
- ``codec`` and ``client_bench``: what the codec and client benchmarks store and the
  report reads back.
"""
