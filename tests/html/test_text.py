"""The text/plain alternative of an HTML body: readable, with links kept as ``text (url)``."""

from __future__ import annotations

from smtp_nb.html import build, html_to_text

from .conftest import parsed


def test_links_keep_their_address_after_the_text():
    text = html_to_text('<p>Read <a href="https://example.com/r?id=1&amp;x=2">the report</a> today.</p>')
    assert text == "Read the report (https://example.com/r?id=1&x=2) today.\n"


def test_a_link_whose_text_is_its_address_is_written_once():
    assert html_to_text('<a href="https://example.com">https://example.com</a>') == "https://example.com\n"
    assert html_to_text('<a href="mailto:ada@example.com">ada@example.com</a>') == "ada@example.com\n"
    assert html_to_text('<a href="#top">top</a>') == "top\n"


def test_paragraphs_lists_tables_and_pre_read_as_text():
    body = """<html><head><title>not shown</title><style>p { color: red }</style></head><body>
    <h1>Weekly   report</h1><p>Hello <b>Ada</b>,<br>here it is.</p>
    <table><tr><th>region</th><th>sales</th></tr>
           <tr><td>North</td><td>1,200</td></tr></table>
    <ul><li>one</li><li>two</li></ul>
    <pre>a  b
  c</pre><img src="cid:x" alt="chart of sales"><script>alert(1)</script></body></html>"""
    assert html_to_text(body) == (
        "Weekly report\n\nHello Ada,\nhere it is.\n\nregion | sales\nNorth | 1,200\n\n- one\n- two\n\n"
        "a  b\n  c\n\n[chart of sales]\n"
    )


def test_build_writes_the_text_part_from_the_html_unless_given():
    body = '<p>See <a href="https://example.com">our site</a>.</p>'
    assert parsed(build(body)).get_body(("plain",)).get_content() == "See our site (https://example.com).\n"
    assert parsed(build(body, text="Hand-written.\n")).get_body(("plain",)).get_content() == "Hand-written.\n"
