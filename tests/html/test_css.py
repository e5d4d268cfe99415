"""CSS inlining: <style> rules into style attributes, media queries kept, the HTML as written on request."""

from __future__ import annotations

import sys

import pytest

from smtp_nb.html import HTMLMailError, build, css, inline_css

from .conftest import parsed

REPORT = """<!DOCTYPE html>
<html><head><style>
td.total { font-weight: bold; color: #204a87 }
p { margin: 0 }
@media (max-width: 600px) { td { display: block } }
</style></head>
<body><p>Totals</p><table><tr><td class="total" style="padding: 4px">42</td></tr></table></body></html>
"""


def test_style_rules_become_style_attributes_and_media_queries_stay():
    out = inline_css(REPORT)
    assert 'style="font-weight: bold;color: #204a87;padding: 4px"' in out
    assert '<p style="margin: 0;">' in out
    assert out.count("<style>") == 1
    assert "@media (max-width: 600px)" in out
    assert "td.total" not in out  # the inlined rule itself is gone from the style block


def test_html_without_a_style_block_is_left_exactly_as_written():
    fragment = "<p>Hi <b>there</b></p>"
    assert inline_css(fragment) is fragment


def test_external_stylesheets_are_kept_and_never_fetched():
    page = '<html><head><link rel="stylesheet" href="http://127.0.0.1:9/x.css"><style>p{color:red}</style></head>'
    out = inline_css(page + "<body><p>x</p></body></html>")
    assert '<link rel="stylesheet" href="http://127.0.0.1:9/x.css">' in out  # check() warns about it
    assert '<p style="color: red;">' in out


def test_build_inlines_by_default_and_keeps_the_html_as_written_when_asked():
    inlined = parsed(build(REPORT)).get_body(("html",)).get_content()
    kept = parsed(build(REPORT, inline_css=False)).get_body(("html",)).get_content()
    assert 'style="font-weight: bold;color: #204a87;padding: 4px"' in inlined
    assert kept == REPORT


def test_without_css_inline_inlining_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "css_inline", None)  # what an interpreter without the package does
    monkeypatch.setattr(css, "_inliner", None)
    with pytest.raises(HTMLMailError, match=r"pip install 'smtp_nb\[html\]'.*inline_css=False"):
        build(REPORT)
    assert "<style>" in parsed(build(REPORT, inline_css=False)).get_body(("html",)).get_content()
    assert inline_css("<p>no style block, nothing to inline</p>") == "<p>no style block, nothing to inline</p>"
