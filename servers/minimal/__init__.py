"""Hand-written twins: the least a push server on each framework can be.

One file per framework (``aiohttp_twin``, ``starlette_twin``), each readable alone,
each what a person would write by hand to push a ticker to a set of connections:
no hub, no per-connection queues or tasks beyond what the framework imposes, no
validation, tokens, heartbeats of its own, limits or counters per message. They
send the same envelope bytes as pushbench's service and speak just enough of the
runner's contract (ready line, ``POST /control/ticker``, ``GET /stats``, the four
push routes with ``since``) to be driven like any stack, so a run can put
pushbench's server beside its twin: the difference is the framework and harness
tax (``pushbench.report.tax``). The two files repeat each other's ticker on
purpose: a twin is a reference to read in one piece, not a library.

They have no auth at all: no tokens, and an open ``POST /control/ticker`` at any
rate. They are reference servers for loopback benchmarks only (they bind
127.0.0.1 unless ``--host`` says otherwise); never expose one on a network.
``pushbench serve``'s stacks close the control plane (:mod:`pushbench.service`).

Started as external stacks (their registry rows' ``argv``), never by
``pushbench serve``; nothing is imported here.
"""
