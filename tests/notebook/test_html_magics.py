"""HTML mail through the magics: `%%smtp_send --html` (CSS, inline images), `--dry-run` checks, `%smtp_inbox N`."""

from __future__ import annotations

import struct
import zlib

import pytest
from IPython.core.error import UsageError

from smtp_nb.html import MessageView
from smtp_nb.notebook.errors import MessageError
from smtp_nb.notebook.views import Help, SendResult
from smtp_nb.server import LocalServer
from tests.html.conftest import shape
from tests.notebook.conftest import run

HEAD = "%%smtp_send --html --to grace@example.com --from ada@example.com"
STYLED = '<style>p { color: red }</style><p>Hi, see <a href="https://example.com/r">the report</a></p>'


def png() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0\0\0\0")) + chunk(b"IEND", b"")
    )


def test_html_is_sent_with_its_css_inlined_and_a_text_part_with_links(ip, server):
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    run(ip, f"{HEAD}\nSubject: s\n\n{STYLED}")
    message = server.messages[0].message
    html = message.get_body(("html",)).get_content()
    assert "<style" not in html and '<p style="color: red;">' in html
    assert "the report (https://example.com/r)" in message.get_body(("plain",)).get_content()


def test_no_inline_css_keeps_the_html_as_written(ip, server):
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    run(ip, f"{HEAD} --no-inline-css\nSubject: s\n\n{STYLED}")
    html = server.messages[0].message.get_body(("html",)).get_content()
    assert "<style>p { color: red }</style>" in html and 'style="color' not in html


def test_inline_image_of_a_file_and_of_a_figure_make_one_related_part_each(ip, server, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    (tmp_path / "chart.png").write_bytes(png())
    (tmp_path / "notes.txt").write_text("attached\n")
    figure, axes = plt.subplots()
    axes.plot([1, 2, 3])
    ip.user_ns["fig"] = figure
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    body = '<img alt="a" src="{{ "chart.png" | inline_image }}"><img alt="b" src="{{ fig | inline_image }}">'
    run(ip, f"{HEAD} --attach notes.txt\nSubject: s\n\n{body}")
    plt.close(figure)
    message = server.messages[0].message
    assert shape(message) == (
        "multipart/mixed",
        [
            ("multipart/alternative", ["text/plain", ("multipart/related", ["text/html", "image/png", "image/png"])]),
            "text/plain",
        ],
    )
    related = message.get_payload(0).get_payload(1)
    assert related.get_param("type") == "text/html"
    html = message.get_body(("html",)).get_content()
    for image in related.get_payload()[1:]:
        assert f'src="cid:{image["Content-ID"].strip("<>")}"' in html
    assert related.get_payload(1).get_payload(decode=True) == png()


def test_an_image_outside_the_folder_is_one_line_and_nothing_is_sent(ip, server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    with pytest.raises(MessageError) as raised:
        ip.run_cell(f'{HEAD}\nSubject: s\n\n<img src="{{{{ "../x.png" | inline_image }}}}">')
    assert "'..' is not allowed" in str(raised.value) and "nothing was sent" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert server.messages == []


def test_inline_image_needs_html(ip):
    with pytest.raises(MessageError, match="inline_image needs an HTML body: add --html"):
        ip.run_cell('%%smtp_send --dry-run --to b@example.com --from a@example.com\n\n{{ "x.png" | inline_image }}')


def test_dry_run_warnings_include_the_servers_size_when_connected(ip):
    with LocalServer(data_size_limit=2000) as small:
        run(ip, f"%smtp_connect 127.0.0.1:{small.port}")
        body = '<p><img src="http://tracker.example/p.gif">' + "x" * 3000 + "</p>"
        result, _ = run(ip, f"{HEAD} --dry-run\nSubject: s\n\n{body}")
        run(ip, "%smtp_quit")
    assert isinstance(result, SendResult) and result.dry_run and small.messages == []
    assert {"remote-image", "image-without-alt", "too-large"} <= set(result.warnings.codes())
    assert isinstance(result.view, MessageView)
    html = result._repr_html_()
    assert "remote-image" in html and "<iframe sandbox" in html and "img-src data:;" in html
    text = repr(result)
    assert "too-large" in text and "MIME structure:" in text


def test_dry_run_without_a_connection_knows_no_size(ip):
    result, _ = run(ip, f"{HEAD} --dry-run\nSubject: s\n\n" + "<p>" + "x" * 50_000 + "</p>")
    assert "too-large" not in result.warnings.codes()


def test_inbox_n_shows_the_message_as_the_recipient_sees_it(ip):
    run(ip, "%smtp_server")
    run(ip, "%smtp_connect")
    run(ip, f'{HEAD}\nSubject: view me\n\n<p>Hello <img alt="t" src="https://example.com/t.png"></p>')
    shown, _ = run(ip, "%smtp_inbox 0")
    assert isinstance(shown, MessageView) and not shown.remote
    assert "Subject: view me" in repr(shown) and "multipart/alternative" in repr(shown)
    assert "img-src data:;" in shown._repr_html_()
    remote, _ = run(ip, "%smtp_inbox 0 --remote")
    assert remote.remote and "img-src data: http: https:" in remote._repr_html_()
    inbox, _ = run(ip, "%smtp_inbox")
    assert inbox.view(0).text() == shown.text()
    last, _ = run(ip, "%smtp_inbox -1")  # the last, as in Python
    assert last.text() == shown.text()
    for number in ("1", "-2"):
        with pytest.raises(UsageError, match=f"there is no message {number}: the inbox holds messages 0 to 0 "):
            ip.run_cell(f"%smtp_inbox {number}")
    with pytest.raises(UsageError, match="--remote goes with a message number"):
        ip.run_cell("%smtp_inbox --remote")


def test_merge_help_returns_the_help_view(ip):
    result, _ = run(ip, "%%smtp_merge --help")
    assert isinstance(result, Help) and "--attachments-root" in repr(result)


def test_merge_preview_shows_each_message_in_the_view_with_the_checks_warnings(ip, tmp_path):
    ip.user_ns["rows"] = [{"email": "b@example.com", "name": "Bo"}]
    ip.user_ns["page"] = '<style>p { color: red }</style><p>Hi {{ name }} <img src="https://t.example/p.gif"></p>'
    template = "From: a@example.com\nTo: {{ email }}\nSubject: s\n\nHi {{ name }}\n"
    journal = tmp_path / "j.sqlite"
    preview, _ = run(ip, f"%%smtp_merge rows --html-template page --journal {journal}\n{template}")
    html = preview._repr_html_()
    assert "img-src data:;" in html and "remote-image" in html and "image-without-alt" in html
    assert "&lt;p style=&quot;color: red;&quot;&gt;Hi Bo" in html  # inside the iframe's srcdoc
    assert "remote-image" in repr(preview) and "MIME structure:" in repr(preview)
    kept, _ = run(ip, f"%%smtp_merge rows --html-template page --no-inline-css --journal {journal}\n{template}")
    assert "&lt;style&gt;p { color: red }" in kept._repr_html_()


def test_merge_preview_does_not_warn_about_the_headers_the_merge_adds_when_sending(tmp_path):
    from smtp_nb.mailmerge import MergeOptions, merge_sync

    template = "From: a@example.com\nTo: {{ email }}\nSubject: s\n\nHi\n"
    preview = merge_sync(template, [{"email": "b@example.com"}], options=MergeOptions(journal=tmp_path / "j.sqlite"))
    ((_, _, message, _),) = preview.messages
    assert message["Date"] is None and message["Message-ID"] is None
    assert repr(preview.view(message).warnings) == "check: no warnings"
