"""XOR masking (RFC 6455 §5.3): both size paths against a byte-by-byte reference."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushbench.wire.mask import (
    MASK_NUMPY_MIN,
    MaskFunction,
    _mask_large,
    _mask_small,
    apply_mask,
    apply_mask_into,
    rotate_key,
)

pytestmark = pytest.mark.usefixtures("mask_impl")  # apply_mask with and without C

# Every masking implementation, whatever apply_mask currently dispatches to.
IMPLS: dict[str, MaskFunction] = {
    "apply_mask": lambda d, k: bytes(apply_mask(d, k)),
    "small": _mask_small,
    "large": lambda d, k: bytes(_mask_large(d, k)),
}
C_MASK: MaskFunction | None
try:  # the built helper itself, whichever path the suite runs on
    from pushbench.wire._speedups import apply_mask as C_MASK
except ImportError:  # pragma: no cover - depends on the build
    C_MASK = None
if C_MASK is not None:
    IMPLS["c"] = C_MASK
impls = pytest.mark.parametrize("impl", list(IMPLS.values()), ids=list(IMPLS))


def reference_mask(data: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


keys = st.binary(min_size=4, max_size=4)
# Sizes straddling the small/numpy crossover and the 8-byte word boundary.
sizes = st.one_of(
    st.integers(0, 40),
    st.integers(MASK_NUMPY_MIN - 9, MASK_NUMPY_MIN + 9),
    st.integers(0, 3 * MASK_NUMPY_MIN),
)


@impls
def test_rfc_example_key(impl: MaskFunction) -> None:
    # RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
    key = bytes.fromhex("37fa213d")
    assert impl(b"Hello", key) == bytes.fromhex("7f9f4d5158")
    assert impl(bytes.fromhex("7f9f4d5158"), key) == b"Hello"


@impls
def test_empty_payload(impl: MaskFunction) -> None:
    assert impl(b"", b"abcd") == b""


@impls
@settings(max_examples=100, deadline=None)
@given(size=sizes, key=keys, seed=st.integers(0, 255))
def test_matches_reference_and_is_an_involution(
    impl: MaskFunction, size: int, key: bytes, seed: int
) -> None:
    data = bytes((seed + 7 * i) & 0xFF for i in range(size))
    masked = impl(data, key)
    assert len(masked) == size
    assert masked == reference_mask(data, key)
    assert impl(masked, key) == data


@impls
@settings(max_examples=40, deadline=None)
@given(size=sizes, key=keys)
def test_accepts_bytearray_and_memoryview(impl: MaskFunction, size: int, key: bytes) -> None:
    data = bytes(i & 0xFF for i in range(size))
    expected = reference_mask(data, key)
    assert impl(bytearray(data), key) == expected
    assert impl(memoryview(data), key) == expected
    # A slice at an odd offset: unaligned source memory.
    assert impl(memoryview(b"x" + data)[1:], key) == expected


@settings(max_examples=60, deadline=None)
@given(size=sizes, key=keys)
def test_apply_mask_into(size: int, key: bytes) -> None:
    data = bytes((3 * i) & 0xFF for i in range(size))
    out = bytearray(size)
    apply_mask_into(data, key, out)
    assert out == reference_mask(data, key)
    # In place, as the large path uses it.
    buf = bytearray(data)
    apply_mask_into(buf, key, buf)
    assert buf == out


@impls
def test_input_not_modified(impl: MaskFunction) -> None:
    data = bytearray(range(256)) * 20
    before = bytes(data)
    impl(data, b"\x01\x02\x03\x04")
    assert data == before


@pytest.mark.skipif(C_MASK is None, reason="the C masking helper is not built")
def test_c_helper_rejects_bad_keys() -> None:
    assert C_MASK is not None
    for key in (b"", b"abc", b"abcde"):
        with pytest.raises(ValueError):
            C_MASK(b"data", key)


@settings(max_examples=100, deadline=None)
@given(size=st.integers(0, 5000), key=keys, data=st.data())
def test_rotate_key_masks_slices_like_the_whole(size: int, key: bytes, data: st.DataObject) -> None:
    payload = bytes((5 * i + 1) & 0xFF for i in range(size))
    cuts = sorted(data.draw(st.lists(st.integers(0, size), max_size=6)))
    whole = reference_mask(payload, key)
    pieces = []
    prev = 0
    for cut in [*cuts, size]:
        pieces.append(apply_mask(payload[prev:cut], rotate_key(key, prev)))
        prev = cut
    assert b"".join(pieces) == whole


def test_rotate_key_values() -> None:
    key = b"ABCD"
    assert [rotate_key(key, i) for i in range(6)] == [
        b"ABCD",
        b"BCDA",
        b"CDAB",
        b"DABC",
        b"ABCD",
        b"BCDA",
    ]
