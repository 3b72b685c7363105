"""Push server stacks, one module per stack, started by ``pushbench serve``.

Every stack module exposes ``STACK`` (:class:`pushbench.servers.base.Stack`) and serves the
URL scheme of :mod:`pushbench.service` over the shared hub and service, with the
knobs of :class:`pushbench.service.ServerConfig`; :mod:`pushbench.servers.serve` picks one
by name. Nothing is imported here: ``pushbench --help`` imports this package and
must stay fast.
"""
