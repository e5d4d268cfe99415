"""The reply parser, for any input: how the bytes are cut into reads never changes what it parses.

A server's replies reach the parser in whatever pieces TCP delivers, so
any valid reply, cut anywhere, must parse to the same ``SMTPResponse``
list as when it arrives whole; and anything at all, valid or not, either
parses the same way whole and cut, or is refused with ``SMTPProtocolError``
both ways. Nothing else may ever come out of ``feed()``.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_nb import SMTPProtocolError, SMTPResponse
from smtp_nb.client.protocol import MAX_LINE_LENGTH, MAX_REPLY_LENGTH, ReplyParser

CODES = st.integers(200, 599)
# Reply text: any bytes but LF (CR inside a line is text), so not UTF-8 either.
TEXT = st.binary(max_size=60).map(lambda b: b.replace(b"\n", b""))
ENDINGS = st.sampled_from([b"\r\n", b"\n"])


@st.composite
def replies(draw: st.DrawFn) -> tuple[bytes, SMTPResponse]:
    """One valid reply as a server may send it, and what it means."""
    code = draw(CODES)
    texts = draw(st.lists(TEXT, min_size=1, max_size=6))
    wire = b""
    for i, text in enumerate(texts):
        last = i == len(texts) - 1
        if last and not text and draw(st.booleans()):
            line = b"%d" % code  # a code-only line
        else:
            line = b"%d%s%s" % (code, b" " if last else b"-", text)
        wire += line + draw(ENDINGS)
    message = b"\n".join(t.strip() for t in texts).decode("utf-8", "backslashreplace")
    return wire, SMTPResponse(code, message)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` cut at ``points`` (any positions, in any order) into the reads a socket might give."""
    bounds = [0, *sorted({p % (len(data) + 1) for p in points}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def feed_all(chunks: list[bytes]) -> tuple[str, list[SMTPResponse], bool]:
    """('ok', replies, has_partial) or ('error', replies before the error, False)."""
    parser = ReplyParser()
    out: list[SMTPResponse] = []
    for chunk in chunks:
        try:
            out += parser.feed(chunk)
        except SMTPProtocolError as exc:
            assert exc.code == -1
            assert not parser.has_partial  # the parser forgot everything
            return "error", out, False
        assert len(parser._partial) <= MAX_LINE_LENGTH and parser._size <= MAX_REPLY_LENGTH
    return "ok", out, parser.has_partial


@settings(max_examples=400, deadline=None)
@given(items=st.lists(replies(), min_size=1, max_size=8), points=st.lists(st.integers(0, 10**6), max_size=40))
def test_any_valid_replies_cut_anywhere_parse_the_same(items, points):
    wire = b"".join(w for w, _ in items)
    expected = [r for _, r in items]
    assert feed_all([wire]) == ("ok", expected, False)
    assert feed_all(cut(wire, points)) == ("ok", expected, False)
    assert feed_all([bytes([b]) for b in wire]) == ("ok", expected, False)  # one byte per read


TOKENS = st.sampled_from(
    [b"250", b"250-", b"250 ", b"554 ", b"\r\n", b"\n", b"\r", b"-", b" ", b"2", b"9", b"\x00", b"\xff", b"x" * 100]
)
GARBAGE = st.one_of(
    st.binary(max_size=400),
    st.lists(st.one_of(replies().map(lambda r: r[0]), TOKENS, st.binary(max_size=8)), max_size=30).map(b"".join),
)


@settings(max_examples=600, deadline=None)
@given(data=GARBAGE, points=st.lists(st.integers(0, 10**6), max_size=30))
def test_anything_parses_alike_whole_and_cut_or_is_a_protocol_error(data, points):
    whole = feed_all([data])  # anything but SMTPProtocolError propagates and fails the test
    pieces = feed_all(cut(data, points))
    assert whole[0] == pieces[0]
    if whole[0] == "ok":
        assert whole == pieces
    for reply in whole[1] + pieces[1]:
        assert 200 <= reply.code <= 599 and isinstance(reply.message, str)


@settings(max_examples=200, deadline=None)
@given(
    length=st.integers(MAX_LINE_LENGTH - 8, MAX_LINE_LENGTH + 8),
    ending=ENDINGS,
    points=st.lists(st.integers(0, 10**6), max_size=10),
)
def test_line_length_limit_holds_however_the_line_arrives(length, ending, points):
    line = b"250 " + b"x" * (length - 4)
    data = line + ending
    outcome = feed_all(cut(data, points))
    fits = len(line) + len(ending) - 1 <= MAX_LINE_LENGTH  # the limit counts a CR, not the LF
    assert outcome[0] == ("ok" if fits else "error")
    assert outcome[0] == feed_all([data])[0]


@settings(max_examples=100, deadline=None)
@given(count=st.integers(60, 70), width=st.integers(990, 1010), points=st.lists(st.integers(0, 10**6), max_size=10))
def test_reply_length_limit_holds_however_the_reply_arrives(count, width, points):
    continuation = b"250-" + b"y" * (width - 4) + b"\r\n"
    data = continuation * count + b"250 end\r\n"
    outcome = feed_all(cut(data, points))
    fits = count * width <= MAX_REPLY_LENGTH  # continuation lines, without their CRLF
    assert outcome[0] == ("ok" if fits else "error")
