"""An independent reference codec, written from RFC 6455 §5.2 for clarity, not speed.

It builds the input streams of the codec benchmark and checks every adapter's
output, so no library (ours included) grades its own work.
"""

from __future__ import annotations

__all__ = ["reference_decode", "reference_encode", "reference_mask"]

_XOR_TABLES: dict[int, bytes] = {}


def _xor_table(k: int) -> bytes:
    table = _XOR_TABLES.get(k)
    if table is None:
        table = _XOR_TABLES[k] = bytes(b ^ k for b in range(256))
    return table


def reference_mask(data: bytes | bytearray, key: bytes) -> bytes:
    """XOR ``data`` with ``key`` repeated (§5.3), one byte lane at a time."""
    out = bytearray(data)
    for lane in range(4):
        out[lane::4] = out[lane::4].translate(_xor_table(key[lane]))
    return bytes(out)


def reference_encode(payload: bytes, *, key: bytes | None = None, opcode: int = 2) -> bytes:
    """One final frame (§5.2), masked with ``key`` if given."""
    n = len(payload)
    mask_bit = 0x80 if key is not None else 0
    head = bytearray([0x80 | opcode])
    if n <= 125:
        head.append(mask_bit | n)
    elif n <= 0xFFFF:
        head.append(mask_bit | 126)
        head += n.to_bytes(2, "big")
    else:
        head.append(mask_bit | 127)
        head += n.to_bytes(8, "big")
    if key is None:
        return bytes(head) + payload
    return bytes(head) + key + reference_mask(payload, key)


def reference_decode(
    data: bytes, *, masked: bool, keys: list[bytes] | None = None
) -> list[tuple[int, bool, bytes]]:
    """Parse complete frames → ``(opcode, fin, payload)``; strict about masking.

    Raises ``ValueError`` on a truncated stream or a mask bit that does not
    match ``masked`` (a client must mask, a server must not). The masking
    keys met are appended to ``keys`` when given.
    """
    frames: list[tuple[int, bool, bytes]] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 2:
            raise ValueError("truncated header")
        b0, b1 = data[pos], data[pos + 1]
        pos += 2
        if bool(b1 & 0x80) != masked:
            raise ValueError(f"mask bit is {bool(b1 & 0x80)}, expected {masked}")
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
        elif n == 127:
            n = int.from_bytes(data[pos : pos + 8], "big")
            pos += 8
        key = b""
        if masked:
            key = data[pos : pos + 4]
            pos += 4
            if keys is not None:
                keys.append(key)
        payload = data[pos : pos + n]
        if len(payload) != n:
            raise ValueError("truncated payload")
        pos += n
        frames.append(
            (b0 & 0x0F, bool(b0 & 0x80), reference_mask(payload, key) if key else payload)
        )
    return frames
