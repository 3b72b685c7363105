from typing import Any

def apply_mask(data: bytes | bytearray | memoryview, key: bytes, /) -> bytes: ...
def parse_frames(
    frame_type: type,
    out: list[Any],
    data: bytes | bytearray | memoryview,
    pos: int,
    flags: int,
    rsv_allowed: int,
    max_frame: int,
    max_message: int,
    /,
) -> tuple[int, int]: ...
def encode_frame(
    b0: int, payload: bytes | bytearray | memoryview, key: bytes | None, /
) -> bytes: ...
