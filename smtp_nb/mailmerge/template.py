"""A merge template: headers, a blank line, a body — each part a Jinja2 template (sandboxed) filled from one row.

Header values are rendered as headers: a field holding CR or LF is an error,
never a new header; each address header holds exactly as many mailboxes as
the template put there, so a row can neither add headers nor recipients.
Attachment paths from rows stay inside a base folder. The HTML part is
sanitised, and Markdown syntax in a row value renders literally. Errors name
the row and the column.
"""

from __future__ import annotations

import dataclasses
import email.utils
import functools
import hashlib
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jinja2
import jinja2.meta
import jinja2.sandbox

from ..client.addresses import parse_address
from ..html import HTMLMailError, InlineImages, html_to_text
from ..html import inline_css as css_inline
from .errors import TemplateError
from .layout import header_breaker, parse_layout
from .wire import Attachment, Rendered, split_addresses

__all__ = ["ADDRESS_HEADERS", "MAX_ATTACHMENTS", "MergeTemplate", "Problem", "RowError", "TemplateError"]

#: Headers whose values are address lists: the envelope recipients come from To, Cc and Bcc.
ADDRESS_HEADERS = frozenset({"from", "sender", "reply-to", "to", "cc", "bcc"})
#: More attachment paths than this in one row is a row problem (found before any path is looked at).
MAX_ATTACHMENTS = 100
#: Link targets the HTML part may hold.
_URL_SCHEMES = frozenset({"http", "https", "mailto", "cid"})
#: Markdown's syntax characters: escaped with a backslash in row values so that they render as written.
_MARKDOWN_SYNTAX = re.compile(r"([\\`*_{}\[\]()#+\-.!|:=~^])")
#: Characters that build address lists; a field holding one may be changing the header's structure.
_ADDRESS_SYNTAX = frozenset(',;<>"():\\[]')
#: What separates or wraps mailboxes: a value holding it may be an attempt to add or replace one.
_LIST_SYNTAX = frozenset(',;<>":')
#: One mailbox with no quoting, comment, group or escape: text, then at most one <...> and spaces.
_SIMPLE_MAILBOX = re.compile(r'([^"\\(),;:<>]*)(<[^>\\]*>)?\s*')
#: Where no attachment may come from, wherever a symlink points.
_SYSTEM_TREES = ("/proc", "/sys", "/dev")


@dataclasses.dataclass(frozen=True)
class Problem:
    """One reason a row cannot be sent (or, as a note, something to look at in the preview)."""

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


def _environment(
    html: bool, loader: jinja2.BaseLoader | None, finalize: Callable[[Any], Any] | None = None
) -> jinja2.Environment:
    """The sandbox: templates call no Python they were not given, and read no file unless ``loader`` says so."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=html,
        keep_trailing_newline=True,
        finalize=finalize or _finalize,
        loader=loader,
    )
    env.filters["mailbox"] = _mailbox
    env.filters["inline_image"] = _inline_image
    return env


#: The context entry holding the row's ``InlineImages`` (not a valid column name in a template).
_IMAGES = "\0images"


@jinja2.pass_context
def _inline_image(context: Any, source: Any) -> str:
    """Jinja filter of the HTML template: ``{{ "chart.png" | inline_image }}`` is the image's ``cid:`` URL."""
    images = context.get(_IMAGES)
    if images is None:
        raise TemplateError("inline_image works in the HTML template only")
    return str(images(source))  # HTMLMailError (a ValueError) becomes the row's problem


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
    literal: bool = False  # no Jinja syntax in the value
    #: The template as ``_shape`` renders it: the fields its conditions test keep their real values there.
    shape_template: jinja2.Template | None = None
    tested: tuple[str, ...] = ()
    #: The fields the header uses as an address: ``{{ email | mailbox(name) }}`` or a bare ``{{ email }}``.
    address_fields: frozenset[str] = frozenset()
    #: The template's own structure of an address header, by the kind of each field's value (see ``_kinds``):
    #: rows alike in kind share it, so it is rendered once per kind, not once per row.
    shapes: dict[Any, tuple[int, str]] = dataclasses.field(default_factory=dict)
    #: A header with no Jinja syntax at all renders the same for every row: its value and mailboxes, once valid.
    constant: tuple[str, list[tuple[str, str]] | None] | None = None

    def __post_init__(self) -> None:
        self.sorted_fields = tuple(sorted(self.fields))


class MergeTemplate:
    """Parse once, render per row.

    ``text`` is ``Header: value`` lines, a blank line, then the body. ``html``
    is an optional HTML alternative (Jinja2 with HTML escaping), or
    ``markdown=True`` makes the HTML from the rendered body; either way the
    HTML part is sanitised. ``attachments`` names a column of paths (a list,
    or several separated by ``;``), each inside ``attachments_root`` (default:
    the current folder); ``files`` are attached to every message. Templates
    run in Jinja's sandbox and include no other template unless ``loader``
    (a ``jinja2`` loader) is given. The HTML template's ``<style>`` CSS is
    inlined before sanitising unless ``inline_css=False``, and
    ``{{ "chart.png" | inline_image }}`` attaches an image from inside
    ``attachments_root`` as a related part.
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
        attachments_root: str | os.PathLike[str] | None = None,
        loader: jinja2.BaseLoader | None = None,
        inline_css: bool = True,
    ) -> None:
        if html is not None and markdown:
            raise ValueError("give an HTML template or markdown=True, not both")
        self.source = text
        self.html_source = html
        self.markdown = markdown
        self.inline_css = inline_css
        self.attachments = attachments
        self.files = tuple(os.fspath(f) for f in files)
        root = os.fspath(attachments_root) if attachments_root is not None else os.getcwd()
        if not os.path.isdir(root):
            raise TemplateError(
                f"the attachments folder {root} does not exist (attachments_root= / --attachments-root)"
            )
        self.attachments_root = os.path.realpath(root)
        self._loader = loader
        text_env, html_env = _environment(False, loader), _environment(True, loader)
        lines = text.replace("\r\n", "\n").split("\n")
        skipped = 0
        while lines and not lines[0].strip():  # blank lines before the headers are not "no headers" here
            lines.pop(0)
            skipped += 1
        layout = parse_layout("\n".join(lines), need_blank_line=True)
        self.headers: list[_Header] = []
        for name, value, number in layout.headers:
            line = number + skipped
            self.headers.append(self._header(text_env, name, value, line))
        for name, value in (defaults or {}).items():
            if not any(h.name.lower() == name.lower() for h in self.headers):
                self.headers.append(self._header(text_env, name, value, 0))
        body_line = layout.body_line + skipped
        self.body = self._compile(text_env, layout.body, body_line)
        #: The body again for the Markdown-to-HTML part: every value it prints renders literally.
        self.markdown_body = (
            self._compile(_environment(False, loader, finalize=_markdown_literal), layout.body, body_line)
            if markdown
            else None
        )
        self.html = self._compile(html_env, html, 0) if html is not None else None
        self.fields = frozenset().union(
            *(h.fields for h in self.headers),
            _fields(text_env, layout.body, body_line),
            _fields(html_env, html, 0) if html is not None else (),
            {attachments} if attachments else (),
        )
        self.fingerprint = self._fingerprint()
        self._globals = dict(self.body.globals)  # Jinja's own (range, dict, cycler...): the same in both sandboxes
        names = {h.name.lower() for h in self.headers}
        if not names & {"to", "cc", "bcc"}:
            raise TemplateError("the template has no To, Cc or Bcc header: whom should each message go to?")
        if "from" not in names:
            raise TemplateError("the template has no From header")

    def _header(self, env: jinja2.Environment, name: str, value: str, line: int) -> _Header:
        fields = _fields(env, value, line)
        header = _Header(name, self._compile(env, value, line), fields, line, "{" not in value)
        if name.lower() in ADDRESS_HEADERS and fields:
            header.shape_template, header.tested = _shape_template(env, value, fields)
            header.address_fields = _address_fields(env.parse(value))
        return header

    def _compile(self, env: jinja2.Environment, source: str, offset: int) -> jinja2.Template:
        def line_of(lineno: int | None) -> int:
            return (lineno or 1) + max(offset - 1, 0)

        try:
            tree = env.parse(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"line {line_of(exc.lineno)}: {exc.message}") from None
        if self._loader is None:
            for node in tree.find_all((jinja2.nodes.Include, jinja2.nodes.Import, jinja2.nodes.FromImport,
                                       jinja2.nodes.Extends)):  # fmt: skip
                raise TemplateError(
                    f"line {line_of(node.lineno)}: a merge template reads no other template "
                    "({% include %}, {% import %}, {% extends %}) unless you pass loader= (a jinja2 loader)"
                )
        return env.from_string(tree)

    def _fingerprint(self) -> str:
        """Changes whenever the template, its HTML part or its attachments change."""
        digest = hashlib.sha256()
        parts = (self.source, self.html_source or "", str(self.markdown), self.attachments or "", *self.files)
        for part in (*parts, "" if self.inline_css else "as written"):
            digest.update(part.encode("utf-8") + b"\0")
        return digest.hexdigest()[:16]

    # -- rendering ------------------------------------------------------------------

    def _context(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The row as every part of this template sees it: the template globals, then the row's values."""
        context = dict(self._globals)
        context.update((k, _Empty(k) if _is_empty(v) else v) for k, v in row.items())
        return context

    def render(self, row: Mapping[str, Any], number: int) -> Rendered:
        """The message for one row; ``RowError`` lists the problems of the row, one per column.

        ``Rendered.notes`` holds what is allowed but worth a look (an address whose domain has no dot).
        """
        problems: list[Problem] = []
        context = self._context(row)
        for field in sorted(self.fields - set(row)):
            problems.append(Problem(number, field, "no such column in this row"))
        if problems:
            raise RowError(problems)
        headers: list[tuple[str, str]] = []
        addresses: dict[str, list[tuple[str, str]]] = {}
        notes: list[Problem] = []
        for header in self.headers:
            lower = header.name.lower()
            if header.constant is not None:
                value, found = header.constant
            else:
                rendered_value = self._render_part(header.template, context, number, header.name, problems)
                if rendered_value is None:
                    continue
                before = len(problems)
                self._check_header(header, rendered_value, row, number, problems)
                value = rendered_value.strip()
                if len(problems) > before or not value:
                    continue
                found = None
                if lower in ADDRESS_HEADERS:
                    found = self._addresses(header, value, row, context, number, problems)
                    if found is None:
                        continue
                if header.literal:
                    header.constant = (value, found)
            if found is not None:
                addresses.setdefault(lower, []).extend(found)
                for _, mailbox in found:
                    domain = mailbox.rpartition("@")[2]
                    if domain and "." not in domain and not domain.startswith("["):
                        notes.append(Problem(number, header.name, f"{mailbox}: the domain {domain!r} has no dot"))
            headers.append((header.name, value))
        body = self._render_part(self.body, context, number, "body", problems)
        html = None
        images = None
        if self.html is not None:
            images = InlineImages(self.attachments_root)
            html = self._render_part(self.html, {**context, _IMAGES: images}, number, "html", problems)
        elif self.markdown and body is not None:
            assert self.markdown_body is not None
            html = _markdown(self._render_part(self.markdown_body, context, number, "body", problems) or "")
        if html is not None:
            if self.inline_css:
                try:
                    html = css_inline(html)
                except HTMLMailError as exc:
                    raise TemplateError(str(exc)) from None
            html = _sanitise(html)
            if body is not None and not body.strip():  # no text written: the readable text of the HTML
                body = html_to_text(html)
        attached = self._attachments(row, number, problems)
        rendered = Rendered(headers, addresses, body or "", html, attached, notes, images.parts if images else [])
        if not rendered.recipients and not problems:
            problems.append(Problem(number, "To", "no recipient: To, Cc and Bcc are all empty"))
        if problems:
            raise RowError(_one_per_column(problems))
        return rendered

    def _render_part(
        self, template: jinja2.Template, context: dict[str, Any], number: int, part: str, problems: list[Problem]
    ) -> str | None:
        try:
            return _render(template, context)
        except _EmptyField as exc:
            problems.append(Problem(number, exc.column, f"is empty but the {part} uses it"))
        except jinja2.UndefinedError as exc:
            problems.append(Problem(number, part, str(exc.message)))
        except jinja2.sandbox.SecurityError as exc:
            raise TemplateError(f"the {part} does something a merge template may not: {exc}") from None
        except jinja2.TemplateError as exc:
            problems.append(Problem(number, part, f"template error: {exc}"))
        except (TypeError, ValueError, ArithmeticError, AttributeError) as exc:
            problems.append(Problem(number, part, f"{type(exc).__name__}: {exc}"))
        return None

    def _check_header(
        self, header: _Header, value: str, row: Mapping[str, Any], number: int, problems: list[Problem]
    ) -> None:
        for field in header.sorted_fields:
            raw = row.get(field)
            for item in raw if isinstance(raw, (list, tuple)) else [raw]:
                what = header_breaker(item) if isinstance(item, str) else None
                if what:
                    problems.append(Problem(number, field, f"holds {what}; it cannot go in the {header.name} header"))
                    break
        what = header_breaker(value)
        if what and not any(p.row == number for p in problems):
            problems.append(Problem(number, header.name, f"the rendered value holds {what}"))

    def _addresses(
        self,
        header: _Header,
        value: str,
        row: Mapping[str, Any],
        context: Mapping[str, Any],
        number: int,
        problems: list[Problem],
    ) -> list[tuple[str, str]] | None:
        """The header's mailboxes, if the row kept the template's structure and every mailbox is valid."""
        shape = self._shape(header, context)
        actual = _structure(value)
        if actual != shape:
            suspects = [f for f in sorted(header.fields) if _holds_address_syntax(row.get(f))]
            for field in suspects:  # 'edsger(at)example' as the address: a bad address, not a new structure
                raw = row.get(field)
                if field in header.address_fields and isinstance(raw, str) and not _LIST_SYNTAX & set(raw):
                    try:
                        parse_address(raw.strip(" \t"))
                    except ValueError as own:
                        reason = str(own).partition(": ")[2] or str(own)
                        problems.append(Problem(number, field, f"{raw!r} is not a valid email address: {reason}"))
                        return None
            named = ", ".join(suspects or sorted(header.fields))
            if actual[0] != shape[0]:
                what = f"would hold {actual[0]} address(es) where the template puts {shape[0]}"
            else:
                what = f"would hold the address syntax {actual[1]!r} where the template puts {shape[1]!r}"
            problems.append(
                Problem(
                    number,
                    named,
                    f"the {header.name} header {what}: a row's values cannot add, remove or replace recipients "
                    f"(write {{{{ email | mailbox(name) }}}}, which quotes the name)",
                )
            )
            return None
        try:
            return list(split_addresses(value))
        except ValueError as exc:
            problems.append(self._bad_address(header, row, context, number, exc))
            return None

    @staticmethod
    def _shape(header: _Header, context: Mapping[str, Any]) -> tuple[int, str]:
        """The structure the template itself gives ``header``: rendered with each field's value as a plain word."""
        kinds = tuple(_kind(context.get(f)) for f in header.sorted_fields)
        tested = tuple(context.get(f) for f in header.tested)
        key: tuple[Any, ...] | None = (kinds, tested)
        try:
            shape = header.shapes.get(key)
        except TypeError:  # a tested value that cannot be a key (a list): worked out for this row alone
            key, shape = None, None
        if shape is None:
            shown = _tokens(context, header.fields)
            shown.update((_TESTED + f, v) for f, v in zip(header.tested, tested, strict=True))
            shape = _structure(_render(header.shape_template or header.template, shown))
            if key is not None:
                if len(header.shapes) >= 256:  # rows of ever new kinds (numbers used in the header): bounded
                    header.shapes.clear()
                header.shapes[key] = shape
        return shape

    def _bad_address(
        self, header: _Header, row: Mapping[str, Any], context: Mapping[str, Any], number: int, exc: ValueError
    ) -> Problem:
        """The field whose value is not an address, shown as typed; else the header and the parser's words."""
        for field in sorted(header.fields):
            raw = row.get(field)
            if not isinstance(raw, str):
                continue
            try:
                split_addresses(header.template.render({**context, field: "user@example.com"}))
            except (ValueError, jinja2.TemplateError, _EmptyField):
                continue
            try:
                parse_address(raw.strip(" \t"))
                reason = str(exc).partition(": ")[2] or str(exc)
            except ValueError as own:
                reason = str(own).partition(": ")[2] or str(own)
            return Problem(number, field, f"{raw!r} is not a valid email address: {reason}")
        hint = " (quote a display name that holds a comma: {{ email | mailbox(name) }})"
        return Problem(number, header.name, f"{exc}{hint if ',' in str(exc) else ''}")

    def _attachments(self, row: Mapping[str, Any], number: int, problems: list[Problem]) -> list[Attachment]:
        """The row's files, each checked with ``stat`` (never read): inside the folder, a regular readable file."""
        column = self.attachments or "attachments"
        found: list[Attachment] = []
        for path in self.files:
            attachment = _regular_file(os.path.realpath(path), path)
            if isinstance(attachment, str):
                problems.append(Problem(number, "attachments", attachment))
            else:
                found.append(attachment)
        if not self.attachments:
            return found
        value = row.get(self.attachments)
        if isinstance(value, (list, tuple)):
            if len(value) > MAX_ATTACHMENTS:
                problems.append(Problem(number, column, f"lists {len(value):,} files; at most {MAX_ATTACHMENTS}"))
                return found
            paths = [str(v).strip() for v in value if not _is_empty(v)]
        elif _is_empty(value):
            paths = []
        else:
            text = str(value)
            if text.count(";") >= MAX_ATTACHMENTS:
                problems.append(
                    Problem(number, column, f"lists {text.count(';') + 1:,} files; at most {MAX_ATTACHMENTS}")
                )
                return found
            paths = [p.strip() for p in text.split(";") if p.strip()]
        for path in paths:
            attachment = self._inside_root(path)
            if isinstance(attachment, str):
                problems.append(Problem(number, column, attachment))
                break
            found.append(attachment)
        return found

    def _inside_root(self, path: str) -> Attachment | str:
        """The attachment at ``path`` under the attachments folder, or what is wrong with it."""
        root = self.attachments_root
        if "\0" in path:
            return f"attachment {path!r} holds a NUL character"
        if os.path.isabs(path) or path.startswith("~"):
            return (
                f"attachment {path!r} is an absolute path: give a path inside {root} "
                "(or choose the folder with attachments_root= / --attachments-root)"
            )
        if ".." in re.split(r"[\\/]", path):
            return f"attachment {path!r} leads out of the attachments folder {root} ('..')"
        real = os.path.realpath(os.path.join(root, path))
        if not real.startswith(root.rstrip(os.sep) + os.sep) or _in_system_tree(real):
            return f"attachment {path!r} leads out of the attachments folder {root} (a symbolic link)"
        return _regular_file(real, path)


def _in_system_tree(real: str) -> bool:
    """``/proc``, ``/sys``, ``/dev`` or below them (not ``/devel`` or ``/processed``)."""
    return any(real == tree or real.startswith(tree + os.sep) for tree in _SYSTEM_TREES)


def _regular_file(real: str, shown: str) -> Attachment | str:
    try:
        found = os.stat(real)
    except FileNotFoundError:
        return f"attachment {shown!r} does not exist"
    except OSError as exc:
        return f"attachment {shown!r} cannot be looked at ({exc.strerror})"
    if _in_system_tree(real) or not stat.S_ISREG(found.st_mode):
        return f"attachment {shown!r} is not a regular file"
    if not os.access(real, os.R_OK):
        return f"attachment {shown!r} is not readable"
    return Attachment(real, os.path.basename(real), found.st_size, found.st_mtime_ns)


def _render(template: jinja2.Template, context: dict[str, Any]) -> str:
    """``template.render(context)`` for a ``context`` that already holds the globals (``MergeTemplate._context``).

    Jinja's ``render`` copies the context and merges the globals into it on every
    call, which is most of what a one-line header costs. Here the context is
    shared, and only read (a template's own ``{% set %}`` goes to the Jinja
    context's ``vars``); what Jinja would note of the globals serves only
    ``{% import %}``ed templates' modules.
    """
    env = template.environment
    try:
        return env.concat(  # type: ignore[attr-defined, no-any-return]
            template.root_render_func(env.context_class(env, context, template.name, template.blocks))
        )
    except Exception:
        template.environment.handle_exception()
        raise  # handle_exception always raises (the error with the template's own traceback)


#: Prefix of the names under which a shape template's conditions see the real values of the fields they test.
_TESTED = "smtp_nb_tested_"


def _shape_template(
    env: jinja2.Environment, source: str, fields: frozenset[str]
) -> tuple[jinja2.Template, tuple[str, ...]]:
    """The header's template for finding its own structure, and the fields its conditions test.

    ``_shape`` prints every field as a plain word, so that no value's syntax can count as the
    template's; but ``{% if grade == "F" %}dean@example.com{% endif %}`` must still decide as the
    row would. So the tests of ``{% if %}`` and ``... if ... else ...`` read the real values, under
    other names; what is printed, loops over lists included, stays the words.
    """
    tree = env.parse(source)
    tested: set[str] = set()
    for node in tree.find_all((jinja2.nodes.If, jinja2.nodes.CondExpr)):
        test: jinja2.nodes.Node = node.test  # type: ignore[attr-defined]  # If and CondExpr both have one
        for name in test.find_all(jinja2.nodes.Name):
            if name.ctx == "load" and name.name in fields:
                tested.add(name.name)
                name.name = _TESTED + name.name
    return env.from_string(tree), tuple(sorted(tested))


def _address_fields(tree: jinja2.nodes.Template) -> frozenset[str]:
    """The fields printed as an address: given to ``mailbox`` first, or the header's only output."""
    found = {
        node.node.name
        for node in tree.find_all(jinja2.nodes.Filter)
        if node.name == "mailbox" and isinstance(node.node, jinja2.nodes.Name)
    }
    outputs = [n for o in tree.find_all(jinja2.nodes.Output) for n in o.nodes]
    printed = [n for n in outputs if not (isinstance(n, jinja2.nodes.TemplateData) and not n.data.strip())]
    if len(printed) == 1 and isinstance(printed[0], jinja2.nodes.Name):
        found.add(printed[0].name)
    return frozenset(found)


def _tokens(context: Mapping[str, Any], fields: frozenset[str]) -> dict[str, Any]:
    """``context`` with each of ``fields`` replaced by a plain word (same truth, same list length)."""
    tamed = dict(context)
    for field in fields:
        value = context.get(field)
        if isinstance(value, (list, tuple)):
            tamed[field] = ["x"] * len(value)
        elif isinstance(value, str):
            tamed[field] = "x"
        elif not isinstance(value, (_Empty, bool, int, float)) and value is not None:
            tamed[field] = "x"
    return tamed


def _kind(value: Any) -> tuple[Any, ...]:
    """What of a field's value ``_tokens`` keeps: the same kind renders the template's own structure the same."""
    if isinstance(value, (list, tuple)):
        return (list, len(value))
    if isinstance(value, _Empty):
        return (_Empty,)
    if value is None or isinstance(value, (bool, int, float)):
        return (type(value), value)
    return (str,)


def _holds_address_syntax(value: Any) -> bool:
    items = value if isinstance(value, (list, tuple)) else [value]
    return any(isinstance(i, str) and (any(c in _ADDRESS_SYNTAX for c in i) or i.count("@") > 1) for i in items)


def _structure(value: str) -> tuple[int, str]:
    """An address-list value's structure alone: its mailboxes, and the syntax that separates them.

    The syntax is every character that builds an address list (``, ; : ( ) < > \\``), in order,
    outside quoted strings and ``<...>``: a value may change the words, never the structure, so a
    display name cannot end in ``>`` (or ``:``, ``)``) and turn the real address into a comment.
    """
    simple = _SIMPLE_MAILBOX.fullmatch(value)  # "Name <a@x>" or "a@x", as most rows are: no walk needed
    if simple is not None:
        angle = simple.group(2) is not None
        return int(angle or bool(simple.group(1).strip())), "<>" if angle else ""
    return _walked_structure(value)


def _walked_structure(value: str) -> tuple[int, str]:
    """``_structure`` of any value, character by character."""
    count, text, quoted, angle, comment, escaped = 0, False, False, False, 0, False
    syntax: list[str] = []
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
            if not quoted and not angle:
                syntax.append(char)
        elif quoted:
            quoted = char != '"'
        elif angle:  # inside <...>: the address itself, parsed later; only its end is structure
            if char == ">":
                angle = False
                syntax.append(char)
        elif comment:
            if char in "()":
                comment += 1 if char == "(" else -1
                syntax.append(char)
        elif char == '"':
            quoted = text = True
        elif char == "(":
            comment = 1
            syntax.append(char)
        elif char == "<":
            angle = text = True
            syntax.append(char)
        elif char in ">)":  # closing what was never opened
            syntax.append(char)
        elif char in ",;":
            count += text
            text = False
            syntax.append(char)
        elif char == ":":
            text = False  # a group's name: its members follow
            syntax.append(char)
        elif not char.isspace():
            text = True
    return count + text, "".join(syntax)


def _one_per_column(problems: list[Problem]) -> list[Problem]:
    """The first problem of each column: a field used in three places is one mistake."""
    seen: set[str] = set()
    kept = []
    for problem in problems:
        if problem.column not in seen:
            seen.add(problem.column)
            kept.append(problem)
    return kept


def _fields(env: jinja2.Environment, source: str | None, offset: int) -> frozenset[str]:
    if not source:
        return frozenset()
    try:
        return frozenset(jinja2.meta.find_undeclared_variables(env.parse(source)))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"line {(exc.lineno or 1) + max(offset - 1, 0)}: {exc.message}") from None


def _markdown_literal(value: Any) -> str:
    """Jinja's ``finalize`` for the Markdown part: whatever a ``{{ ... }}`` prints (a field, a joined list,
    an object's ``str``) is text, HTML escaped and with Markdown's syntax as character references."""
    import html

    text = html.escape(str(_finalize(value)), quote=False)
    return _MARKDOWN_SYNTAX.sub(lambda m: f"&#{ord(m[1])};", text)


def _markdown(text: str) -> str:
    try:
        import markdown
    except ImportError:
        raise TemplateError("markdown=True needs the markdown package: pip install 'smtp_nb[merge]'") from None
    return str(markdown.markdown(text, extensions=["extra"]))


def _sanitise(html: str) -> str:
    """The HTML part without scripts, event handlers or links other than http, https, mailto and cid."""
    try:
        import nh3
    except ImportError:
        raise TemplateError("an HTML part needs the nh3 package: pip install 'smtp_nb[merge]'") from None
    # <style> stays: the template's media queries (and, with inline_css=False, its CSS as written). A row value
    # cannot open or close one: Jinja escapes it, and the Markdown part escapes it before converting.
    return str(
        nh3.clean(
            html,
            tags=nh3.ALLOWED_TAGS | {"style"},
            clean_content_tags={"script"},
            attributes=_html_attributes(),
            url_schemes=set(_URL_SCHEMES),
            link_rel=None,
        )
    )


@functools.lru_cache(maxsize=1)
def _html_attributes() -> dict[str, set[str]]:
    """nh3's attributes, and the layout ones mail templates use on any tag."""
    import nh3

    attributes = {tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()}
    attributes["*"] = attributes.get("*", set()) | {"style", "class", "align", "width", "height"}
    return attributes
