"""The check before sending: one warning per problem, each with what to do, and none for a clean message."""

from __future__ import annotations

import email.utils

import pytest

from smtp_nb.html import GMAIL_CLIP_BYTES, CheckWarning, Warnings, build, check, inline_image

HEADERS = {
    "From": "ada@example.com",
    "To": "grace@example.com",
    "Subject": "Report",
    "Date": "Tue, 01 Dec 2026 09:00:00 +0000",
    "Message-ID": "<report-1@example.com>",
}
CLEAN = '<p>Sales are up. <a href="https://example.com/r">Details</a></p>'


def test_a_clean_message_has_no_warnings():
    found = check(build(CLEAN, headers=HEADERS))
    assert found == [] and isinstance(found, Warnings)
    assert repr(found) == "check: no warnings"


@pytest.mark.parametrize(
    ("html", "code", "advice"),
    [
        ("<p>hi</p><script>track()</script>", "script", "remove the scripts"),
        ('<form action="https://example.com"><input name="q"></form>', "form", "link to a form"),
        ('<link rel="stylesheet" href="https://example.com/s.css"><p>x</p>', "external-stylesheet", "<style> block"),
        ("<style>@import url(https://example.com/s.css);</style><p>x</p>", "external-stylesheet", "<style> block"),
        ('<img src="data:image/gif;base64,R0lGOD">', "image-without-alt", 'add alt="'),
        ('<img src="https://example.com/pixel.gif" alt="">', "remote-image", "inline_image()"),
        ('<td background="http://example.com/bg.png">x</td>', "remote-image", "inline_image()"),
        ("<div style=\"background: url('//example.com/bg.png')\">x</div>", "remote-image", "inline_image()"),
        # Found by a review: pixels in srcset, a video's poster, a <picture> source and SVG went unflagged.
        ('<img srcset="a.png 1x, https://t.example/a.png 2x" alt="a">', "remote-image", "inline_image()"),
        ('<video poster="https://t.example/p.png"></video>', "remote-image", "inline_image()"),
        ('<picture><source srcset="https://t.example/s.png"><img alt="b"></picture>', "remote-image", "inline_image"),
        ('<svg><image href="//t.example/s.png"/></svg>', "remote-image", "inline_image()"),
        ('<a href="http://example.com/r">report</a>', "insecure-link", "https:"),
        ('<img src="cid:nowhere@example.com" alt="x">', "missing-inline-image", "inline_image()"),
    ],
)
def test_each_problem_in_the_html_gives_its_warning(html, code, advice):
    found = check(build(html, headers=HEADERS, inline_css=False))
    assert found.codes() == [code]
    assert advice in found[0].advice
    assert f"  {code}: " in repr(found) and f"what to do: {found[0].advice}" in repr(found)


def test_html_over_102_kb_is_clipped_by_gmail():
    rows = "<tr><td>row</td></tr>" * (GMAIL_CLIP_BYTES // 20)
    assert check(build(f"<table>{rows}</table>", headers=HEADERS)).codes() == ["html-clipped"]
    small = "<tr><td>row</td></tr>" * (GMAIL_CLIP_BYTES // 40)
    assert check(build(f"<table>{small}</table>", headers=HEADERS)).codes() == []


def test_a_message_over_the_servers_size_is_flagged_with_both_sizes():
    message = build(CLEAN, headers=HEADERS, attachments=[("big.bin", b"x" * 5000)])
    [warning] = check(message, size_limit=4000)
    size = len(message.as_bytes(policy=email.policy.SMTP))
    assert warning.code == "too-large"
    assert f"{size:,} bytes" in warning.message and "4,000 bytes" in warning.message
    assert check(message, size_limit=size) == [] and check(message) == []


def test_an_html_only_message_lacks_a_plain_text_part():
    message = email.message.EmailMessage()
    for name, value in HEADERS.items():
        message[name] = value
    message.set_content(CLEAN, subtype="html")
    [warning] = check(message)
    assert warning == CheckWarning(
        "no-plain-text",
        "the message has no text/plain part; some readers and spam filters need one",
        "add one: smtp_nb.html.build() makes it from the HTML",
    )


def test_missing_date_and_message_id_are_reported_from_bytes_too():
    headers = {k: v for k, v in HEADERS.items() if k not in ("Date", "Message-ID")}
    data = build(CLEAN, headers=headers).as_bytes()
    assert check(data).codes() == ["missing-date", "missing-message-id"]
    assert "email.utils.formatdate" in check(data)[0].advice


def test_inline_images_satisfy_their_cid_references(tmp_path):
    (tmp_path / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    chart = inline_image("c.png", base=tmp_path)
    assert check(build(f'<img src="{chart.url}" alt="c">', headers=HEADERS, images=[chart])) == []


def test_the_html_form_is_a_table_with_the_advice_escaped():
    found = check(build("<script>x</script><form></form>", headers={}, inline_css=False))
    page = found._repr_html_()
    assert page.startswith("<div>check: 4 warnings</div><table")
    assert '<th style="text-align:left">what to do</th>' in page
    assert "&lt;script&gt; element" in page and "<script>" not in page


def test_an_empty_plain_text_part_beside_html_is_flagged():
    message = email.message.EmailMessage()
    for name, value in HEADERS.items():
        message[name] = value
    message.set_content("\n")
    message.add_alternative(CLEAN, subtype="html")
    assert check(message).codes() == ["empty-plain-text"]
