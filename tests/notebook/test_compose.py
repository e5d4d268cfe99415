"""From a ``%%smtp_send`` cell to a message: headers, body, fields, options, attachments; bad cells send nothing."""

from __future__ import annotations

import pytest

from smtp_nb.notebook.compose import build_message, parse_cell
from smtp_nb.notebook.errors import MessageError

CELL = "From: Ada <ada@example.com>\nTo: {{ to }}\nSubject: Week {{ week }}\n\nHello {{ name }},\n{literal} braces\n"


def test_cell_becomes_a_message_with_fields_filled_in():
    message, sender, recipients = build_message(CELL, {"to": "grace@example.com", "week": 7, "name": "Grace"})
    assert sender == "ada@example.com"
    assert recipients == ["grace@example.com"]
    assert message["Subject"] == "Week 7"
    assert message["To"] == "grace@example.com"
    assert message.get_content() == "Hello Grace,\n{literal} braces\n"
    assert message["Date"] and message["Message-ID"].endswith("@example.com>")


def test_folded_header_lines_are_joined():
    draft = parse_cell("Subject: a long\n  subject line\nTo: b@example.com\n\nbody")
    assert draft.headers == [("Subject", "a long subject line", 1), ("To", "b@example.com", 3)]
    assert draft.body == "body"
    assert draft.body_line == 5


def test_a_cell_starting_with_an_empty_line_is_all_body():
    message, _, recipients = build_message("\nJust a body.", {}, sender="a@example.com", to=["b@example.com"])
    assert recipients == ["b@example.com"]
    assert message.get_content() == "Just a body.\n"


def test_options_replace_the_cells_headers():
    message, sender, recipients = build_message(
        "From: old@example.com\nTo: old@example.com\nSubject: old\n\nbody",
        {"who": "Grace"},
        sender="new@example.com",
        to=["x@example.com", "y@example.com"],
        cc=["c@example.com"],
        bcc=["hidden@example.com"],
        subject="for {{ who }}",
    )
    assert sender == "new@example.com"
    assert recipients == ["x@example.com", "y@example.com", "c@example.com", "hidden@example.com"]
    assert message.get_all("To") == ["x@example.com, y@example.com"]
    assert message["Subject"] == "for Grace"


def test_header_line_without_colon_is_an_error_naming_the_line():
    with pytest.raises(MessageError, match=r"line 2 is not a header \('Hello Grace'\).*nothing was sent"):
        build_message("To: b@example.com\nHello Grace\n\nbody", {})


def test_undefined_field_is_an_error_naming_it():
    with pytest.raises(MessageError, match=r"uses \{\{ name \}\}, \{\{ week \}\}, not defined in the notebook"):
        build_message(CELL, {"to": "b@example.com"})


def test_missing_attribute_names_where_it_is_used():
    cell = "From: a@example.com\nTo: b@example.com\n\n{{ person.nickname }}"
    with pytest.raises(MessageError, match=r"the body \(from line 4\): 'dict object' has no attribute 'nickname'"):
        build_message(cell, {"person": {}})


def test_template_syntax_error_is_reported():
    with pytest.raises(MessageError, match=r"the Subject header \(line 1\): template error"):
        build_message("Subject: {% if %}\nTo: b@example.com\n\nx", {})


def test_value_with_a_line_break_cannot_add_a_header():
    cell = "From: a@example.com\nTo: {{ to }}\n\nbody"
    with pytest.raises(MessageError, match=r"the To header \(line 2\) holds a line break"):
        build_message(cell, {"to": "b@example.com\nBcc: everyone@example.com"})


@pytest.mark.parametrize(
    ("char", "what"), [("\u2028", "a line break"), ("\x0b", "a line break"), ("\x07", "the control character")]
)
def test_the_merges_header_rules_hold_in_send_cells(char, what):
    """One injection defence: what the merge refuses in a header, %%smtp_send refuses too (not only CR, LF, NUL)."""
    cell = "From: a@example.com\nTo: b@example.com\nSubject: {{ subject }}\n\nbody"
    with pytest.raises(MessageError, match=rf"the Subject header \(line 3\) holds .*{what}") as info:
        build_message(cell, {"subject": f"hi{char}Bcc: everyone@example.com"})
    assert "nothing was sent" in str(info.value)


def test_no_recipients_is_an_error():
    with pytest.raises(MessageError, match="no recipients: add To:, Cc: or Bcc: headers, or --to"):
        build_message("From: a@example.com\nSubject: x\n\nbody", {})


def test_no_sender_is_an_error():
    with pytest.raises(MessageError, match="no sender: add a From: header or --from"):
        build_message("To: b@example.com\n\nbody", {})


def test_invalid_address_is_an_error():
    with pytest.raises(MessageError, match="nothing was sent"):
        build_message("From: a@example.com\nTo: not an address\n\nbody", {})


def test_mime_headers_are_left_to_smtp_nb():
    with pytest.raises(MessageError, match="leave Content-Type out"):
        build_message("From: a@example.com\nTo: b@example.com\nContent-Type: text/html\n\n<p>x</p>", {})


def test_continuation_line_first_is_an_error():
    with pytest.raises(MessageError, match="line 1 starts with a space"):
        build_message("  To: b@example.com\n\nbody", {})


def test_missing_attachment_is_an_error(tmp_path):
    missing = tmp_path / "report.pdf"
    with pytest.raises(MessageError, match=r"attachment '.*report\.pdf' not found.*nothing was sent"):
        build_message("From: a@example.com\nTo: b@example.com\n\nsee attached", {}, attachments=[str(missing)])


def test_attachments_and_html_body(tmp_path):
    report = tmp_path / "results.csv"
    report.write_text("week,score\n7,42\n")
    message, _, _ = build_message(
        "From: a@example.com\nTo: b@example.com\n\n<p>Hello <b>{{ name }}</b></p><p>See the file.</p>",
        {"name": "<Grace>"},
        html=True,
        attachments=[str(report)],
    )
    assert message.get_content_type() == "multipart/mixed"
    body = message.get_body(("html",))
    assert body.get_content() == "<p>Hello <b>&lt;Grace&gt;</b></p><p>See the file.</p>\n"
    assert message.get_body(("plain",)).get_content() == "Hello <Grace>\n\nSee the file.\n"
    (attachment,) = message.iter_attachments()
    assert attachment.get_filename() == "results.csv"
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_content() == "week,score\n7,42\n"
