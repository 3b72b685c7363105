"""Typed records that cross a process or a file boundary, in modules of their own.

The benchmarks and the runner write them, the workers and the report read them;
neither side imports the other. ``worker``: the spec the runner hands each worker
process.
"""
