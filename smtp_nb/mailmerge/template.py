"""A merge template: headers, a blank line, a body — each part a Jinja2 template filled from one row.

Header values are rendered as headers: a field holding CR or LF is an error,
never a new header, and a field in an address header can contribute at most
one address, so a row can neither add headers nor recipients. Errors name the
row and the column.
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2
import jinja2.meta

from .wire import Rendered, split_addresses

__all__ = ["ADDRESS_HEADERS", "MergeTemplate", "Problem", "RowError", "TemplateError"]

#: Characters str.splitlines() ends a line at: the email package (and other readers) would start
#: a new header there when they write the message out again.
_LINE_ENDS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
#: Refused in a field that goes into a header: those line ends and every other control character but TAB.
_HEADER_BREAKER = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")

#: Headers whose values are address lists: the envelope recipients come from To, Cc and Bcc.
ADDRESS_HEADERS = frozenset({"from", "sender", "reply-to", "to", "cc", "bcc"})


@dataclasses.dataclass(frozen=True)
class Problem:
    """One reason a row cannot be sent."""

    row: int  # 1-based position in the rows
    column: str  # the field (or header, or "") concerned
    problem: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", {self.column}" if self.column else "")
        return f"{where}: {self.problem}"


class RowError(ValueError):
    """A row cannot be rendered into a valid message."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


class TemplateError(ValueError):
    """The template itself is wrong (syntax, no blank line, bad header line); says where."""


class _Empty:
    """A row's empty cell (None, NaN): false in ``{% if %}``, an error when printed."""

    __slots__ = ("column",)

    def __init__(self, column: str) -> None:
        self.column = column

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        raise _EmptyField(self.column)


class _EmptyField(Exception):
    def __init__(self, column: str) -> None:
        super().__init__(column)
        self.column = column


def _finalize(value: Any) -> Any:
    if isinstance(value, _Empty):
        raise _EmptyField(value.column)
    return value


def _mailbox(address: Any, name: Any = "") -> str:
    """Jinja filter: ``{{ email | mailbox(name) }}`` gives ``"Name, Jr." <email>`` with the name quoted as needed."""
    address, name = str(address), str(name or "")
    if address.isascii():
        return email.utils.formataddr((name, address))
    # formataddr() raises UnicodeEncodeError for a non-ASCII (SMTPUTF8) address; it is checked later.
    return f'"{email.utils.quote(name)}" <{address}>' if name else address


def _environment(html: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=html,
        keep_trailing_newline=True,
        finalize=_finalize,
    )
    env.filters["mailbox"] = _mailbox
    return env


def _is_empty(value: Any) -> bool:
    """None, NaN (pandas' empty cell) and blank text (the csv module's empty cell) are all empty."""
    return (
        value is None or (isinstance(value, float) and value != value) or (isinstance(value, str) and not value.strip())
    )


@dataclasses.dataclass
class _Header:
    name: str
    template: jinja2.Template
    fields: frozenset[str]
    line: int


class MergeTemplate:
    """Parse once, render per row.

    ``text`` is ``Header: value`` lines, a blank line, then the body. ``html``
    is an optional HTML alternative (Jinja2 with HTML escaping), or
    ``markdown=True`` makes the HTML from the rendered body. ``attachments``
    names a column of paths (a list, or several separated by ``;``);
    ``files`` are attached to every message.
    """

    def __init__(
        self,
        text: str,
        *,
        html: str | None = None,
        markdown: bool = False,
        attachments: str | None = None,
        files: Sequence[str] = (),
        defaults: Mapping[str, str] | None = None,
    ) -> None:
        if html is not None and markdown:
            raise ValueError("give an HTML template or markdown=True, not both")
        self.source = text
        self.html_source = html
        self.markdown = markdown
        self.attachments = attachments
        self.files = tuple(files)
        text_env, html_env = _environment(False), _environment(True)
        lines = text.replace("\r\n", "\n").split("\n")
        skipped = 0
        while lines and not lines[0].strip():
            lines.pop(0)
            skipped += 1
        try:
            blank = next(i for i, line in enumerate(lines) if not line.strip())
        except StopIteration:
            raise TemplateError(
                "the template needs headers, a blank line, then the body (no blank line found)"
            ) from None
        header_lines, body = lines[:blank], "\n".join(lines[blank + 1 :])
        self.headers: list[_Header] = []
        for number, line in _unfold(header_lines, skipped):
            name, colon, value = line.partition(":")
            if not colon or not name.strip() or " " in name.strip():
                raise TemplateError(f"line {number}: {line!r} is not a header (it needs 'Name: value')")
            compiled = self._compile(text_env, value.strip(), number)
            self.headers.append(_Header(name.strip(), compiled, _fields(text_env, value, number), number))
        for name, value in (defaults or {}).items():
            if not any(h.name.lower() == name.lower() for h in self.headers):
                compiled = self._compile(text_env, value, 0)
                self.headers.append(_Header(name, compiled, _fields(text_env, value, 0), 0))
        body_line = skipped + blank + 2  # the body's first line, counted from 1 in ``text``
        self.body = self._compile(text_env, body, body_line)
        self.html = self._compile(html_env, html, 0) if html is not None else None
        self.fields = frozenset().union(
            *(h.fields for h in self.headers),
            _fields(text_env, body, body_line),
            _fields(html_env, html, 0) if html is not None else (),
            {attachments} if attachments else (),
        )
        self.fingerprint = self._fingerprint()
        names = {h.name.lower() for h in self.headers}
        if not names & {"to", "cc", "bcc"}:
            raise TemplateError("the template has no To, Cc or Bcc header: whom should each message go to?")
        if "from" not in names:
            raise TemplateError("the template has no From header")

    @staticmethod
    def _compile(env: jinja2.Environment, source: str, offset: int) -> jinja2.Template:
        try:
            return env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            line = (exc.lineno or 1) + max(offset - 1, 0)
            raise TemplateError(f"line {line}: {exc.message}") from None

    def _fingerprint(self) -> str:
        """Changes whenever the template, its HTML part or its attachments change."""
        digest = hashlib.sha256()
        for part in (self.source, self.html_source or "", str(self.markdown), self.attachments or "", *self.files):
            digest.update(part.encode("utf-8") + b"\0")
        return digest.hexdigest()[:16]

    # -- rendering ------------------------------------------------------------------

    def _context(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {k: _Empty(k) if _is_empty(v) else v for k, v in row.items()}

    def render(self, row: Mapping[str, Any], number: int) -> Rendered:
        """The message for one row; ``RowError`` lists the problems of the row, one per column."""
        problems: list[Problem] = []
        context = self._context(row)
        for field in sorted(self.fields - set(row)):
            problems.append(Problem(number, field, "no such column in this row"))
        if problems:
            raise RowError(problems)
        headers: list[tuple[str, str]] = []
        addresses: dict[str, list[tuple[str, str]]] = {}
        for header in self.headers:
            value = self._render_part(header.template, context, number, header.name, problems)
            if value is None:
                continue
            before = len(problems)
            self._check_header(header, value, row, number, problems)
            value = value.strip()
            if len(problems) > before or not value:
                continue
            lower = header.name.lower()
            if lower in ADDRESS_HEADERS:
                try:
                    addresses.setdefault(lower, []).extend(split_addresses(value))
                except ValueError as exc:
                    hint = " (quote a display name that holds a comma: {{ email | mailbox(name) }})"
                    problems.append(Problem(number, header.name, f"{exc}{hint if ',' in value else ''}"))
                    continue
            headers.append((header.name, value))
        body = self._render_part(self.body, context, number, "body", problems)
        html = None
        if self.html is not None:
            html = self._render_part(self.html, context, number, "html", problems)
        elif self.markdown and body is not None:
            html = _markdown(self._render_part(self.body, _escaped(context), number, "body", problems) or "")
        rendered = Rendered(headers, addresses, body or "", html, self._attachment_paths(row, number, problems))
        if not rendered.recipients and not problems:
            problems.append(Problem(number, "To", "no recipient: To, Cc and Bcc are all empty"))
        if problems:
            raise RowError(_one_per_column(problems))
        return rendered

    def _render_part(
        self, template: jinja2.Template, context: Mapping[str, Any], number: int, part: str, problems: list[Problem]
    ) -> str | None:
        try:
            return template.render(context)
        except _EmptyField as exc:
            problems.append(Problem(number, exc.column, f"is empty but the {part} uses it"))
        except jinja2.UndefinedError as exc:
            problems.append(Problem(number, part, str(exc.message)))
        except jinja2.TemplateError as exc:
            problems.append(Problem(number, part, f"template error: {exc}"))
        return None

    def _check_header(
        self, header: _Header, value: str, row: Mapping[str, Any], number: int, problems: list[Problem]
    ) -> None:
        address = header.name.lower() in ADDRESS_HEADERS
        for field in sorted(header.fields):
            raw = row.get(field)
            values = raw if isinstance(raw, (list, tuple)) else [raw]
            for item in values:
                if not isinstance(item, str):
                    continue
                bad = _HEADER_BREAKER.search(item)
                if bad:
                    what = "a line break" if bad.group() in _LINE_ENDS else f"the control character {bad.group()!r}"
                    problems.append(Problem(number, field, f"holds {what}; it cannot go in the {header.name} header"))
                elif address and (item.count("@") > 1 or ("@" in item and any(c in item for c in ",;"))):
                    problems.append(
                        Problem(
                            number,
                            field,
                            f"holds more than one address ({item!r}); a field adds at most one recipient "
                            f"to the {header.name} header (give a list to send to several)",
                        )
                    )
        if _HEADER_BREAKER.search(value) and not any(p.row == number for p in problems):
            problems.append(Problem(number, header.name, "the rendered value holds a line break"))

    def _attachment_paths(self, row: Mapping[str, Any], number: int, problems: list[Problem]) -> list[str]:
        paths = list(self.files)
        if self.attachments:
            value = row.get(self.attachments)
            if isinstance(value, (list, tuple)):
                paths += [str(v) for v in value if not _is_empty(v)]
            elif not _is_empty(value) and str(value).strip():
                paths += [p.strip() for p in str(value).split(";") if p.strip()]
        for path in paths:
            if not os.path.isfile(path):
                column = self.attachments if path not in self.files else "attachments"
                problems.append(Problem(number, column or "attachments", f"attachment {path!r} does not exist"))
            elif not os.access(path, os.R_OK):
                problems.append(
                    Problem(number, self.attachments or "attachments", f"attachment {path!r} is not readable")
                )
        return paths


def _one_per_column(problems: list[Problem]) -> list[Problem]:
    """The first problem of each column: a field used in three places is one mistake."""
    seen: set[str] = set()
    kept = []
    for problem in problems:
        if problem.column not in seen:
            seen.add(problem.column)
            kept.append(problem)
    return kept


def _unfold(lines: list[str], skipped: int) -> list[tuple[int, str]]:
    """Header lines with their continuation lines joined, each with its 1-based line number."""
    unfolded: list[tuple[int, str]] = []
    for number, line in enumerate(lines, skipped + 1):
        if line[:1] in (" ", "\t") and unfolded:
            first, text = unfolded[-1]
            unfolded[-1] = (first, text + " " + line.strip())
        else:
            unfolded.append((number, line))
    return unfolded


def _fields(env: jinja2.Environment, source: str | None, offset: int) -> frozenset[str]:
    if not source:
        return frozenset()
    try:
        return frozenset(jinja2.meta.find_undeclared_variables(env.parse(source)))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"line {(exc.lineno or 1) + max(offset - 1, 0)}: {exc.message}") from None


def _escaped(context: Mapping[str, Any]) -> dict[str, Any]:
    """Field values made safe for HTML, for the markdown-to-HTML part."""
    import html

    return {k: html.escape(v) if isinstance(v, str) else v for k, v in context.items()}


def _markdown(text: str) -> str:
    try:
        import markdown
    except ImportError:
        raise TemplateError("markdown=True needs the markdown package: pip install 'smtp_nb[merge]'") from None
    return str(markdown.markdown(text, extensions=["extra"]))
