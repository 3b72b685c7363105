"""The SSE parser against the WHATWG HTML spec, §9.2.6 "interpreting an event stream".

``CASES`` is a table of streams, each taken from one of the spec's own examples or
one of its rules, with the events it must give, the last event ID and reconnection
time it must leave, and whether the end of the stream cut off an incomplete event.
Every case is fed whole and one byte at a time. A hypothesis test then checks that
any chunking of a stream (1-byte chunks, splits inside CRLF and inside the BOM)
gives what feeding it whole gives, and that both agree with a line-for-line
transcription of the spec over decoded text (:func:`reference`).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushbench import sse
from pushbench.sse import Event, EventParser

BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Case:
    name: str
    stream: bytes
    events: list[tuple[str, str, str]]  # (data, lastEventId, type), data as UTF-8 text
    last_event_id: str = ""
    retry_ms: int | None = None
    discarded: bool = False  # what feed_eof() says: an incomplete event was cut off


def ev(data: str, last_id: str = "", kind: str = "message") -> tuple[str, str, str]:
    return (data, last_id, kind)


CASES = [
    # --- the spec's examples (§9.2.1 introduction, §9.2.6) ---------------------------
    Case(
        "intro: three messages, the second with two lines",
        b"data: This is the first message.\n\n"
        b"data: This is the second message, it\ndata: has two lines.\n\n"
        b"data: This is the third message.\n\n",
        [
            ev("This is the first message."),
            ev("This is the second message, it\nhas two lines."),
            ev("This is the third message."),
        ],
    ),
    Case(
        "intro: event types add and remove",
        b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n",
        [ev("73857293", kind="add"), ev("2153", kind="remove"), ev("113411", kind="add")],
    ),
    Case(
        "data lines joined with LF: YHOO +2 10",
        b"data: YHOO\ndata: +2\ndata: 10\n\n",
        [ev("YHOO\n+2\n10")],
    ),
    Case(
        "four blocks: comment, id 1, empty id resets it, one space removed only",
        b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
        b"data:  third event\n\n",
        [ev("first event", "1"), ev("second event"), ev(" third event")],
    ),
    Case(
        "fields without colon: two events, the last block discarded",
        b"data\n\ndata\ndata\n\ndata:",
        [ev(""), ev("\n")],
        discarded=True,
    ),
    Case(
        "the space after the colon is ignored: two identical events",
        b"data:test\n\ndata: test\n\n",
        [ev("test"), ev("test")],
    ),
    # --- line ends ----------------------------------------------------------------
    Case("lone CR line ends", b"data: a\r\rdata: b\r\r", [ev("a"), ev("b")]),
    Case("CRLF line ends", b"data: a\r\n\r\ndata: b\r\n\r\n", [ev("a"), ev("b")]),
    Case("CRLF, CR and LF mixed", b"data: a\r\ndata: b\rdata: c\n\r\n", [ev("a\nb\nc")]),
    Case("CR then CRLF: two line ends", b"data: a\r\r\n", [ev("a")]),
    Case("LF then CR: two line ends", b"data: a\n\r", [ev("a")]),
    Case("CR CR CR: a line and two blank lines", b"data: a\r\r\r", [ev("a")]),
    Case("a lone CR ending the stream ends a line", b"data: a\r", [], discarded=True),
    # --- byte order mark ------------------------------------------------------------
    Case("a leading BOM is stripped", BOM + b"data: a\n\n", [ev("a")]),
    Case("a BOM alone", BOM, []),
    Case(
        "only one BOM is stripped: the second is part of the field name",
        BOM + BOM + b"data: a\n\ndata: b\n\n",
        [ev("b")],
    ),
    Case(
        "a BOM after the start is text",
        b"data: a\n\n" + BOM + b"data: b\n\n",
        [ev("a")],
    ),
    Case("a BOM inside a value is kept", b"data: " + BOM + b"\n\n", [ev("\ufeff")]),
    Case(
        "a BOM's first bytes only: an invalid field name",
        b"\xef\xbbdata: a\n\ndata: b\n\n",
        [ev("b")],
    ),
    # --- id ------------------------------------------------------------------------
    Case("id without data sets the last event ID", b"id: 7\n\n", [], last_event_id="7"),
    Case("an id-only block then an event", b"id: 7\n\ndata: x\n\n", [ev("x", "7")], "7"),
    Case(
        "the id persists across events",
        b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n",
        [ev("a", "1"), ev("b", "1"), ev("c", "2")],
        last_event_id="2",
    ),
    Case("id after data in the block", b"data: a\nid: 5\n\n", [ev("a", "5")], "5"),
    Case("the last id line of a block wins", b"id: 1\nid: 2\ndata: a\n\n", [ev("a", "2")], "2"),
    Case(
        "an id containing NULL is ignored",
        b"id: 1\n\nid: a\x00b\ndata: x\n\n",
        [ev("x", "1")],
        last_event_id="1",
    ),
    Case("an id of NULL only is ignored", b"id: \x00\ndata: x\n\n", [ev("x")]),
    Case("an empty id resets it", b"id: 3\n\nid:\ndata: x\n\n", [ev("x")]),
    Case(
        "an id not followed by a blank line does not reach the last event ID",
        b"id: 2\ndata: a\n\nid: 3\n",
        [ev("a", "2")],
        last_event_id="2",
        discarded=True,
    ),
    Case("an id keeps inner and trailing spaces", b"id:  4 \n\n", [], last_event_id=" 4 "),
    Case("an id of invalid UTF-8 is decoded with U+FFFD", b"id: \xff\n\n", [], "\ufffd"),
    # --- retry ---------------------------------------------------------------------
    Case("retry sets the reconnection time", b"retry: 1500\n\n", [], retry_ms=1500),
    Case("retry needs no blank line", b"retry: 1500\n", [], retry_ms=1500),
    Case("retry without the space", b"retry:0\n\n", [], retry_ms=0),
    Case("retry with leading zeros", b"retry: 007\n\n", [], retry_ms=7),
    Case(
        "retry: only ASCII digits, else ignored",
        b"retry: 15x\nretry: -1\nretry: +1\nretry:  15\nretry: 1.5\nretry: 15 \n"
        b"retry: \xd9\xa1\nretry:\nretry\n\n",
        [],
    ),
    Case("the last valid retry wins", b"retry: 10\nretry: abc\nretry: 20\n\n", [], retry_ms=20),
    Case(
        "retry beyond int()'s digit limit",
        b"retry: " + b"9" * 5000 + b"\n\n",
        [],
        retry_ms=10**5000 - 1,
    ),
    Case("retry inside an event", b"data: a\nretry: 5\n\n", [ev("a")], retry_ms=5),
    # --- fields ---------------------------------------------------------------------
    Case(
        "unknown fields are ignored; names are case-sensitive",
        b"foo: bar\nDATA: x\nData: y\ndata : z\nevent : t\ndata: a\n\n",
        [ev("a")],
    ),
    Case("a block of unknown fields dispatches nothing", b"foo: bar\n\n", []),
    Case("comments are ignored", b": hi\ndata: a\n:\n: data: b\n\n", [ev("a")]),
    Case("one space removed, no more", b"data:  a\n\n", [ev(" a")]),
    Case("a tab is not a space", b"data:\ta\n\n", [ev("\ta")]),
    Case("the first colon splits", b"data: a:b: c\n\n", [ev("a:b: c")]),
    Case("data kept as is: NULL and spaces", b"data: a\x00b \n\n", [ev("a\x00b ")]),
    Case("an empty data line", b"data:\n\n", [ev("")]),
    Case("two empty data lines", b"data:\ndata:\n\n", [ev("\n")]),
    Case("only one trailing LF is removed", b"data: a\ndata:\n\n", [ev("a\n")]),
    Case("UTF-8 data", "data: né ☃ 😀\n\n".encode(), [ev("né ☃ 😀")]),
    Case("invalid UTF-8 data: U+FFFD once decoded", b"data: a\xffb\n\n", [ev("a\ufffdb")]),
    # --- event type -----------------------------------------------------------------
    Case(
        "the event type is reset after dispatch",
        b"event: add\ndata: 1\n\ndata: 2\n\n",
        [ev("1", kind="add"), ev("2")],
    ),
    Case(
        "the event type is reset by a block without data",
        b"event: add\n\ndata: 1\n\n",
        [ev("1")],
    ),
    Case("an empty event type is message", b"event:\ndata: a\n\n", [ev("a")]),
    Case("event without colon is message", b"event\ndata: a\n\n", [ev("a")]),
    Case("the last event line wins", b"event: a\nevent: b\ndata: x\n\n", [ev("x", kind="b")]),
    Case("an event type of any text", b"event: message \ndata: x\n\n", [ev("x", kind="message ")]),
    # --- dispatch and end of stream -------------------------------------------------
    Case("blank lines alone dispatch nothing", b"\n\n\r\n\r", []),
    Case(
        "an event without its blank line is discarded at the end",
        b"data: a\n\ndata: b\n",
        [ev("a")],
        discarded=True,
    ),
    Case("a line without its end is discarded", b"data: a\n\ndata: b", [ev("a")], discarded=True),
    Case("an event type alone is discarded", b"event: x\n", [], discarded=True),
    Case("a comment at the end is nothing to discard", b"data: a\n\n: bye\n", [ev("a")]),
    Case("an empty stream", b"", []),
]


class Outcome(NamedTuple):
    """Everything a client can observe of one stream."""

    events: list[Event]
    last_event_id: str
    retry_ms: int | None
    comments: int
    discarded: bool  # what feed_eof() returned

    def text(self) -> Outcome:
        """The events' data as the text the spec has (UTF-8 decoded, U+FFFD for errors)."""
        events = self.events
        return self._replace(
            events=[
                Event(e.data.decode("utf-8", "replace").encode(), e.id, e.event) for e in events
            ]
        )


def parse(chunks: list[bytes]) -> Outcome:
    """Feed ``chunks`` to a fresh parser, then end the stream."""
    p = EventParser()
    events: list[Event] = []
    for chunk in chunks:
        events += p.feed(chunk)
    discarded = p.feed_eof()
    return Outcome(events, p.last_event_id, p.retry_ms, p.comments, discarded)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("chunking", ["whole", "bytes"])
def test_spec_cases(case: Case, chunking: str) -> None:
    s = case.stream
    chunks = [s] if chunking == "whole" else [s[i : i + 1] for i in range(len(s))]
    got = parse(chunks)
    # Event.data is the stream's bytes; the spec's data is their decoding.
    assert [(e.data.decode("utf-8", "replace"), e.id, e.event) for e in got.events] == case.events
    assert got.last_event_id == case.last_event_id
    assert got.retry_ms == case.retry_ms
    assert got.discarded == case.discarded


def test_table_covers_the_three_reported_defects() -> None:
    names = {c.name for c in CASES}
    assert {"lone CR line ends", "a leading BOM is stripped"} <= names
    assert "id without data sets the last event ID" in names
    assert len(CASES) >= 60


def test_comments_are_counted() -> None:
    assert parse([b": hi\ndata: a\n:\n: data: b\n\n:\r"]).comments == 4


@pytest.mark.parametrize("cut", range(1, 3))
def test_bom_split_across_chunks(cut: int) -> None:
    chunks = [BOM[:cut], BOM[cut:] + b"data: a\n\n"]
    assert parse(chunks).events == [Event(b"a", "", "message")]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    # Two line ends would make a blank line and dispatch "a" on its own.
    chunks = [b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]
    assert parse(chunks).events == [Event(b"a\nb", "", "message")]
    # An empty chunk between CR and LF changes nothing.
    assert parse([b"data: a\r", b"", b"\ndata: b\r\n\r\n"]).events == [
        Event(b"a\nb", "", "message")
    ]


def test_events_come_out_as_soon_as_their_blank_line_is_in() -> None:
    p = EventParser()
    assert p.feed(b"data: a\n") == []
    assert p.feed(b"\n") == [Event(b"a", "", "message")]
    assert p.feed(b"data: b\r") == []
    # A lone CR already ends its line: no need to wait for a possible LF.
    assert p.feed(b"\r") == [Event(b"b", "", "message")]


def test_resume_seeds_the_last_event_id() -> None:
    """A reconnection's parser starts from the id EventSource kept.

    The ``retry`` block a server sends first must not clear it (the seeding that
    browsers do), an event without ``id`` carries it, and an empty ``id`` clears it.
    """
    p = EventParser("41")
    assert p.feed(b"retry: 100\n\n") == []
    assert p.last_event_id == "41"
    assert p.feed(b"data: x\n\n") == [Event(b"x", "41", "message")]
    assert p.feed(b"id: 42\ndata: y\n\nid\n\n") == [Event(b"y", "42", "message")]
    assert p.last_event_id == ""


def test_feed_eof_starts_the_next_stream() -> None:
    """After the end of a stream the parser reads the next one, as EventSource does."""
    p = EventParser()
    assert p.feed(b"retry: 50\nid: 1\ndata: a\n\nid: 2\ndata: b") == [Event(b"a", "1", "message")]
    assert p.feed_eof() is True  # "b" and id 2 were cut off
    assert (p.last_event_id, p.retry_ms) == ("1", 50)
    # The new stream: its own BOM is stripped; the id buffer restarts from "1".
    assert p.feed(BOM + b"data: c\r") == []
    assert p.feed(b"\n\n") == [Event(b"c", "1", "message")]
    assert p.feed_eof() is False


def test_encoder_output_unchanged() -> None:
    assert sse.event(b"a\nb", 7) == b"id: 7\ndata: a\ndata: b\n\n"
    assert sse.event(b"") == b"data: \n\n"
    assert sse.comment(b"hb") == b":hb\n\n"
    assert sse.comment() == b":\n\n"
    assert sse.retry(1500) == b"retry: 1500\n\n"


# --- any chunking, against a transcription of the spec ------------------------------


def reference(stream: bytes) -> Outcome:
    """§9.2.6 transcribed step by step over text, for a stream fed whole and ended."""
    text = stream.decode("utf-8-sig", "replace")  # UTF-8 decode: strips one leading BOM
    *lines, pending = re.split("\r\n|\r|\n", text)
    data, kind, id_buffer = "", "", ""
    last_event_id, retry_ms, comments = "", None, 0
    events: list[Event] = []
    for line in lines:
        if line == "":
            last_event_id = id_buffer
            if data == "":
                data = kind = ""
                continue
            if data.endswith("\n"):
                data = data[:-1]
            events.append(Event(data.encode(), last_event_id, kind or "message"))
            data = kind = ""
            continue
        if line.startswith(":"):
            comments += 1
            continue
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            kind = value
        elif field == "data":
            data += value + "\n"
        elif field == "id":
            if "\0" not in value:
                id_buffer = value
        elif field == "retry" and value and all(c in "0123456789" for c in value):
            retry_ms = int(value)
    discarded = bool(pending or data or kind) or id_buffer != last_event_id
    return Outcome(events, last_event_id, retry_ms, comments, discarded)


TOKENS = [
    b"data",
    b"id",
    b"event",
    b"retry",
    b":",
    b": ",
    b" ",
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b"\r\r",
    b"\r\n\r\n",
    b"a",
    b"7",
    b"12",
    b"\x00",
    b"\xff",
    "é".encode(),
    BOM,
    b"\xef\xbb",
]

streams = st.builds(
    lambda bom, parts: (BOM if bom else b"") + b"".join(parts),
    st.booleans(),
    st.lists(st.sampled_from(TOKENS), max_size=60),
)


@settings(max_examples=400, deadline=None)
@given(streams, st.data())
def test_any_chunking_gives_the_same_events(stream: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.sets(st.integers(0, len(stream)), max_size=len(stream) + 1))
    bounds = [0, *sorted(cuts), len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    whole = parse([stream])
    assert parse(chunks) == whole
    assert parse([stream[i : i + 1] for i in range(len(stream))]) == whole
    assert whole.text() == reference(stream)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=6), st.integers(1, 9))
def test_encoder_round_trip(datas: list[bytes], step: int) -> None:
    """What :func:`sse.event` writes, the parser reads back (data without CR)."""
    datas = [d.replace(b"\r", b"") for d in datas]
    stream = b"".join(sse.event(d, i) for i, d in enumerate(datas, 1))
    got = parse([stream[i : i + step] for i in range(0, len(stream), step)])
    assert got.events == [Event(d, str(i), "message") for i, d in enumerate(datas, 1)]
    assert got.last_event_id == (str(len(datas)) if datas else "")
