"""The MIME tree of an HTML message, read back with the standard library's parser, and through a real server."""

from __future__ import annotations

import email
import email.policy
import pathlib

import smtp_nb
from smtp_nb.html import build, inline_image, set_html_body

from .conftest import from_wire, parsed, shape

PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 64
HEADERS = {"From": "Ada <ada@example.com>", "To": "grace@example.com", "Subject": "Report"}


def _chart(tmp_path: pathlib.Path):
    (tmp_path / "chart.png").write_bytes(PNG)
    return inline_image("chart.png", base=tmp_path)


def test_html_with_images_and_attachments_is_mixed_alternative_related(tmp_path):
    chart = _chart(tmp_path)
    (tmp_path / "data.csv").write_text("region,sales\nNorth,1200\n")
    message = parsed(
        build(
            f'<p>Sales</p><img src="{chart.url}" alt="chart">',
            headers=HEADERS,
            images=[chart],
            attachments=[tmp_path / "data.csv", ("notes.pdf", b"%PDF-1.4")],
        )
    )
    assert shape(message) == (
        "multipart/mixed",
        [
            ("multipart/alternative", ["text/plain", ("multipart/related", ["text/html", "image/png"])]),
            "text/csv",
            "application/pdf",
        ],
    )
    alternative = message.get_payload()[0]
    related = alternative.get_payload()[1]
    assert related.get_param("type") == "text/html"
    html_part, image = related.get_payload()
    assert f'src="cid:{chart.cid}"' in html_part.get_content()
    assert image["Content-ID"] == f"<{chart.cid}>"
    assert image.get_content_disposition() == "inline" and image.get_content() == PNG
    attachments = [(p.get_filename(), p.get_payload(decode=True)) for p in message.iter_attachments()]
    assert attachments == [("data.csv", b"region,sales\nNorth,1200\n"), ("notes.pdf", b"%PDF-1.4")]
    assert message.get_body(("plain",)).get_content() == "Sales\n\n[chart]\n"
    assert message.get_body(("html",)) is html_part
    assert [p["MIME-Version"] for p in message.walk()][1:] == [None] * 7  # on the top only
    assert message["Subject"] == "Report" and message["MIME-Version"] == "1.0"


def test_without_images_or_attachments_only_the_levels_needed(tmp_path):
    assert shape(parsed(build("<p>x</p>"))) == ("multipart/alternative", ["text/plain", "text/html"])
    chart = _chart(tmp_path)
    assert shape(parsed(build(f'<img src="{chart.url}" alt="">', images=[chart]))) == (
        "multipart/alternative",
        ["text/plain", ("multipart/related", ["text/html", "image/png"])],
    )
    assert shape(parsed(build("<p>x</p>", attachments=[("a.txt", b"a")]))) == (
        "multipart/mixed",
        [("multipart/alternative", ["text/plain", "text/html"]), "text/plain"],
    )


def test_the_same_message_serializes_to_the_same_bytes(tmp_path):
    chart = _chart(tmp_path)
    one = build(f'<img src="{chart.url}" alt="c">', headers=HEADERS, images=[chart], attachments=[("a.txt", b"a")])
    two = build(f'<img src="{chart.url}" alt="c">', headers=HEADERS, images=[chart], attachments=[("a.txt", b"a")])
    other = build(f'<img src="{chart.url}" alt="d">', headers=HEADERS, images=[chart], attachments=[("a.txt", b"a")])
    assert one.as_bytes() == two.as_bytes()
    assert one.get_boundary() != other.get_boundary()


def test_set_html_body_replaces_the_body_of_a_message_with_headers():
    message = email.message.EmailMessage(policy=email.policy.default)
    message["Subject"] = "kept"
    message.set_content("an old body")
    set_html_body(message, "<p>new</p>")
    assert message["Subject"] == "kept"
    assert parsed(message).get_body(("plain",)).get_content() == "new\n"


def test_long_lines_and_non_ascii_survive_the_wire(server, tmp_path):
    chart = _chart(tmp_path)
    wide = "<table><tr>" + "".join(f"<td>Zürich {i}</td>" for i in range(300)) + "</tr></table>"
    message = build(f'{wide}<img src="{chart.url}" alt="chart">', headers=HEADERS, images=[chart])
    smtp = smtp_nb.SMTP(**server.client_options(), timeout=10)
    smtp.send_message_sync(message)
    assert all(len(line) <= 998 for line in server.messages[0].data.split(b"\r\n"))
    received = from_wire(server.messages[0].data)
    assert received.get_body(("html",)).get_content() == wide + f'<img src="cid:{chart.cid}" alt="chart">\n'
    assert shape(received) == shape(parsed(message))
    assert [p.get_content() for p in received.walk() if p.get_content_type() == "image/png"] == [PNG]
