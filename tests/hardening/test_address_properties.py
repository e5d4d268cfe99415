"""Address validation, for any text: what is accepted is safe to put on a command line, and stays itself.

``parse_address`` decides what goes between the angle brackets of MAIL and
RCPT. Whatever it accepts must hold no control character or line separator
(anywhere) and no whitespace outside a quoted local part, and must come
back unchanged through ``quote_address``; every well-formed address, in
any of the forms a user writes, must be accepted as its mailbox.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_nb.client.addresses import parse_address, quote_address

ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~"
UNICODE_LETTERS = st.characters(whitelist_categories=("Ll", "Lu", "Lo"), min_codepoint=0x80)

atoms = st.text(st.one_of(st.sampled_from(ATEXT), UNICODE_LETTERS), min_size=1, max_size=10)
dot_atom = st.lists(atoms, min_size=1, max_size=3).map(".".join)
qtext = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters='"\\'),
    st.sampled_from(['\\"', "\\\\", "\\ "]),  # quoted pairs
)
quoted = st.lists(qtext, max_size=12).map(lambda chars: '"' + "".join(chars) + '"')
label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True) | st.sampled_from(
    ["müller", "例子", "xn--mller-kva"]
)
hostname = st.lists(label, min_size=1, max_size=4).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: "[{}.{}.{}.{}]".format(*t))
ipv6 = st.sampled_from(["[IPv6:2001:db8::1]", "[IPv6:::1]", "[IPv6:fe80::1:2:3:4]"])
domain = st.one_of(hostname, ipv4, ipv6)
mailboxes = st.tuples(st.one_of(dot_atom, quoted), domain).map(lambda t: f"{t[0]}@{t[1]}")
names = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters='<>"\\'), max_size=20)


@st.composite
def written(draw: st.DrawFn) -> tuple[str, str]:
    """A mailbox as a user may write it, and the mailbox."""
    mailbox = draw(mailboxes)
    form = draw(st.sampled_from(["{m}", "<{m}>", "{n} <{m}>", '"{n}" <{m}>', "  {m}  "]))
    return form.format(m=mailbox, n=draw(names)), mailbox


@settings(max_examples=500, deadline=None)
@given(item=written())
def test_well_formed_addresses_are_accepted_as_their_mailbox(item):
    text, mailbox = item
    assert parse_address(text) == mailbox
    assert quote_address(text) == f"<{mailbox}>"


def outside_quotes(mailbox: str) -> str:
    if mailbox.startswith('"'):
        return mailbox[mailbox.rindex('"') + 1 :]
    return mailbox


PIECES = st.one_of(
    st.text(max_size=6),
    st.sampled_from(
        ['"', "<", ">", "@", ".", " ", "\t", "\r", "\n", "\r\n", "\x00", "\x85", "\u2028", "\u2029", "\xa0", "\u3000"]
    ),
    st.sampled_from(["[", "]", ":", "\\", ",", "IPv6:", "::1", "example.com", "a", "ü", "postmaster"]),
)
ANY_TEXT = st.lists(PIECES, max_size=12).map("".join)


@settings(max_examples=1500, deadline=None)
@given(text=st.one_of(ANY_TEXT, st.text(max_size=40), written().map(lambda item: item[0])))
def test_whatever_is_accepted_is_safe_and_round_trips(text):
    try:
        mailbox = parse_address(text)
    except ValueError as exc:
        assert "invalid email address" in str(exc)
        return
    assert mailbox
    for char in mailbox:
        assert unicodedata.category(char) not in ("Cc", "Zl", "Zp"), f"{char!r} accepted in {mailbox!r}"
    assert not any(c.isspace() for c in outside_quotes(mailbox)), f"whitespace outside quotes in {mailbox!r}"
    assert parse_address(mailbox) == mailbox
    assert quote_address(text) == f"<{mailbox}>"
    assert parse_address(quote_address(text)) == mailbox


@pytest.mark.parametrize(
    "text",
    [
        "a\x85b@example.com",  # NEL, a C1 control: a line break to Python's str.splitlines()
        "a\u2028b@example.com",  # LINE SEPARATOR
        '"a\u2029b"@example.com',  # PARAGRAPH SEPARATOR, even quoted
        "a\xa0b@example.com",  # NO-BREAK SPACE outside quotes
        "ab@exa\u3000mple.com",  # IDEOGRAPHIC SPACE in the domain
        "ab@example.com\u2029",
        "\xa0ab@example.com",  # a NO-BREAK SPACE before: was stripped, while a header reader keeps it
        "<ab@example.com\u3000>",
    ],
)
def test_unicode_controls_separators_and_spaces_are_refused(text):
    with pytest.raises(ValueError, match="invalid email address"):
        parse_address(text)
