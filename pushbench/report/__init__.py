"""Reports rendered from stored results only: nothing here runs a benchmark.

The only package (with the notebooks) that imports matplotlib, and it does so
inside functions, so importing a report module stays cheap.

- :mod:`.codec`: plots, Markdown report and targets of a ``bench-codec`` run.
"""
