"""CSS from ``<style>`` blocks moved into ``style`` attributes, because Gmail and Outlook drop or rewrite ``<style>``.

css-inline (the optional extra ``html``) does the work; media queries and other at-rules stay in a ``<style>``
block, ``<link>`` stylesheets are kept as written (never fetched) so that ``check()`` can warn about them.
"""

from __future__ import annotations

from typing import Any

from .errors import HTMLMailError

__all__ = ["inline_css"]

_inliner: Any = None


def _get_inliner() -> Any:
    global _inliner
    if _inliner is None:
        try:
            import css_inline
        except ImportError:
            raise HTMLMailError(
                "inlining CSS needs css-inline: pip install 'smtp_nb[html]' (or pass inline_css=False / "
                "--no-inline-css to send the HTML as written)"
            ) from None
        _inliner = css_inline.CSSInliner(keep_at_rules=True, keep_link_tags=True, load_remote_stylesheets=False)
    return _inliner


def inline_css(html: str) -> str:
    """``html`` with its ``<style>`` rules in ``style`` attributes; unchanged when it has no ``<style>`` block.

    Rules that cannot be inlined (``@media``, ``@font-face``) stay in a ``<style>`` block; selectors with
    pseudo-classes such as ``:hover`` are dropped, as mail programs ignore them. Raises ``HTMLMailError``
    when css-inline is not installed or the HTML cannot be read.
    """
    if "<style" not in html.lower():
        return html
    inliner = _get_inliner()
    try:
        return str(inliner.inline(html))
    except ValueError as exc:  # css_inline.InlineError derives from ValueError
        raise HTMLMailError(f"cannot inline the CSS of this HTML: {exc}") from None
