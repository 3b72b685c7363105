"""Subcommands that compose layers: each runs a benchmark (or, for ``pushbench run``, the
scenario runner), then renders its report.

A command module exposes ``add_arguments(parser)`` and ``run(args) -> int``
(:mod:`pushbench.cli` wires it in and hands it ``args.command_line`` and
``args.settings``). It sits above both sides it composes, so the benchmark
(:mod:`pushbench.bench`) and the runner (:mod:`pushbench.runner`) never
import the report (:mod:`pushbench.report`) and the report never imports
either: they meet only through the records of :mod:`pushbench.schema` and
the run directory. ``describe`` only reads a scenario: it is here because it
is a subcommand, the layer that may print and exit.
"""
