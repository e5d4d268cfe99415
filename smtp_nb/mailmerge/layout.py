"""The "headers, an empty line, the body" format of ``%%smtp_send`` cells and merge templates, parsed in one place.

One set of header rules (names, folding, the MIME headers smtp_nb writes) and one injection defence (a
rendered header value holds no line end or control character) serve both the notebook and the merge.
"""

from __future__ import annotations

import dataclasses
import re

from .errors import TemplateError

__all__ = ["MIME_HEADERS", "Layout", "header_breaker", "parse_layout"]

#: RFC 5322 field name: printable ASCII except the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+")
#: Headers that describe the body: smtp_nb writes them (from the HTML part and the attachments).
MIME_HEADERS = frozenset({"mime-version", "content-type", "content-transfer-encoding", "content-disposition"})
#: Characters str.splitlines() ends a line at: the email package (and other readers) would start
#: a new header there when they write the message out again.
_LINE_ENDS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
#: Refused in a header value: those line ends and every other control character but TAB.
_HEADER_BREAKER = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


@dataclasses.dataclass
class Layout:
    """Header templates (name, value, line number), the body template and the line it starts on."""

    headers: list[tuple[str, str, int]]
    body: str
    body_line: int


def header_breaker(value: str) -> str | None:
    """What in ``value`` could start a new header ("a line break", "the control character '\\x07'"), or None."""
    bad = _HEADER_BREAKER.search(value)
    if bad is None:
        return None
    return "a line break" if bad.group() in _LINE_ENDS else f"the control character {bad.group()!r}"


def parse_layout(text: str, *, need_blank_line: bool) -> Layout:
    """Split ``text`` into headers (continuation lines joined) and body; ``TemplateError`` says which line is wrong.

    An empty first line means no headers. Without an empty line the text is
    all headers: an error if ``need_blank_line`` (a merge template), else an
    empty body (a ``%%smtp_send`` cell of headers alone).
    """
    lines = text.replace("\r\n", "\n").split("\n")
    headers: list[tuple[str, str, int]] = []
    index = 0
    while True:
        if index == len(lines):
            if need_blank_line:
                raise TemplateError("the template needs headers, a blank line, then the body (no blank line found)")
            break
        line = lines[index]
        number = index + 1
        index += 1
        if not line.strip():
            break
        if line[0] in " \t":
            if not headers:
                raise TemplateError(f"line {number} starts with a space, but no header comes before it to continue")
            last_name, last_value, last_line = headers[-1]
            headers[-1] = (last_name, f"{last_value} {line.strip()}", last_line)
            continue
        name, colon, value = line.partition(":")
        if not colon or not _FIELD_NAME.fullmatch(name):
            shown = line if len(line) <= 60 else line[:57] + "..."
            raise TemplateError(
                f"line {number} is not a header ({shown!r}): headers are 'Name: value', and an empty line "
                "separates them from the body (an empty first line: a body alone)"
            )
        if name.lower() in MIME_HEADERS:
            raise TemplateError(
                f"line {number}: leave {name} out, smtp_nb writes it (from the HTML part and the attachments)"
            )
        headers.append((name, value.strip(), number))
    return Layout(headers, "\n".join(lines[index:]), index + 1)
