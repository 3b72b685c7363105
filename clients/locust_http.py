"""HTTP/1.1 for the Locust users: the shared sans-I/O response reader, under its old name.

The gevent users and the asyncio light clients read responses with the same
code, :mod:`pushbench.wire.http_response` (request bytes out, response head and
body in, in any chunking); this module only keeps the names the Locust
sessions import.
"""

from __future__ import annotations

from pushbench.wire.http_response import BadResponse, ResponseReader, request

__all__ = ["BadResponse", "ResponseReader", "request"]
