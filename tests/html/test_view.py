"""The message view: headers, the HTML in a locked-down iframe, the text part, the MIME tree, the raw source."""

from __future__ import annotations

import base64
import html
import html.parser
import pathlib
import re

import smtp_nb
from smtp_nb.html import build, check, inline_image, view

HEADERS = {
    "From": "Ada <ada@example.com>",
    "To": "grace@example.com",
    "Subject": "Weekly report",
    "Date": "Tue, 01 Dec 2026 09:00:00 +0000",
    "Message-ID": "<report-1@example.com>",
}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x02" * 16


class _Elements(html.parser.HTMLParser):
    """The elements of a page as a browser would build them, with the srcdoc of each iframe."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.frames: list[dict[str, str | None]] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "iframe":
            self.frames.append(dict(attrs))


def _message(tmp_path: pathlib.Path):
    (tmp_path / "chart.png").write_bytes(PNG)
    chart = inline_image("chart.png", base=tmp_path)
    body = f'<style>h1 {{ color: #204a87 }}</style><h1>Sales</h1><img src="{chart.url}" alt="chart">'
    return chart, build(body, headers=HEADERS, images=[chart], attachments=[("sales.csv", b"a,b\n1,2\n")])


def test_the_html_form_shows_headers_frame_text_tree_attachments_and_source(tmp_path):
    chart, message = _message(tmp_path)
    page = view(message).html()
    elements = _Elements(page)
    assert set(elements.tags) == {
        "div",
        "table",
        "tbody",
        "thead",
        "tr",
        "th",
        "td",
        "iframe",
        "details",
        "summary",
        "pre",
    }
    [frame] = elements.frames
    assert frame["sandbox"] == "" and frame["referrerpolicy"] == "no-referrer"
    document = frame["srcdoc"]
    assert document.startswith(
        '<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:;'
    )
    assert '<h1 style="color: #204a87;">Sales</h1>' in document
    assert f'<img src="data:image/png;base64,{base64.b64encode(PNG).decode()}" alt="chart">' in document
    assert "cid:" not in document
    assert page.count(">(the HTML part is shown in a frame, hidden until the notebook is trusted)</iframe>") == 1
    for shown in ("Weekly report", "Ada &lt;ada@example.com&gt;", "Tue, 01 Dec 2026 09:00:00 +0000"):
        assert shown in page
    assert "<summary>plain-text part</summary>" in page and "Sales\n\n[chart]\n</pre>" in page
    assert "      image/png  24 bytes, inline, chart.png, Content-ID &lt;" + chart.cid + "&gt;" in page
    assert '<td style="text-align:left">sales.csv</td><td style="text-align:left">text/csv</td>' in page
    assert re.search(r"<details><summary>raw source \([\d,]+ bytes\)</summary>", page)


def test_the_view_is_the_same_every_time(tmp_path):
    _, message = _message(tmp_path)
    assert view(message).html() == view(message.as_bytes()).html()
    assert view(message).text() == view(message.as_bytes()).text()


def test_remote_content_is_blocked_unless_asked_for(tmp_path):
    _, message = _message(tmp_path)
    blocked = view(message).document()
    allowed = view(message, remote=True).document()
    assert "img-src data:;" in blocked and "http:" not in blocked.split(">", 2)[1]
    assert "img-src data: http: https:;" in allowed
    assert "(remote content blocked)" in view(message).html()


def test_the_text_form_has_headers_the_plain_part_and_the_tree(tmp_path):
    _, message = _message(tmp_path)
    text = repr(view(message))
    assert text.startswith(
        "From: Ada <ada@example.com>\nTo: grace@example.com\nSubject: Weekly report\n"
        "Date: Tue, 01 Dec 2026 09:00:00 +0000\n\nSales\n\n[chart]\n\nMIME structure:\n  multipart/mixed  2 parts\n"
    )
    assert "\n        image/png  24 bytes, inline, chart.png" in text
    assert text.endswith("\nattachments:\n  file       type      size\n  sales.csv  text/csv  8 bytes")


def test_a_message_of_the_embedded_server_is_shown_from_its_bytes(server, tmp_path):
    _, message = _message(tmp_path)
    smtp_nb.SMTP(**server.client_options(), timeout=10).send_message_sync(message)
    [received] = server.messages
    shown = view(received)
    assert shown.raw == received.data.replace(b"\r\n", b"\n")
    assert shown.text() == view(message).text()
    assert view(received.message).html() == shown.html()  # the inbox's EmailMessage, parsed with its CRLFs
    assert "\ufffd" not in shown.text()


HOSTILE = (
    b'From: "<img src=x onerror=alert(1)>" <evil@example.com>\r\n'
    b"To: victim@example.com\r\n"
    b"Subject: </td></table><script>alert('subject')</script>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    b"<p>hi\x1b[2J</p></iframe><script>alert('body')</script><iframe src=\"https://evil.example\"></iframe>"
    b'<meta http-equiv="Content-Security-Policy" content="default-src *">\r\n'
    b"--b\r\n"
    b'Content-Type: text/plain; name="\\"><script>alert(2)</script>.txt"\r\n'
    b'Content-Disposition: attachment; filename="\\"><script>alert(3)</script></pre>.txt"\r\n\r\n'
    b"</pre></details><script>alert('attachment')</script>\r\n"
    b"--b--\r\n"
)


def test_a_hostile_message_cannot_add_elements_to_the_view():
    shown = view(HOSTILE)
    page = shown.html()
    elements = _Elements(page)
    assert "script" not in elements.tags and "img" not in elements.tags and "meta" not in elements.tags
    [frame] = elements.frames  # the message's own </iframe> and <iframe> stayed inside the srcdoc
    assert frame["sandbox"] == "" and "src" not in frame
    document = frame["srcdoc"]
    assert document.startswith(
        '<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="default-src \'none\';'
    )
    assert "</iframe><script>alert('body')</script>" in document  # inert text of the sandboxed, script-less frame
    assert "&lt;/td&gt;&lt;/table&gt;&lt;script&gt;alert(&#x27;subject&#x27;)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(3)&lt;/script&gt;&lt;/pre&gt;.txt" in page
    assert "\x1b" not in shown.text() and "\ufffd[2J" in shown.text()  # no terminal escape sequences
    assert html.unescape(page).count("alert(") >= 4  # all there, as text


def test_a_message_without_html_or_with_an_unknown_charset_still_shows():
    plain = b"Subject: plain\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\ncaf\xe9\r\n"
    shown = view(plain)
    assert shown.document() is None
    assert "caf\ufffd" in shown.text()
    assert "iframe" not in shown.html()


def test_a_preview_shows_the_checks_warnings_first(tmp_path):
    _, message = _message(tmp_path)
    del message["Message-ID"]
    found = check(message, size_limit=100)
    preview = view(message, warnings=found)
    assert found.codes() == ["too-large", "missing-message-id"]
    assert preview.text().startswith(repr(found) + "\n\nFrom: Ada <ada@example.com>\n")
    assert preview.html().startswith('<div class="smtp-nb-message">' + found._repr_html_() + "<table")
    assert "check:" not in view(message).text()
