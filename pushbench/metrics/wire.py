"""Bytes on the wire, estimated from TCP payload bytes and segment counts.

The kernel's ``TCP_INFO`` counts TCP *payload* (``tcpi_bytes_acked``,
``tcpi_bytes_received``) and, separately, the segments that carried it and every pure
ACK (``tcpi_segs_out``, ``tcpi_segs_in``). What crossed the wire is the payload plus
each segment's headers: on the benchmark's loopback path, Linux's defaults, an IPv4
header (20 B) and a TCP header (20 B) with the timestamps option (12 B), 52 B per
segment. That is an estimate, stated as one: IPv6 (+20 B), SACK blocks, or a path
without timestamps (−12 B) change it, and link-layer framing (Ethernet's 14 B header,
4 B FCS, 20 B preamble and gap) is not in it — loopback has none.
"""

from __future__ import annotations

__all__ = ["HEADER_BYTES_PER_SEGMENT", "wire_bytes"]

#: IPv4 (20 B) + TCP (20 B) + TCP timestamps option (12 B): one loopback segment's headers.
HEADER_BYTES_PER_SEGMENT = 52


def wire_bytes(payload: float | None, segments: float | None) -> float | None:
    """``payload`` bytes plus :data:`HEADER_BYTES_PER_SEGMENT` per segment (both counted
    over one span, or both per message); None when either is unknown."""
    if payload is None or segments is None:
        return None
    return payload + HEADER_BYTES_PER_SEGMENT * segments
