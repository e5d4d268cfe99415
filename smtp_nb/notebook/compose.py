"""From a ``%%smtp_send`` cell to an ``EmailMessage``: headers, an empty line, the body; ``{{ name }}`` filled in.

Every header value and the body are Jinja2 templates rendered with
``StrictUndefined`` from the notebook's namespace. Each header is rendered on
its own, so a value that turns into two lines is an error, never a second
header. Anything wrong raises ``MessageError`` before a byte is sent.
"""

from __future__ import annotations

import email.errors
import email.message
import email.policy
import email.utils
import os
from collections.abc import Mapping, Sequence
from typing import Any

from smtp_nb.client.message import extract_recipients, extract_sender
from smtp_nb.html import HTMLMailError, InlineImages, set_html_body
from smtp_nb.html.build import attach
from smtp_nb.mailmerge.errors import TemplateError
from smtp_nb.mailmerge.layout import MIME_HEADERS, Layout, header_breaker, parse_layout

from .errors import MessageError

__all__ = ["Draft", "build_message", "parse_cell"]

_NOTHING_SENT = "nothing was sent"

#: A cell split into header templates (name, value, line number) and a body template.
Draft = Layout


def parse_cell(cell: str) -> Draft:
    """Split a cell into headers and body (folded header lines are joined): the merge's own parser."""
    try:
        return parse_layout(cell, need_blank_line=False)
    except TemplateError as exc:
        raise MessageError(f"{exc}; {_NOTHING_SENT}") from None


class _Templates:
    """Jinja2 with StrictUndefined; the body of an HTML message autoescapes what it fills in."""

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        try:
            import jinja2
            import jinja2.meta
        except ImportError:  # pragma: no cover - jinja2 comes with the notebook's dependencies
            raise MessageError("%%smtp_send needs jinja2: pip install jinja2") from None
        self._jinja = jinja2
        self.namespace = namespace
        self.plain = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        self.html = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=True)
        self.plain.filters["inline_image"] = _not_in_plain_text

    def missing(self, sources: Sequence[tuple[str, str]]) -> list[str]:
        """Names the templates use that neither the namespace nor Jinja defines."""
        names: set[str] = set()
        for where, source in sources:
            names |= self._fields(where, source)
        return sorted(n for n in names if n not in self.namespace and n not in self.plain.globals)

    def _fields(self, where: str, source: str) -> set[str]:
        try:
            return set(self._jinja.meta.find_undeclared_variables(self.plain.parse(source)))
        except self._jinja.TemplateSyntaxError as exc:
            raise MessageError(
                f"{where}: template error on its line {exc.lineno}: {exc.message}; {_NOTHING_SENT}"
            ) from None

    def render(self, where: str, source: str, *, html: bool = False) -> str:
        if "{" not in source:
            return source
        environment = self.html if html else self.plain
        try:
            return environment.from_string(source).render(self.namespace)
        except self._jinja.UndefinedError as exc:
            raise MessageError(f"{where}: {exc.message}; {_NOTHING_SENT}") from None
        except HTMLMailError as exc:  # from the inline_image filter
            raise MessageError(f"{where}: {exc}; {_NOTHING_SENT}") from None
        except self._jinja.TemplateError as exc:
            raise MessageError(f"{where}: {exc}; {_NOTHING_SENT}") from None


def _not_in_plain_text(source: Any) -> str:
    raise HTMLMailError("inline_image needs an HTML body: add --html")


def _read_attachment(path: str) -> tuple[str, bytes]:
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(full):
        raise MessageError(f"attachment {path!r} not found (looked for {full}); {_NOTHING_SENT}")
    if not os.path.isfile(full):
        raise MessageError(f"attachment {path!r} is not a file; {_NOTHING_SENT}")
    with open(full, "rb") as file:
        return os.path.basename(full), file.read()


def build_message(
    cell: str,
    namespace: Mapping[str, Any],
    *,
    sender: str | None = None,
    to: Sequence[str] = (),
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    subject: str | None = None,
    html: bool = False,
    attachments: Sequence[str] = (),
    inline_css: bool = True,
    images_base: str = ".",
) -> tuple[email.message.EmailMessage, str, list[str]]:
    """The message of a cell, and its envelope (sender, recipients).

    Options replace the cell's header of the same name; a ``Date`` and a
    ``Message-ID`` are added unless the cell has them. An HTML body is built by
    ``smtp_nb.html.set_html_body``: CSS inlined unless ``inline_css=False``, a text
    alternative made from it, and ``{{ "chart.png" | inline_image }}`` or
    ``{{ fig | inline_image }}`` attached as related parts (paths inside
    ``images_base``). Raises ``MessageError``.
    """
    draft = parse_cell(cell)
    headers = [(name, value, f"the {name} header (line {line})") for name, value, line in draft.headers]
    options = {"From": [sender] if sender else [], "To": list(to), "Cc": list(cc), "Bcc": list(bcc)}
    options["Subject"] = [subject] if subject is not None else []
    for name, values in options.items():
        if values:
            headers = [h for h in headers if h[0].lower() != name.lower()]
            headers.append((name, ", ".join(values), f"the --{name.lower()} option"))
    for name, _, where in headers:
        if name.lower() in MIME_HEADERS:
            raise MessageError(
                f"{where}: leave {name} out, smtp_nb writes it (use --html for an HTML body, --attach for files); "
                f"{_NOTHING_SENT}"
            )

    templates = _Templates(namespace)
    images = InlineImages(images_base)
    images.install(templates.html)
    body_where = f"the body (from line {draft.body_line})"
    missing = templates.missing([(where, value) for _, value, where in headers] + [(body_where, draft.body)])
    if missing:
        listed = ", ".join("{{ " + name + " }}" for name in missing)
        raise MessageError(
            f"the message uses {listed}, not defined in the notebook: define "
            f"{'it' if len(missing) == 1 else 'them'} in a cell first; {_NOTHING_SENT}"
        )

    message = email.message.EmailMessage(policy=email.policy.default)
    for name, value, where in headers:
        rendered = templates.render(where, value)
        what = header_breaker(rendered)
        if what:
            raise MessageError(
                f"{where} holds {what} once its fields are filled in; it could start a new header, "
                f"so it is refused; {_NOTHING_SENT}"
            )
        try:
            message[name] = rendered
        except (ValueError, IndexError, email.errors.HeaderParseError) as exc:
            raise MessageError(f"{where}: {exc}; {_NOTHING_SENT}") from None

    try:
        envelope_from = extract_sender(message)
        recipients = extract_recipients(message)
    except ValueError as exc:
        raise MessageError(f"{exc}; {_NOTHING_SENT}") from None
    if envelope_from is None:
        raise MessageError(f"no sender: add a From: header or --from; {_NOTHING_SENT}")
    if not recipients:
        raise MessageError(f"no recipients: add To:, Cc: or Bcc: headers, or --to, --cc, --bcc; {_NOTHING_SENT}")
    if "Date" not in message:
        message["Date"] = email.utils.formatdate(localtime=True)
    if "Message-ID" not in message:
        domain = envelope_from.rpartition("@")[2] or "smtp-nb.invalid"
        message["Message-ID"] = email.utils.make_msgid(domain=domain)

    files = [_read_attachment(path) for path in attachments]
    body = templates.render(body_where, draft.body, html=html)
    if html:
        try:
            set_html_body(message, body, images=images.parts, attachments=files, inline_css=inline_css)
        except HTMLMailError as exc:
            raise MessageError(f"{exc}; {_NOTHING_SENT}") from None
    else:
        message.set_content(body)
        for name, data in files:
            attach(message, name, data)
    return message, envelope_from, recipients
