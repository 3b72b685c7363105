"""Incremental UTF-8 validation: fails at the first impossible byte, in any split."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pushbench.wire.errors import ProtocolError
from pushbench.wire.utf8 import Utf8Validator, check_utf8

from .helpers import first_invalid_utf8, is_utf8_prefix, split_at, utf8_ish

# (bytes, index of the first byte at which no valid continuation exists)
INVALID = [
    (b"\xff", 0),
    (b"\xfe", 0),
    (b"\x80", 0),  # lone continuation byte
    (b"\xbf", 0),
    (b"\xc0\xaf", 0),  # overlong "/" (C0 and C1 can never start valid UTF-8)
    (b"\xc1\xbf", 0),
    (b"\xe0\x80\xaf", 1),  # overlong 3-byte
    (b"\xe0\x9f\xbf", 1),
    (b"\xf0\x80\x80\xaf", 1),  # overlong 4-byte
    (b"\xf0\x8f\xbf\xbf", 1),
    (b"\xf4\x90\x80\x80", 1),  # above U+10FFFF
    (b"\xf5\x80\x80\x80", 0),
    (b"\xed\xa0\x80", 1),  # U+D800, a UTF-16 surrogate
    (b"\xed\xbf\xbf", 1),  # U+DFFF
    (b"\xed\xa0\x80\xed\xb0\x80", 1),  # a surrogate pair encoded as CESU-8
    (b"a\xc3(", 2),  # truncated 2-byte sequence followed by ASCII
    (b"\xe2\x82(", 2),
    (b"\xf0\x9f\x98(", 3),
]

VALID = [
    b"",
    b"Hello",
    "κόσμε".encode(),
    b"\x00",
    b"\x7f",
    b"\xc2\x80",  # U+0080
    b"\xdf\xbf",  # U+07FF
    b"\xe0\xa0\x80",  # U+0800
    b"\xed\x9f\xbf",  # U+D7FF, just below the surrogates
    b"\xee\x80\x80",  # U+E000, just above
    b"\xef\xbf\xbf",  # U+FFFF
    b"\xf0\x90\x80\x80",  # U+10000
    b"\xf4\x8f\xbf\xbf",  # U+10FFFF
]


def test_oracle_sanity() -> None:
    assert is_utf8_prefix(b"\xed")
    assert not is_utf8_prefix(b"\xed\xa0")
    assert is_utf8_prefix(b"\xf4\x8f\xbf")
    assert not is_utf8_prefix(b"\xf4\x90")
    assert first_invalid_utf8(b"ok") is None
    assert first_invalid_utf8(b"ok\xe2\x82") == 4


@pytest.mark.parametrize(("data", "bad_at"), INVALID)
def test_invalid_fails_at_first_impossible_byte(data: bytes, bad_at: int) -> None:
    assert first_invalid_utf8(data) == bad_at  # the table agrees with the oracle
    v = Utf8Validator()
    for i in range(bad_at):
        v.feed(data[i : i + 1], final=False)
    with pytest.raises(ProtocolError) as info:
        v.feed(data[bad_at : bad_at + 1], final=False)
    assert info.value.code == 1007


@pytest.mark.parametrize(("data", "bad_at"), INVALID)
def test_invalid_whole(data: bytes, bad_at: int) -> None:
    with pytest.raises(ProtocolError) as info:
        check_utf8(data)
    assert info.value.code == 1007
    with pytest.raises(ProtocolError):
        Utf8Validator().feed(data, final=True)


def test_surrogate_detected_after_two_bytes() -> None:
    v = Utf8Validator()
    v.feed(b"ab\xed", final=False)  # ED alone may still be U+D000-U+D7FF
    with pytest.raises(ProtocolError) as info:
        v.feed(b"\xa0", final=False)
    assert info.value.code == 1007


@pytest.mark.parametrize("data", VALID)
def test_valid_byte_by_byte(data: bytes) -> None:
    check_utf8(data)
    v = Utf8Validator()
    for i in range(len(data)):
        v.feed(data[i : i + 1], final=False)
    v.feed(b"", final=True)


@pytest.mark.parametrize("data", [b"\xc3", b"a\xe2\x82", b"\xf0\x9f\x98", b"\xed"])
def test_incomplete_at_end(data: bytes) -> None:
    v = Utf8Validator()
    v.feed(data, final=False)  # a valid prefix: no error yet
    with pytest.raises(ProtocolError) as info:
        v.feed(b"", final=True)
    assert info.value.code == 1007
    with pytest.raises(ProtocolError):
        check_utf8(data)


def test_reset_forgets_pending_bytes() -> None:
    v = Utf8Validator()
    v.feed(b"\xe2\x82", final=False)
    v.reset()
    v.feed(b"abc", final=True)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=60), cuts=st.lists(st.integers(0, 250), max_size=8))
def test_valid_text_any_split(text: str, cuts: list[int]) -> None:
    data = text.encode()
    v = Utf8Validator()
    chunks = split_at(data, cuts)
    for chunk in chunks[:-1]:
        v.feed(chunk, final=False)
    v.feed(chunks[-1], final=True)


@settings(max_examples=300, deadline=None)
@given(data=utf8_ish, cuts=st.lists(st.integers(0, 40), max_size=6))
@example(data=b"\xed\xa0\x80", cuts=[2])
@example(data=b"ab\xf0\x9f", cuts=[3])
def test_fails_exactly_when_and_where_the_oracle_says(data: bytes, cuts: list[int]) -> None:
    """The validator raises in the chunk holding the first impossible byte, never earlier."""
    bad_at = first_invalid_utf8(data)
    v = Utf8Validator()
    chunks = split_at(data, cuts)
    offset = 0
    for i, chunk in enumerate(chunks):
        final = i == len(chunks) - 1
        end = offset + len(chunk)
        # Chunk i must raise iff it holds the bad byte (or ends an incomplete message).
        must_raise = bad_at is not None and (bad_at < end or (final and bad_at == len(data)))
        if must_raise:
            with pytest.raises(ProtocolError) as info:
                v.feed(chunk, final)
            assert info.value.code == 1007
            return
        v.feed(chunk, final)
        offset = end
    assert bad_at is None
