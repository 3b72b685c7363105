"""Which Locust users exist: one per transport whose registry row has a ``gevent`` client.

The row's ``gevent`` entry point names the session class that receives the
transport (``"pushbench.clients.locust_ws:WsSession"``); the User class that
``clients/locustfile.py`` makes for it is named after that class, ``Session``
replaced by ``User`` (``WsUser``): the name given on Locust's command line and
recorded in the worker output. A transport gets a Locust user by its row alone.

This module imports no gevent (the wrapper, :mod:`pushbench.clients.locust_worker`,
reads it in a process Locust never patched); the session classes themselves
are imported by :func:`pushbench.clients.locust_common.session_class`.
"""

from __future__ import annotations

from pushbench import registry

__all__ = ["user_class_name", "user_classes"]


def user_class_name(entry: str) -> str:
    """``"module:WsSession"`` → ``"WsUser"``."""
    return entry.rpartition(":")[2].removesuffix("Session") + "User"


def user_classes() -> dict[str, str]:
    """Transport → its Locust User class name, for every row with a gevent client, in
    registry order (read at each call, so an added row is seen)."""
    return {
        t.name: user_class_name(t.clients["gevent"])
        for t in registry.transports()
        if "gevent" in t.clients
    }
