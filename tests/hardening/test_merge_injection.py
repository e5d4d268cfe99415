"""A merge row cannot add a header or a recipient, whatever its fields hold.

tests/mailmerge/test_template.py covers CR/LF and a second address in a
field. Here: every other character that some reader takes for a line end
(VT, FF, the file/group/record separators, NEL, U+2028, U+2029) and the
other control characters, in every kind of header field, on both
serializers; a property over any field text, checked on the message as a
reader parses it and after the email package writes it out again; and
message text that tries to end the data early, through a real server.
"""

from __future__ import annotations

import email
import email.message
import email.policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import smtp_nb
from smtp_nb.mailmerge import MergeTemplate, MergeValidationError, RowError

TEMPLATE = "From: Office <office@example.com>\nTo: {{ email | mailbox(name) }}\nSubject: Hello {{ subject }}\n\nx"
HTML = "<p>Hello {{ name }}</p>"
#: Read as a line end by str.splitlines(), and so by the email package when it writes a header out again.
LINE_ENDS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
OTHER_CONTROLS = ["\x01", "\x1b", "\x7f", "\x9b"]


def parse(data: bytes) -> email.message.EmailMessage:
    """The message as a reader parses it (headers as UTF-8: RFC 6532)."""
    return email.message_from_string(data.decode("utf-8"), policy=email.policy.default)  # type: ignore[return-value]


def headers_of(data: bytes) -> list[str]:
    """Header names as a reader sees them, and again after the email package writes the message out."""
    parsed = parse(data)
    rewritten = email.message_from_string(parsed.as_string(policy=email.policy.SMTPUTF8), policy=email.policy.default)
    names = [name.lower() for name in parsed.keys()]
    assert [name.lower() for name in rewritten.keys()] == names
    return names


@pytest.mark.parametrize("char", LINE_ENDS + OTHER_CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("field", ["subject", "name", "email"])
@pytest.mark.parametrize("html", [None, HTML], ids=["text", "html"])
def test_line_ends_and_controls_in_a_field_are_refused(char, field, html):
    row = {"name": "Bo", "email": "bo@example.com", "subject": "hi"}
    row[field] = row[field] + char + "Bcc: evil@example.com"
    with pytest.raises(RowError) as info:
        MergeTemplate(TEMPLATE, html=html).render(row, 3)
    (problem,) = info.value.problems
    assert problem.row == 3 and problem.column in (field, "To")


async def test_a_vertical_tab_is_a_listed_row_problem_not_a_crash(server, tmp_path):
    """With an HTML part the email package serializes: it raised a bare ValueError, without row or column."""
    rows = [{"name": f"N{i}", "email": f"n{i}@example.com", "subject": "hi"} for i in range(8)]
    rows[6]["subject"] = "hi\x0bBcc: evil@example.com"
    with pytest.raises(MergeValidationError) as info:
        await smtp_nb.merge(
            TEMPLATE,
            rows,
            html=HTML,
            send=True,
            smtp={**server.client_options(), "timeout": 10},
            journal=tmp_path / "journal.sqlite",
            progress=False,
        )
    assert [(p.row, p.column) for p in info.value.problems] == [(7, "subject")]
    assert not server.messages


FIELD_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=400, deadline=None)
@given(name=FIELD_TEXT, subject=FIELD_TEXT, local=FIELD_TEXT, html=st.booleans())
def test_any_row_gives_the_template_headers_and_recipients_or_an_error(name, subject, local, html):
    row = {"name": name, "subject": subject, "email": f"{local}@example.com"}
    try:
        rendered = MergeTemplate(TEMPLATE, html=HTML if html else None).render(row, 1)
    except RowError:
        return
    assert len(rendered.recipients) == 1  # one recipient, however the fields read
    names = headers_of(rendered.to_bytes())
    assert names[:3] == ["from", "to", "subject"]
    assert set(names[3:]) <= {"content-type", "content-transfer-encoding", "mime-version"}
    parsed = parse(rendered.to_bytes())
    assert [a.addr_spec for a in parsed["To"].addresses] == rendered.recipients


async def test_message_text_cannot_end_the_data_early(server, tmp_path):
    rows = [
        {"name": "Ada", "email": "ada@example.com", "subject": "one"},
        {"name": "Bo", "email": "bo@example.com", "subject": "two"},
    ]
    body = "{{ name }}\n.\nMAIL FROM:<smuggled@evil.example>\nRCPT TO:<victim@example.com>\nDATA\nsmuggled\n.\n"
    result = await smtp_nb.merge(
        TEMPLATE.replace("\n\nx", "\n\n" + body),
        rows,
        send=True,
        smtp={**server.client_options(), "timeout": 10},
        journal=tmp_path / "journal.sqlite",
        progress=False,
    )
    assert result.counts["accepted"] == 2
    assert sorted(m.rcpt_tos for m in server.messages) == [("ada@example.com",), ("bo@example.com",)]
    assert all(m.mail_from == "office@example.com" for m in server.messages)
    assert all(b"\r\n.\r\nMAIL FROM:<smuggled@evil.example>\r\n" in m.data for m in server.messages)


@pytest.mark.parametrize("address", ["jürgen@müller.example", "用户@例子.广告"])
def test_the_mailbox_filter_takes_an_internationalized_address(address):
    """formataddr() refuses non-ASCII addresses with UnicodeEncodeError, which crashed render() (and the merge)."""
    template = "From: a@example.com\nTo: {{ email | mailbox(name) }}\n\nx"
    rendered = MergeTemplate(template).render({"email": address, "name": "Jürgen, Jr."}, 1)
    assert rendered.recipients == [address]
    assert rendered.addresses["to"] == [("Jürgen, Jr.", address)]


@pytest.mark.parametrize("email_field", ["\xa0bo@example.com", "bo@example.com\u3000", "\u2003bo@example.com"])
def test_a_unicode_space_around_the_address_is_refused_not_stripped(email_field):
    """Stripped, the envelope went to bo@example.com while the To header, as a reader parses it, said otherwise."""
    with pytest.raises(RowError) as info:
        MergeTemplate(TEMPLATE).render({"name": "Bo", "email": email_field, "subject": "hi"}, 2)
    assert "is not a valid email address" in str(info.value)
