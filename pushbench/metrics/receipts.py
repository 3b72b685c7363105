"""A worker's receive log as parallel arrays (``OUT.npz``): the input of every metric.

Per received message ``conn``, ``seq``, ``sched_ns``, ``pub_ns``, ``recv_ns``
(CLOCK_MONOTONIC nanoseconds, comparable across processes on one host), as
each client worker writes them (``docs/runner-design.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Int64s", "Receipts"]

Int64s = NDArray[np.int64]


@dataclass(frozen=True)
class Receipts:
    """One worker's receive log: parallel arrays, one entry per received message."""

    conn: NDArray[np.uint32]
    seq: Int64s
    sched_ns: Int64s
    pub_ns: Int64s
    recv_ns: Int64s

    def __post_init__(self) -> None:
        n = len(self.conn)
        if any(len(a) != n for a in (self.seq, self.sched_ns, self.pub_ns, self.recv_ns)):
            raise ValueError("receipt arrays differ in length")

    def __len__(self) -> int:
        return len(self.conn)

    @classmethod
    def of(cls, **arrays: Any) -> Receipts:
        """From any array-likes (lists in tests), cast to the stored dtypes."""
        return cls(
            np.asarray(arrays["conn"], dtype=np.uint32),
            *(
                np.asarray(arrays[k], dtype=np.int64)
                for k in ("seq", "sched_ns", "pub_ns", "recv_ns")
            ),
        )

    @classmethod
    def load(cls, path: Path | str) -> Receipts:
        """Read a worker's ``OUT.npz``."""
        with np.load(path) as data:
            return cls.of(**{k: data[k] for k in ("conn", "seq", "sched_ns", "pub_ns", "recv_ns")})

    def window(self, start_ns: int, end_ns: int | None = None) -> Receipts:
        """Receipts of messages *scheduled* in ``[start_ns, end_ns)`` (warm-up excluded)."""
        keep = self.sched_ns >= start_ns
        if end_ns is not None:
            keep &= self.sched_ns < end_ns
        return Receipts(
            self.conn[keep],
            self.seq[keep],
            self.sched_ns[keep],
            self.pub_ns[keep],
            self.recv_ns[keep],
        )
