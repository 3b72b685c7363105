"""Reports rendered from stored results only: nothing here runs a benchmark.

The only package (with the notebooks) that imports matplotlib and pandas,
and it does so inside functions, so importing a report module stays cheap.
It reads stored records (:mod:`pushbench.schema`) and the registry
(:mod:`pushbench.registry`), never :mod:`pushbench.bench` or the runner.

- :mod:`.load`: the loader — a run as pandas DataFrames, per-cell medians;
- :mod:`.plots` (the list, in report order), :mod:`.plots_latency`,
  :mod:`.plots_rate`, :mod:`.plots_cost`, on the helpers of :mod:`.figure`;
  :mod:`.floors`, :mod:`.saturation`; :mod:`.style` (the registry's look);
- :mod:`.guide`: the decision guide, rules as data;
- :mod:`.build`, :mod:`.doc`, :mod:`.html`, :mod:`.md`: the document and its writers;
- :mod:`.paths`: what a report shows of a path (never the machine's absolute paths);
- :mod:`.render`: ``pushbench report`` (``render.render(run_dir)`` from code);
- :mod:`.compare`: ``pushbench compare``;
- :mod:`.codec`: plots, Markdown report and targets of a ``bench-codec`` run;
- :mod:`.client`: table, target line and Markdown report of a ``bench-client`` run.
"""
