"""Merge templates: rendering, header safety, and errors that name the row and the column."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_nb.mailmerge import MergeTemplate, RowError, TemplateError
from smtp_nb.mailmerge.template import _structure, _walked_structure

TEMPLATE = """From: Ada <ada@example.com>
To: {{ email | mailbox(name) }}
Subject: Grade for {{ name }}: {{ grade }}

Dear {{ name }},
your grade is {{ grade }}. Literal braces stay: {x} and {{ '{{' }}.
"""


def render(row, template=TEMPLATE, **options):
    """The message as it will be sent, parsed back by the standard library."""
    return MergeTemplate(template, **options).render(row, 4).to_message()


def envelope(message):
    sender = message["From"].addresses[0].addr_spec
    recipients = [a.addr_spec for name in ("To", "Cc", "Bcc") for v in message.get_all(name, []) for a in v.addresses]
    return sender, recipients


def test_renders_headers_and_body():
    message = render({"name": "Zoë Müller", "email": "zoe@example.com", "grade": "A"})
    assert message["Subject"] == "Grade for Zoë Müller: A"
    assert message["To"].addresses[0].display_name == "Zoë Müller"
    assert message.get_content() == "Dear Zoë Müller,\nyour grade is A. Literal braces stay: {x} and {{.\n"
    assert envelope(message) == ("ada@example.com", ["zoe@example.com"])
    flat = (
        MergeTemplate(TEMPLATE).render({"name": "Zoë Müller", "email": "zoe@example.com", "grade": "A"}, 1).to_bytes()
    )
    head = flat.split(b"\r\n\r\n")[0]
    assert b"=?utf-8?" in head and head.isascii()  # the non-ASCII name is encoded in the headers


def test_long_subject_is_folded():
    head = MergeTemplate(TEMPLATE).render({"name": "Wolfgang Amadeus " * 12, "email": "n@example.com", "grade": "B"}, 1)
    head = head.to_bytes().split(b"\r\n\r\n")[0]
    subject = head[head.index(b"Subject:") :].split(b"\r\nContent-Type")[0]
    assert subject.count(b"\r\n ") >= 2 and all(len(line) <= 78 for line in subject.split(b"\r\n"))


@pytest.mark.parametrize(
    ("row", "column", "text"),
    [
        ({"name": "Bo", "email": "bo@example.com"}, "grade", "no such column"),
        ({"name": "Bo", "email": "bo@example.com", "grade": None}, "grade", "is empty"),
        ({"name": "Bo", "email": "bo@example.com", "grade": float("nan")}, "grade", "is empty"),
        ({"name": "Bo\r\nBcc: evil@example.com", "email": "bo@example.com", "grade": "A"}, "name", "line break"),
        ({"name": "Bo", "email": "bo@example.com\nBcc: evil@example.com", "grade": "A"}, "email", "line break"),
        (
            {"name": "Bo", "email": "bo@example.com, evil@example.com", "grade": "A"},
            "email",
            "is not a valid email address",
        ),
        (
            {"name": "Bo", "email": "not-an-address", "grade": "A"},
            "email",
            "'not-an-address' is not a valid email address",
        ),
        ({"name": "Bo", "email": "  ", "grade": "A"}, "email", "is empty"),
    ],
)
def test_row_problems_name_row_and_column(row, column, text):
    with pytest.raises(RowError) as info:
        render(row)
    (problem,) = [p for p in info.value.problems if p.column == column]
    assert problem.row == 4 and text in problem.problem


def test_a_row_cannot_add_headers_or_recipients():
    template = "From: a@example.com\nTo: {{ email }}\nSubject: {{ subject }}\n\nx"
    with pytest.raises(RowError, match="line break"):
        render({"email": "b@example.com", "subject": "hi\nBcc: attacker@example.com"}, template)
    with pytest.raises(RowError, match="the To header would hold 2 address"):
        render({"email": "b@example.com; attacker@example.com", "subject": "hi"}, template)
    several = render(
        {"email": ["b@example.com", "c@example.com"], "subject": "hi"},
        template.replace("{{ email }}", "{{ email | join(', ') }}"),
    )
    assert envelope(several)[1] == ["b@example.com", "c@example.com"]


def test_one_template_checks_each_row_whatever_the_rows_before_it():
    """The template's own structure is worked out once per kind of row: a later row cannot ride on an earlier one."""
    template = MergeTemplate(
        "From: Office <office@example.com>\n"
        "To: {% if n > 1 %}{{ a }}, {{ b }}{% else %}{{ a }}{% endif %}\nSubject: {{ n }}\n\nx"
    )
    ok = [{"n": 1, "a": "a@example.com", "b": "b@example.com"}, {"n": 2, "a": "a@example.com", "b": "b@example.com"}]
    for number, row in enumerate(ok * 3, 1):
        assert len(template.render(row, number).recipients) == row["n"]
    for smuggled in (
        {"n": 1, "a": "a@example.com, evil@example.com", "b": ""},
        {"n": 2, "a": "x@example.com, evil@example.com", "b": "b@example.com"},
    ):
        with pytest.raises(RowError, match="the To header would hold"):
            template.render({**smuggled, "b": smuggled["b"] or "b@example.com"}, 9)
    assert len(template.render(ok[1], 10).recipients) == 2


def test_a_header_may_depend_on_a_columns_value():
    """``{% if grade == "F" %}`` decides as the row would; what the header prints still cannot add recipients."""
    template = MergeTemplate(
        "From: office@example.com\nTo: {{ email }}\n"
        'Cc: {% if grade == "F" %}dean@example.com{% endif %}'
        '{{ ", " + tutor if tutor else "" }}\n\nx'
    )
    cases = [
        ("A", "", []),
        ("F", "", ["dean@example.com"]),
        ("F", "t@example.com", ["dean@example.com", "t@example.com"]),
    ]
    for number, (grade, tutor, cc) in enumerate(cases * 2, 1):
        rendered = template.render({"email": "s@example.com", "grade": grade, "tutor": tutor}, number)
        assert rendered.recipients == ["s@example.com", *cc]
    with pytest.raises(RowError, match="cannot add, remove or replace recipients"):
        template.render({"email": "s@example.com", "grade": "F", "tutor": "t@example.com, evil@example.com"}, 9)
    with pytest.raises(RowError, match="cannot add, remove or replace recipients"):
        MergeTemplate('From: a@example.com\nTo: {% if email != "x" %}{{ email }}{% endif %}\n\nx').render(
            {"email": "s@example.com, evil@example.com"}, 1
        )


def test_a_constant_header_that_is_wrong_is_every_rows_problem():
    template = MergeTemplate("From: office(at)example\nTo: {{ email }}\n\nx")
    for number in (1, 2):
        with pytest.raises(RowError, match="From"):
            template.render({"email": "b@example.com"}, number)


def test_display_name_with_comma_needs_quoting():
    template = "From: a@example.com\nTo: {{ name }} <{{ email }}>\n\nx"
    with pytest.raises(RowError, match=r"mailbox\(name\)"):
        render({"name": "Doe, John", "email": "j@example.com"}, template)
    quoted = render(
        {"name": "Doe, John", "email": "j@example.com"},
        template.replace("{{ name }} <{{ email }}>", "{{ email | mailbox(name) }}"),
    )
    assert envelope(quoted)[1] == ["j@example.com"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("From: a@example.com\nTo: {{ email }}\nSubject: {{ oops }\n\nbody", "line 3: unexpected '}'"),
        (
            "From: a@example.com\nTo: {{ email }}\n\nline 4\n{% if x %}never closed",
            "line 5: Unexpected end of template",
        ),
        ("From: a@example.com\nTo b@example.com\n\nx", "line 2 is not a header ('To b@example.com')"),
        ("From: a@example.com\nTo: b@example.com", "no blank line"),
        ("From: a@example.com\nSubject: x\n\nbody", "no To, Cc or Bcc"),
        ("To: b@example.com\n\nbody", "no From header"),
    ],
)
def test_template_errors_say_where(template, message):
    with pytest.raises(TemplateError, match=message.replace("(", r"\(").replace(")", r"\)")):
        MergeTemplate(template)


def test_html_alternative_escapes_fields():
    html = "<p>Dear {{ name }}</p>"
    message = render({"name": "<script>x</script>", "email": "a@example.com", "grade": "A"}, html=html)
    assert message.get_body(("html",)).get_content() == "<p>Dear &lt;script&gt;x&lt;/script&gt;</p>\n"
    assert "<script>" in message.get_body(("plain",)).get_content()


def test_markdown_body_becomes_the_html_part():
    template = "From: a@example.com\nTo: {{ email }}\n\n# Hello {{ name }}\n\n* one\n* two\n"
    message = render({"name": "<b>Bo</b>", "email": "a@example.com"}, template, markdown=True)
    html = message.get_body(("html",)).get_content()
    assert "<h1>Hello &lt;b&gt;Bo&lt;/b&gt;</h1>" in html and "<li>one</li>" in html
    assert message.get_body(("plain",)).get_content().startswith("# Hello <b>Bo</b>")


def test_attachments_from_a_column(tmp_path):
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.4 first")
    (tmp_path / "b.csv").write_text("x,y\n1,2\n")
    template = "From: a@example.com\nTo: {{ email }}\n\nsee attached"
    row = {"email": "a@example.com", "files": "a.pdf; b.csv"}
    message = render(row, template, attachments="files", attachments_root=tmp_path)
    parts = {p.get_filename(): p for p in message.iter_attachments()}
    assert set(parts) == {"a.pdf", "b.csv"}
    assert parts["a.pdf"].get_content_type() == "application/pdf"
    assert parts["a.pdf"].get_content() == b"%PDF-1.4 first"
    listed = render(
        {"email": "a@example.com", "files": ["b.csv"]}, template, attachments="files", attachments_root=tmp_path
    )
    assert [p.get_filename() for p in listed.iter_attachments()] == ["b.csv"]
    with pytest.raises(RowError, match="does not exist"):
        render(
            {"email": "a@example.com", "files": "missing.pdf"}, template, attachments="files", attachments_root=tmp_path
        )


def test_fingerprint_follows_template_and_attachments():
    base = MergeTemplate(TEMPLATE).fingerprint
    assert MergeTemplate(TEMPLATE).fingerprint == base
    assert MergeTemplate(TEMPLATE.replace("Dear", "Hello")).fingerprint != base
    assert MergeTemplate(TEMPLATE, attachments="files").fingerprint != base
    assert MergeTemplate(TEMPLATE, html="<p>x</p>").fingerprint != base


# -- HTML templates: CSS inlined, inline images -------------------------------------------

HTML_TEXT = "From: a@example.com\nTo: {{ email }}\nSubject: s\n\nHello {{ name }}\n"
STYLED = "<style>p { color: red } @media (max-width: 600px) { p { color: blue } }</style><p>Hi {{ name }}</p>"


def test_html_template_css_is_inlined_and_media_queries_stay():
    rendered = MergeTemplate(HTML_TEXT, html=STYLED).render({"email": "b@example.com", "name": "Bo"}, 1)
    assert '<p style="color: red;">Hi Bo</p>' in rendered.html
    assert "@media (max-width: 600px)" in rendered.html


def test_an_html_merge_with_no_text_written_sends_the_html_as_readable_text():
    # Found by a review: an empty body sent an empty text/plain part, and the check said nothing.
    template = MergeTemplate(
        "From: a@example.com\nTo: {{ email }}\nSubject: s\n\n",
        html='<p>Hi {{ name }}, see <a href="https://example.com/r">the report</a>.</p>',
    )
    message = template.render({"email": "b@example.com", "name": "Bo"}, 1).to_message()
    plain = message.get_body(("plain",)).get_content()
    assert plain.strip() == "Hi Bo, see the report (https://example.com/r)."
    assert message.get_body(("html",)) is not None


def test_inline_css_false_keeps_the_style_block_as_written():
    rendered = MergeTemplate(HTML_TEXT, html=STYLED, inline_css=False).render({"email": "b@x.example", "name": "Bo"}, 1)
    assert "<style>p { color: red }" in rendered.html and "<p>Hi Bo</p>" in rendered.html


def test_a_row_value_cannot_open_a_style_block():
    row = {"email": "b@example.com", "name": "</p><style>p{background:url(https://t.example/)}</style>"}
    rendered = MergeTemplate(HTML_TEXT, html=STYLED).render(row, 1)
    assert rendered.html.count("<style>") == 1 and "url(" not in rendered.html.split("</style>")[0]


def test_inline_image_in_an_html_template_is_a_related_part(tmp_path):
    import email

    from tests.html.conftest import shape

    (tmp_path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    template = MergeTemplate(
        HTML_TEXT, html='<img alt="logo" src="{{ \'logo.png\' | inline_image }}">', attachments_root=tmp_path
    )
    rendered = template.render({"email": "b@example.com", "name": "Bo"}, 1)
    message = email.message_from_bytes(rendered.to_bytes().replace(b"\r\n", b"\n"), policy=email.policy.default)
    assert shape(message) == (
        "multipart/alternative",
        ["text/plain", ("multipart/related", ["text/html", "image/png"])],
    )
    image = message.get_payload(1).get_payload(1)
    assert f'src="cid:{image["Content-ID"].strip("<>")}"' in message.get_body(("html",)).get_content()
    assert image.get_payload(decode=True) == b"\x89PNG\r\n\x1a\nfake"


def test_inline_image_outside_the_attachments_root_is_the_rows_problem(tmp_path):
    template = MergeTemplate(HTML_TEXT, html='<img alt="x" src="{{ path | inline_image }}">', attachments_root=tmp_path)
    with pytest.raises(RowError) as raised:
        template.render({"email": "b@example.com", "name": "Bo", "path": "../../etc/passwd"}, 4)
    (problem,) = raised.value.problems
    assert problem.row == 4 and "'..' is not allowed" in problem.problem


@settings(max_examples=400, deadline=None)
@given(st.text(st.sampled_from(list('ab @.<>"\\(),;:[] \t\u00a0\u2028é')), max_size=30))
def test_the_quick_structure_of_one_plain_mailbox_is_the_walked_one(value):
    """The merge's structure check takes a shortcut for "Name <a@x>" and "a@x": the same answer as the walk."""
    assert _structure(value) == _walked_structure(value)
    for plain in ("Ada <a@x>", " a@x ", "<a@x>", "", "Ada Lovelace"):
        assert _structure(plain) == _walked_structure(plain)
