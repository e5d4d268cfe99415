"""Merge messages on the wire: every header folds to lines of at most 78 characters and reads back exactly.

tests/mailmerge/test_wire.py checks that the direct serializer says what
the email package would say; this checks the wire format itself: the line
lengths (RFC 5322: 78 where whitespace allows; RFC 2047: an encoded word is
at most 75 characters) and that what a standard parser reads back is
exactly the text that was rendered (subjects, free-text headers, display
names up to runs of whitespace, many recipients, SMTPUTF8 mailboxes), for
7-bit and 8-bit bodies.
"""

from __future__ import annotations

import email
import email.policy
import re

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from smtp_nb.mailmerge.wire import Rendered

# Header text as a merge renders it: no control characters or line separators
# (the merge refuses those in fields), anything else, including non-ASCII, NBSP and long words.
TEXT = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))
WORDS = st.lists(
    st.one_of(
        # At most 10 characters: a single word longer than an encoded word holds (about 40 bytes of
        # UTF-8) is cut inside the word, and Python's parser reads a space into such a cut.
        st.text(TEXT, min_size=1, max_size=10),
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=90),  # a long word
        st.sampled_from(["Grüße", "Zoë", "日本語のテキスト", "naïve", '"quoted"', "a,b", "(comment)", "x@y"]),
    ),
    min_size=1,
    max_size=25,
)
SEPARATORS = st.sampled_from([" ", "  ", " \u00a0"])
MAILBOXES = st.one_of(
    st.sampled_from(["ada@example.com", "grace.hopper+merge@example.org", "o'neil@example.co.uk"]),
    st.sampled_from(["jürgen@müller.example", "用户@例子.广告"]),  # SMTPUTF8
)
ENCODED_WORD = re.compile(rb"=\?[^?]+\?[bBqQ]\?[^?]*\?=")


@st.composite
def texts(draw: st.DrawFn) -> str:
    words = draw(WORDS)
    text = words[0]
    for word in words[1:]:
        text += draw(SEPARATORS) + word
    text = text.strip() or "x"
    # Text that looks like an encoded word ("=?utf-8?q?...?=") is decoded by every reader; the
    # email package writes it as it is too. Left out: it cannot read back as the same text.
    assume("=?" not in text)
    return text


def breakable(line: bytes) -> bool:
    """True if ``line`` has a space at which it could have been folded into something shorter."""
    body = line if line[:1] in (b" ", b"\t") else line.split(b":", 1)[1]
    return any(len(piece) < len(line) - 1 for piece in body.strip().split(b" ")[1:]) and b" " in body.strip()


def phrase(name: str) -> str:
    """A display name as a parser reads it: whitespace between words is one space (RFC 5322 3.2.2).

    Python's parser reads any whitespace that follows a space or a tab as
    part of that space (it strips with ``str.lstrip``), even inside encoded
    words; names are compared after the same collapse.
    """
    return re.sub(r"[ \t]\s*", " ", name)


def parse(data: bytes) -> email.message.EmailMessage:
    """The message as a parser reads it; headers as UTF-8, for SMTPUTF8 mailboxes (RFC 6532)."""
    return email.message_from_string(data.decode("utf-8"), policy=email.policy.default)  # type: ignore[return-value]


def check_lines(data: bytes) -> None:
    head = data.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        assert len(line) <= 78 or not breakable(line), f"{len(line)} characters, and foldable: {line!r}"
        for word in ENCODED_WORD.findall(line):
            assert len(word) <= 75, f"an encoded word of {len(word)} characters (RFC 2047: at most 75)"


@settings(max_examples=300, deadline=None)
@given(
    subject=texts(),
    note=texts(),
    names=st.lists(st.one_of(st.just(""), texts()), min_size=1, max_size=6),
    mailboxes=st.lists(MAILBOXES, min_size=6, max_size=6),
    eight_bit=st.booleans(),
)
def test_headers_fold_within_78_and_read_back_exactly(subject, note, names, mailboxes, eight_bit):
    to = list(zip(names, mailboxes, strict=False))
    rendered = Rendered(
        headers=[("From", "x"), ("To", "x"), ("Subject", subject), ("X-Note", note)],
        addresses={"from": [("Office", "office@example.com")], "to": to},
        text="Body.\n",
    )
    data = rendered.to_bytes(eight_bit=eight_bit)
    check_lines(data)
    parsed = parse(data)
    assert str(parsed["Subject"]) == subject
    assert str(parsed["X-Note"]) == note
    assert [(phrase(a.display_name), a.addr_spec) for a in parsed["To"].addresses] == [(phrase(n), m) for n, m in to]


def test_long_non_ascii_display_name_is_split_into_short_encoded_words():
    """formataddr() wrote the name as one encoded word of 94 characters, on a line of 102."""
    name = "Zoë Müller-Lüdenscheidt von und zu Habsburg Lothringen"
    rendered = Rendered(
        headers=[("From", "x"), ("To", "x"), ("Subject", "s")],
        addresses={"from": [("", "a@example.com")], "to": [(name, "z@example.com"), ("René", "r@example.com")]},
        text="x\n",
    )
    data = rendered.to_bytes()
    check_lines(data)
    to = parse(data)["To"]
    assert [(a.display_name, a.addr_spec) for a in to.addresses] == [(name, "z@example.com"), ("René", "r@example.com")]


def test_display_name_with_a_backslash_beside_an_smtputf8_mailbox():
    r"""Beside a non-ASCII mailbox the name goes raw; unquoted, '\' made a parser read the mailbox as '"\\"'."""
    pairs = [("Ada \\ Lovelace", "jürgen@müller.example"), ("\\", "ada@example.com")]
    rendered = Rendered(
        headers=[("From", "x"), ("To", "x")], addresses={"from": [("", "a@example.com")], "to": pairs}, text="x\n"
    )
    to = parse(rendered.to_bytes())["To"]
    assert [(a.display_name, a.addr_spec) for a in to.addresses] == pairs
