"""The text/plain alternative of an HTML body: readable text, links kept as ``text (url)``.

Paragraphs and headings are separated by blank lines, list items start with ``- ``, table cells are joined
with `` | ``, ``<pre>`` keeps its lines, and ``<style>``, ``<script>`` and ``<head>`` contribute nothing.
"""

from __future__ import annotations

import html.parser
import re
from typing import ClassVar

__all__ = ["html_to_text"]

#: A paragraph break: a line of its own that becomes one blank line; text inside <pre> uses \x02 for
#: its spaces and \x00 for its line ends, so that the folding of whitespace leaves it alone.
_PARAGRAPH = "\n\x01\n"


class _Text(html.parser.HTMLParser):
    _SKIP: ClassVar[frozenset[str]] = frozenset({"style", "script", "head", "title", "template"})
    _PARAGRAPH: ClassVar[frozenset[str]] = frozenset(
        {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "pre", "blockquote", "hr"}
    )
    _LINE: ClassVar[frozenset[str]] = frozenset({"div", "tr", "li", "section", "article", "header", "footer", "dl"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip = 0
        self._pre = 0
        self._links: list[tuple[str, int]] = []  # href, position in out where the link's text starts
        self._first_cell = True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag in self._PARAGRAPH:
            self.out.append(_PARAGRAPH)
            self._pre += tag == "pre"
        elif tag in self._LINE:
            self.out.append("\n")
            self._first_cell = True
            if tag == "li":
                self.out.append("- ")
        elif tag == "br":
            self.out.append("\n")
        elif tag in ("td", "th"):
            if not self._first_cell:
                self.out.append(" | ")
            self._first_cell = False
        elif tag == "a":
            self._links.append((dict(attrs).get("href") or "", len(self.out)))
        elif tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt:
                self.out.append(f"[{alt}]")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "img", "hr"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self._PARAGRAPH:
            self.out.append(_PARAGRAPH)
            if tag == "pre":
                self._pre = max(0, self._pre - 1)
        elif tag in self._LINE:
            self.out.append("\n")
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            label = " ".join("".join(self.out[start:]).split())
            target = href.removeprefix("mailto:")
            if href and not href.startswith("#") and target != label:
                self.out.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre:
            self.out.append(data.replace(" ", "\x02").replace("\n", "\x00"))  # kept out of the folding below
        else:
            self.out.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines: list[str] = []
        for line in "".join(self.out).split("\n"):
            line = re.sub(" {2,}", " ", line).strip(" ")
            if line == _PARAGRAPH.strip("\n"):
                if lines and lines[-1]:
                    lines.append("")
            elif line:
                lines.append(line.replace("\x02", " ").replace("\x00", "\n"))
        return "\n".join(lines).strip("\n") + "\n"


def html_to_text(html: str) -> str:
    """Readable plain text of ``html``, for the text/plain part next to it; links become ``text (url)``."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    return parser.text()
