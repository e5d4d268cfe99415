"""One message as its recipient will see it: static HTML for notebooks, plain text for terminals.

The HTML part is drawn in a sandboxed iframe (no scripts, no forms, no navigation of the page) whose
content policy blocks every remote load unless ``remote=True``; ``cid:`` images show as ``data:`` URIs.
Everything taken from the message is escaped, and the output holds no random ids, so it survives saving.
"""

from __future__ import annotations

import base64
import email
import email.message
import email.policy
import re
import urllib.parse
from typing import Any, cast

from ..rendering import escape as _e
from ..rendering import html_table, text_table
from .check import Warnings, _as_message, _text
from .text import html_to_text

__all__ = ["MessageView", "view"]

_HEADERS = ("From", "To", "Cc", "Subject", "Date")
_CID = re.compile(r"cid:([^\"'\s)>]+)", re.IGNORECASE)
_IMAGE_TYPE = re.compile(r"image/[a-z0-9.+-]+")
#: Terminal control characters (escape sequences could rewrite the screen); tab and newline stay.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; base-uri 'none'"
_POLICY_REMOTE = (
    "default-src 'none'; img-src data: http: https:; style-src 'unsafe-inline' http: https:; "
    "font-src data: http: https:; media-src http: https:; base-uri 'none'"
)
#: Inside the iframe element: browsers never show it, but JupyterLab drops iframes from the outputs of a
#: notebook it does not trust (one opened from disk) and keeps their text, so this is what shows there.
_ATTACHED = ("file", "type", "size")
_UNTRUSTED = "(the HTML part is shown in a frame, hidden until the notebook is trusted)"


def _header(message: email.message.EmailMessage, name: str) -> str | None:
    try:
        values = message.get_all(name)
    except Exception:  # a header the email package cannot parse is shown as unreadable, not a crash
        return "(unreadable)"
    return None if values is None else ", ".join(str(v) for v in values)


def _payload(part: email.message.Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        return b""
    return data if isinstance(data, bytes) else b""


def _size(count: int) -> str:
    return f"{count:,} byte" + ("" if count == 1 else "s")


class MessageView:
    """A message shown as its recipient will see it; ``html()`` for a notebook, ``text()`` for a terminal."""

    def __init__(
        self,
        message: email.message.EmailMessage | bytes | Any,
        *,
        remote: bool = False,
        warnings: Warnings | None = None,
    ) -> None:
        data = getattr(message, "data", None)
        if isinstance(data, bytes):  # the embedded server's ReceivedMessage
            message = data
        raw = (
            bytes(message) if isinstance(message, (bytes, bytearray)) else message.as_bytes(policy=email.policy.default)
        )
        # Messages parsed from the wire (the inbox's) keep CRLF inside their parts: one form of line end for all.
        self.raw = raw.replace(b"\r\n", b"\n")
        self.message = _as_message(self.raw)
        self.remote = remote
        self.warnings = warnings

    # -- the parts ---------------------------------------------------------------------------

    def headers(self) -> list[tuple[str, str]]:
        return [(name, value) for name in _HEADERS if (value := _header(self.message, name)) is not None]

    def plain(self) -> str | None:
        part = self.message.get_body(("plain",))
        return None if part is None else _text(part)

    def html_body(self) -> str | None:
        part = self.message.get_body(("html",))
        return None if part is None else _text(part)

    def tree(self) -> list[tuple[int, str, str]]:
        """(depth, content type, details) for every part, in order."""
        rows: list[tuple[int, str, str]] = []

        def walk(part: email.message.Message, depth: int) -> None:
            if part.is_multipart():
                children = cast(list[email.message.Message], part.get_payload())
                rows.append((depth, part.get_content_type(), f"{len(children)} parts"))
                for child in children:
                    walk(child, depth + 1)
                return
            details = [_size(len(_payload(part)))]
            disposition = part.get_content_disposition()
            if disposition:
                details.append(disposition)
            if part.get_filename():
                details.append(str(part.get_filename()))
            if part["Content-ID"] is not None:
                details.append(f"Content-ID {part['Content-ID']}")
            rows.append((depth, part.get_content_type(), ", ".join(details)))

        walk(self.message, 0)
        return rows

    def attachments(self) -> list[tuple[str, str, int]]:
        """(filename, content type, size) of each part sent as an attachment."""
        return [
            (str(part.get_filename() or "(no name)"), part.get_content_type(), len(_payload(part)))
            for part in self.message.walk()
            if not part.is_multipart() and part.get_content_disposition() == "attachment"
        ]

    def _attached_rows(self) -> list[tuple[str, str, str]]:
        return [(name, kind, _size(size)) for name, kind, size in self.attachments()]

    def document(self) -> str | None:
        """The HTML part as the iframe shows it: the content policy first, ``cid:`` images as data URIs."""
        body = self.html_body()
        if body is None:
            return None
        images: dict[str, str] = {}
        for part in self.message.walk():
            kind = part.get_content_type()
            if part["Content-ID"] is not None and _IMAGE_TYPE.fullmatch(kind):
                data = base64.b64encode(_payload(part)).decode("ascii")
                images[str(part["Content-ID"]).strip().strip("<>")] = f"data:{kind};base64,{data}"

        def resolve(match: re.Match[str]) -> str:
            return images.get(urllib.parse.unquote(match.group(1)), match.group(0))

        policy = _POLICY_REMOTE if self.remote else _POLICY
        # First in the document, so that it governs every load; a policy inside the message can only add limits.
        head = f'<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="{policy}">'
        return head + _CID.sub(resolve, body)

    # -- the two forms -----------------------------------------------------------------------

    def text(self) -> str:
        lines = [repr(self.warnings), ""] if self.warnings is not None else []
        lines += [f"{name}: {value}" for name, value in self.headers()]
        plain = self.plain()
        if plain is not None:
            lines += ["", plain.rstrip("\n")]
        elif (body := self.html_body()) is not None:
            lines += ["", "(no text/plain part; the text of the HTML part:)", html_to_text(body).rstrip("\n")]
        lines += ["", "MIME structure:"]
        lines += [f"{'  ' * (depth + 1)}{kind}  {details}" for depth, kind, details in self.tree()]
        attached = self.attachments()
        if attached:
            table = text_table(_ATTACHED, self._attached_rows())
            lines += ["", "attachments:"] + ["  " + line for line in table.split("\n")]
        return _CONTROL.sub("\ufffd", "\n".join(lines))

    def html(self) -> str:
        out = ['<div class="smtp-nb-message">']
        if self.warnings is not None:
            out.append(self.warnings._repr_html_())
        out.append(html_table(("header", "value"), self.headers()))
        document = self.document()
        if document is not None:
            loads = "remote content allowed" if self.remote else "remote content blocked"
            out.append(
                f'<iframe sandbox="" referrerpolicy="no-referrer" title="the HTML part ({loads})" '
                'style="width:100%;height:560px;border:1px solid #ccc;resize:vertical;background:#fff" '
                f'srcdoc="{_e(document)}">{_UNTRUSTED}</iframe>'
            )
        plain = self.plain()
        if plain is not None:
            out.append(
                "<details open><summary>plain-text part</summary>"
                f'<pre style="white-space:pre-wrap;max-height:20em;overflow:auto">{_e(plain)}</pre></details>'
            )
        else:
            out.append("<div>no text/plain part</div>")
        tree = "\n".join(f"{'  ' * depth}{kind}  {details}" for depth, kind, details in self.tree())
        out.append(f"<details open><summary>MIME structure</summary><pre>{_e(tree)}</pre></details>")
        attached = self.attachments()
        if attached:
            out.append("<div>attachments</div>" + html_table(_ATTACHED, self._attached_rows()))
        source = self.raw.decode("utf-8", "replace")
        out.append(
            f"<details><summary>raw source ({_e(_size(len(self.raw)))})</summary>"
            f'<pre style="white-space:pre-wrap;max-height:30em;overflow:auto">{_e(source)}</pre></details>'
        )
        out.append("</div>")
        return "".join(out)

    def __repr__(self) -> str:
        return self.text()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.text())

    def _repr_html_(self) -> str:
        return self.html()


def view(
    message: email.message.EmailMessage | bytes | Any, *, remote: bool = False, warnings: Warnings | None = None
) -> MessageView:
    """The view of ``message`` (an ``EmailMessage``, its bytes, or a message of the embedded server's inbox).

    ``remote=True`` lets the HTML load remote images and stylesheets (off by default: a remote load tells
    the sender the message was opened). ``warnings`` (from ``check()``) are shown first: a preview before
    sending is ``view(message, warnings=check(message, size_limit=...))``.
    """
    return MessageView(message, remote=remote, warnings=warnings)
