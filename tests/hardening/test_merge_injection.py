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
import html as _html
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import smtp_nb
from smtp_nb.mailmerge import MergeTemplate, MergeValidationError, RowError, TemplateError

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


# -- rows and templates from someone else (issue 15) ----------------------------------------------------------------

SIMPLE = "From: a@example.com\nTo: {{ name }} <{{ email }}>\nSubject: hi\n\n{{ body }}\n"


@pytest.mark.parametrize(
    ("row", "fields"),
    [
        ({"name": "<evil@attacker.example>", "email": "bo@example.com", "body": "x"}, "name"),
        ({"name": "postmaster,", "email": "bo@example.com", "body": "x"}, "name"),
    ],
)
def test_fields_cannot_add_recipients_alone_or_together(row, fields):
    with pytest.raises(
        RowError,
        match=r"would hold (\d address\(es\) where the template puts 1|the address syntax '.*' where the)",
    ) as info:
        MergeTemplate(SIMPLE).render(row, 1)
    assert info.value.problems[0].column == fields


def test_two_fields_together_cannot_add_a_recipient():
    template = "From: a@example.com\nTo: {{ first }} {{ last }} <{{ email }}>\n\nx\n"
    row = {"first": "<evil@attacker.example>", "last": ", Smith", "email": "bo@example.com"}
    with pytest.raises(RowError) as info:
        MergeTemplate(template).render(row, 3)
    assert info.value.problems[0].column == "first, last" and "would hold 2 address" in str(info.value)


def test_a_group_in_a_field_is_a_row_problem_not_a_crash():
    with pytest.raises(RowError, match="row 1, "):
        MergeTemplate(SIMPLE).render({"name": "undisclosed:;", "email": "bo@example.com", "body": "x"}, 1)


def test_the_address_as_typed_and_its_column():
    template = "From: a@example.com\nTo: {{ email | mailbox(name) }}\n\nx\n"
    with pytest.raises(RowError) as info:
        MergeTemplate(template).render({"name": "Edsger", "email": "edsger(at)example"}, 2)
    (problem,) = info.value.problems
    assert problem.column == "email" and problem.problem.startswith("'edsger(at)example' is not a valid email")
    with pytest.raises(RowError, match=r"'bo@@example\.com' is not a valid email address: it has more than one '@'"):
        MergeTemplate(template).render({"name": "Bo", "email": "bo@@example.com"}, 2)


@pytest.mark.parametrize("to", ["{{ email | mailbox(name) }}", "{{ email }}"])
def test_a_bad_address_with_no_name_is_a_bad_address_not_a_new_structure(to):
    # Found by a newcomer: with an empty name the address stands bare, so its '()' read as a comment
    # the template never wrote, and the advice was to write the mailbox filter already written.
    template = f"From: a@example.com\nTo: {to}\n\nx\n"
    with pytest.raises(RowError) as info:
        MergeTemplate(template).render({"name": "", "email": "edsger(at)example"}, 2)
    (problem,) = info.value.problems
    assert problem.column == "email"
    assert problem.problem == "'edsger(at)example' is not a valid email address: it has no '@domain' " + (
        "(only <postmaster> may go without a domain)"
    )
    # A value that separates or wraps mailboxes is still a change of structure, whatever the column.
    with pytest.raises(RowError, match="would hold 2 address"):
        MergeTemplate(template).render({"name": "", "email": "<evil@attacker.example>, bo@example.com"}, 2)


def test_a_domain_without_a_dot_is_accepted_and_flagged(tmp_path):
    template = "From: a@example.com\nTo: {{ email }}\n\nx\n"
    preview = smtp_nb.merge_sync(template, [{"email": "cy@example"}], journal=tmp_path / "j", progress=False)
    assert preview.to_send == 1
    assert "note: row 1, To: cy@example: the domain 'example' has no dot" in repr(preview)


def test_templates_run_in_the_sandbox():
    template = "From: a@example.com\nTo: b@example.com\n\n{{ cycler.__init__.__globals__.os.popen('id').read() }}\n"
    with pytest.raises(TemplateError, match="may not"):
        MergeTemplate(template).render({}, 1)


def test_an_include_is_one_line_unless_a_loader_is_given():
    import jinja2

    template = "From: a@example.com\nTo: b@example.com\n\n{% include 'footer.txt' %}\n"
    with pytest.raises(TemplateError, match=r"line 4: a merge template reads no other template .* loader="):
        MergeTemplate(template)
    loader = jinja2.DictLoader({"footer.txt": "-- the office"})
    rendered = MergeTemplate(template, loader=loader).render({}, 1)
    assert rendered.text == "-- the office\n"


@pytest.mark.parametrize(
    "value",
    ["[click](javascript:alert(1))", "![](http://tracker.example/p.gif)", "<a href='javascript:x'>y</a>"],
)
def test_markdown_in_a_row_value_renders_literally(value):
    template = "From: a@example.com\nTo: b@example.com\n\nHello {{ name }}, see [our site](https://example.com/).\n"
    html = MergeTemplate(template, markdown=True).render({"name": value}, 1).html
    assert html is not None
    assert 'href="javascript' not in html and "<img" not in html
    assert '<a href="https://example.com/">our site</a>' in html  # the template's own link stays as written


class _Shown:
    def __str__(self) -> str:
        return "[pay here](https://phish.example/)"


@pytest.mark.parametrize(
    ("body", "row"),
    [
        (
            "Courses: {{ courses | join(', ') }}\n",
            {"courses": ["![](http://tracker.example/p.gif)", "[x](http://phish.example/)"]},
        ),
        ("Courses: {{ courses }}\n", {"courses": ["<img src=http://tracker.example/raw.gif>"]}),
        ("{{ thing }}\n", {"thing": _Shown()}),
        ("{{ name }}\n", {"name": "Term\n: a definition"}),
        ("{{ name }}\n", {"name": "A heading\n==="}),
        ("{{ name }}\n", {"name": "~~struck~~ <b>bold</b> &amp;"}),
    ],
)
def test_whatever_a_value_is_its_markdown_renders_literally(body, row):
    """Lists, objects and every Markdown construct: what a value prints is text in the HTML part."""
    rendered = MergeTemplate("From: a@example.com\nTo: b@example.com\n\n" + body, markdown=True).render(row, 1)
    html = rendered.html or ""
    for tag in ("<a ", "<img", "<dl", "<dd", "<h1", "<del", "<s>", "<b>"):
        assert tag not in html, (tag, html)
    text = re.sub(r"<[^>]+>", "", html)
    shown = {k: ", ".join(v) if isinstance(v, list) else str(v) for k, v in row.items()}
    for value in shown.values():  # every word of the value is there, as text
        assert all(word in _html.unescape(text) for word in value.split()), (value, html)


def test_the_html_part_keeps_only_safe_link_targets():
    html = '<p><a href="https://example.com/">ok</a> <a href="javascript:alert(1)">bad</a> <img src="cid:logo"></p>'
    rendered = MergeTemplate("From: a@example.com\nTo: b@example.com\n\nx\n", html=html).render({}, 1).html
    assert '<a href="https://example.com/">ok</a>' in rendered and "javascript" not in rendered
    assert '<img src="cid:logo">' in rendered


@pytest.mark.parametrize(
    ("path", "said"),
    [
        ("/etc/passwd", "is an absolute path"),
        ("../outside.txt", "leads out of the attachments folder"),
        ("link", "leads out of the attachments folder"),
        ("sub", "is not a regular file"),
        ("environ", "leads out of the attachments folder"),
        ("fifo", "is not a regular file"),
    ],
)
def test_attachments_stay_inside_their_folder(tmp_path, path, said):
    root = tmp_path / "files"
    root.mkdir()
    (tmp_path / "outside.txt").write_text("secret")
    (root / "link").symlink_to(tmp_path / "outside.txt")
    (root / "environ").symlink_to("/proc/self/environ")
    (root / "sub").mkdir()
    os.mkfifo(root / "fifo")
    template = MergeTemplate(
        "From: a@example.com\nTo: b@example.com\n\nx\n", attachments="files", attachments_root=root
    )
    with pytest.raises(RowError, match=said) as info:
        template.render({"files": path}, 7)
    assert info.value.problems[0].column == "files"


def test_system_trees_are_whole_folders_not_name_prefixes():
    from smtp_nb.mailmerge.template import _in_system_tree

    assert all(map(_in_system_tree, ["/proc", "/proc/self/environ", "/dev/null", "/sys/kernel"]))
    assert not any(map(_in_system_tree, ["/devel/report.pdf", "/processed/a.csv", "/system-data/x", "/"]))


def test_a_zero_byte_journal_is_an_empty_one_for_a_preview(tmp_path):
    (tmp_path / "journal.sqlite").touch()
    preview = smtp_nb.merge_sync(
        TEMPLATE, [{"email": "a@example.com", "name": "A", "subject": "s"}], journal=tmp_path / "journal.sqlite"
    )
    assert preview.to_send == 1


def test_twenty_thousand_attachment_paths_are_refused_before_looking_at_any(tmp_path):
    template = MergeTemplate(
        "From: a@example.com\nTo: b@example.com\n\nx\n", attachments="files", attachments_root=tmp_path
    )
    with pytest.raises(RowError, match="lists 20,000 files; at most 100"):
        template.render({"files": ";".join(["/etc/passwd"] * 20_000)}, 1)
    with pytest.raises(RowError, match="lists 20,000 files"):
        template.render({"files": ["x"] * 20_000}, 1)


def test_a_preview_lists_every_rows_attachments_without_reading_them(tmp_path):
    import tracemalloc

    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:
        handle.truncate(100 * 1024 * 1024)  # 100 MB (sparse: costs no disk)
    (tmp_path / "small.txt").write_text("hello")
    rows = [{"email": f"s{i}@example.com", "files": "big.bin" if i == 0 else "small.txt"} for i in range(5)]
    template = "From: a@example.com\nTo: {{ email }}\n\nx\n"
    tracemalloc.start()
    try:
        preview = smtp_nb.merge_sync(
            template, rows, attachments="files", attachments_root=tmp_path, journal=tmp_path / "j", progress=False
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024
    assert [(row, files) for row, files in preview.attachments] == [(1, [("big.bin", 104857600)])] + [
        (i, [("small.txt", 5)]) for i in range(2, 6)
    ]
    assert "104,857,600 bytes" in repr(preview)


def test_a_large_preview_says_how_many_rows_have_attachments(tmp_path):
    (tmp_path / "small.txt").write_text("hello")
    rows = [{"email": f"s{i}@example.com", "files": "small.txt"} for i in range(1200)]
    preview = smtp_nb.merge_sync(
        "From: a@example.com\nTo: {{ email }}\n\nx\n",
        rows,
        attachments="files",
        attachments_root=tmp_path,
        journal=tmp_path / "j",
        progress=False,
    )
    assert len(preview.attachments) == 1000 and preview.attachment_rows == 1200
    assert "Attachments of every row (the first 1,000 of 1,200 rows):" in repr(preview)


@pytest.mark.parametrize(
    "name", ["evil@attacker.example>", "evil@attacker.example:", "x (", "x)", "x\\", "a <b@c.example> x"]
)
@pytest.mark.parametrize("header", ["To", "Cc", "From"])
def test_a_display_name_cannot_replace_the_rows_address(header, name):
    """``Name <email>`` written plainly: a name that would turn the real address into a comment is refused."""
    lines = {
        "From": "From: {{ name }} <{{ email }}>\nTo: to@example.com",
        "To": "From: a@example.com\nTo: {{ name }} <{{ email }}>",
    }
    lines["Cc"] = "From: a@example.com\nTo: to@example.com\nCc: {{ name }} <{{ email }}>"
    with pytest.raises(RowError, match="cannot add, remove or replace recipients"):
        MergeTemplate(lines[header] + "\n\nx\n").render({"name": name, "email": "bo@example.com"}, 1)
    quoted = MergeTemplate(lines[header].replace("{{ name }} <{{ email }}>", "{{ email | mailbox(name) }}") + "\n\nx\n")
    rendered = quoted.render({"name": name, "email": "bo@example.com"}, 1)  # the filter quotes the name: safe
    sent = email.message_from_bytes(rendered.to_bytes(), policy=email.policy.default)
    assert [a.addr_spec for a in sent[header].addresses] == ["bo@example.com"]
    assert (rendered.sender if header == "From" else rendered.recipients[-1]) == "bo@example.com"


@settings(max_examples=300, deadline=None)
@given(name=st.text(st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_whatever_the_name_the_mail_goes_to_the_rows_address_or_nowhere(name):
    template = MergeTemplate(
        "From: {{ name }} <{{ email }}>\nTo: {{ name }} <{{ email }}>\nCc: {{ first }} {{ name }} <{{ email }}>\n\nx\n"
    )
    try:
        rendered = template.render({"name": name, "first": name[::-1], "email": "bo@example.com"}, 1)
    except RowError:
        return
    assert rendered.sender == "bo@example.com" and rendered.recipients == ["bo@example.com", "bo@example.com"]
    sent = email.message_from_bytes(rendered.to_bytes(), policy=email.policy.default)
    for header in ("From", "To", "Cc"):
        assert [a.addr_spec for a in sent[header].addresses] == ["bo@example.com"], (header, sent[header])
