"""The check before sending: what mail programs will do to a message, as a list of warnings with what to do.

``%%smtp_send --dry-run``, the merge preview and Python code call ``check(message)`` and show the same list.
"""

from __future__ import annotations

import dataclasses
import email
import email.message
import email.policy
import html.parser
import re
import urllib.parse
from typing import Any

from ..rendering import html_table
from .text import html_to_text

__all__ = ["GMAIL_CLIP_BYTES", "CheckWarning", "Warnings", "check"]

#: Gmail shows only the first 102 KB of a message's HTML, and a "View entire message" link.
GMAIL_CLIP_BYTES = 102 * 1024

_REMOTE = re.compile(r"^\s*(https?:|//)", re.IGNORECASE)
_CSS_URL = re.compile(r"url\(\s*['\"]?\s*(https?:|//)", re.IGNORECASE)
#: Elements that load an image (or a video's poster) by themselves, and the attributes that name it.
_MEDIA = frozenset(("img", "source", "picture", "video", "audio", "input", "image"))
_MEDIA_ATTRIBUTES = ("src", "srcset", "poster", "background", "href", "xlink:href")


def _remote(value: str, candidates: bool = False) -> bool:
    """Whether ``value`` (with ``candidates``: a srcset, ``URL 2x, URL 3x``) loads anything from the network."""
    urls = [c.split()[0] for c in value.split(",") if c.split()] if candidates else [value]
    return any(_REMOTE.match(url) for url in urls)


@dataclasses.dataclass(frozen=True)
class CheckWarning:
    """One finding: a stable ``code``, what is wrong (``message``) and what to do (``advice``)."""

    code: str
    message: str
    advice: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}; {self.advice}"


class Warnings(list):  # type: ignore[type-arg]
    """The findings of ``check()``, a list of ``CheckWarning``; shows as a table in a notebook."""

    def codes(self) -> list[str]:
        return [w.code for w in self]

    def __repr__(self) -> str:
        if not self:
            return "check: no warnings"
        lines = [f"check: {len(self)} warning{'s' if len(self) > 1 else ''}"]
        for w in self:
            lines += [f"  {w.code}: {w.message}", f"    what to do: {w.advice}"]
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def _repr_html_(self) -> str:
        if not self:
            return "<div>check: no warnings</div>"
        heading = f"<div>check: {len(self)} warning{'s' if len(self) > 1 else ''}</div>"
        return heading + html_table(("code", "problem", "what to do"), [(w.code, w.message, w.advice) for w in self])


class _Scan(html.parser.HTMLParser):
    """What in an HTML body mail programs strip, block or need."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: dict[str, int] = {}
        self.stylesheets = 0
        self.no_alt = 0
        self.remote_images = 0
        self.http_links = 0
        self.cids: set[str] = set()
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self._in_style = tag == "style"
        if tag == "link" and "stylesheet" in values.get("rel", "").lower().split():
            self.stylesheets += 1
        if tag == "img":
            self.no_alt += "alt" not in values
        if tag in _MEDIA or "background" in values:
            self.remote_images += any(_remote(values[a], a == "srcset") for a in _MEDIA_ATTRIBUTES if a in values)
        if _CSS_URL.search(values.get("style", "")):
            self.remote_images += 1
        if tag == "a" and values.get("href", "").strip().lower().startswith("http:"):
            self.http_links += 1
        for value in values.values():
            if value.strip().lower().startswith("cid:"):
                self.cids.add(urllib.parse.unquote(value.strip()[4:]))

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            imports = re.findall(r"@import\b[^;]*;?", data, re.IGNORECASE)
            self.stylesheets += len(imports)
            self.remote_images += len(_CSS_URL.findall(re.sub(r"@import\b[^;]*;?", "", data, flags=re.IGNORECASE)))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _html_checks(body: str, content_ids: set[str]) -> list[CheckWarning]:
    found: list[CheckWarning] = []
    size = len(body.encode("utf-8", "replace"))
    if size > GMAIL_CLIP_BYTES:
        found.append(
            CheckWarning(
                "html-clipped",
                f"the HTML is {size:,} bytes; Gmail shows only the first 102 KB and hides the rest",
                "shorten it: fewer rows, shorter markup, or a link to the full report",
            )
        )
    scan = _Scan()
    scan.feed(body)
    scan.close()
    if scan.tags.get("script"):
        found.append(
            CheckWarning(
                "script",
                f"the HTML has {_plural(scan.tags['script'], '<script> element')}; mail programs remove them",
                "remove the scripts: a message cannot run code",
            )
        )
    forms = sum(scan.tags.get(t, 0) for t in ("form", "input", "select", "textarea", "button"))
    if forms:
        found.append(
            CheckWarning(
                "form",
                f"the HTML has {_plural(forms, 'form element')}; most mail programs disable forms",
                "link to a form on a web page instead",
            )
        )
    if scan.stylesheets:
        found.append(
            CheckWarning(
                "external-stylesheet",
                f"the HTML loads {_plural(scan.stylesheets, 'external stylesheet')} (<link> or @import); "
                "mail programs drop them",
                "put the CSS in a <style> block, which is inlined when the message is built",
            )
        )
    if scan.no_alt:
        found.append(
            CheckWarning(
                "image-without-alt",
                f"{_plural(scan.no_alt, 'image')} without alt text, shown when images are blocked and read by "
                "screen readers",
                'add alt="what it shows" (alt="" for decoration)',
            )
        )
    if scan.remote_images:
        found.append(
            CheckWarning(
                "remote-image",
                f"{_plural(scan.remote_images, 'image')} loaded from the network; most mail programs block them "
                "until the reader allows it",
                "attach them with inline_image() so that they show at once",
            )
        )
    if scan.http_links:
        found.append(
            CheckWarning(
                "insecure-link",
                f"{_plural(scan.http_links, 'link')} over http:, flagged or rewritten by some mail programs",
                "use https: links",
            )
        )
    missing = sorted(scan.cids - content_ids)
    if missing:
        found.append(
            CheckWarning(
                "missing-inline-image",
                f"the HTML refers to {', '.join('cid:' + c for c in missing)} but the message has no such part",
                "attach each image with inline_image() and pass it to build()",
            )
        )
    return found


def _as_message(message: email.message.EmailMessage | bytes) -> email.message.EmailMessage:
    if isinstance(message, (bytes, bytearray)):
        return email.message_from_bytes(bytes(message), policy=email.policy.default)
    return message


def _text(part: email.message.MIMEPart) -> str:
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError, ValueError):
        data = part.get_payload(decode=True)
        return data.decode("utf-8", "replace") if isinstance(data, bytes) else ""


def check(message: email.message.EmailMessage | bytes, *, size_limit: int | None = None) -> Warnings:
    """What may go wrong with ``message`` once sent; ``size_limit`` is the server's SIZE (None: unknown)."""
    message = _as_message(message)
    found = Warnings()
    html_part = message.get_body(("html",))
    plain_part = message.get_body(("plain",))
    if html_part is not None:
        ids = {str(p["Content-ID"]).strip().strip("<>") for p in message.walk() if p["Content-ID"] is not None}
        found += _html_checks(_text(html_part), ids)
        if plain_part is None:
            found.append(
                CheckWarning(
                    "no-plain-text",
                    "the message has no text/plain part; some readers and spam filters need one",
                    "add one: smtp_nb.html.build() makes it from the HTML",
                )
            )
        elif not _text(plain_part).strip() and html_to_text(_text(html_part)).strip():
            found.append(
                CheckWarning(
                    "empty-plain-text",
                    "the text/plain part is empty though the HTML has text: readers that show it see nothing",
                    "write the text in the body, or leave it empty in a merge: the text is then made from the HTML",
                )
            )
    elif plain_part is None:
        found.append(
            CheckWarning(
                "no-plain-text",
                "the message has no text body at all",
                "give it a text/plain part (and an HTML part if you like)",
            )
        )
    if size_limit:
        size = len(message.as_bytes(policy=email.policy.SMTP))
        if size > size_limit:
            found.append(
                CheckWarning(
                    "too-large",
                    f"the message is {size:,} bytes, over the server's limit (SIZE) of {size_limit:,} bytes",
                    "make images smaller or send large files as links",
                )
            )
    if message["Date"] is None:
        found.append(
            CheckWarning(
                "missing-date",
                "no Date header; some servers add the time they received it, others refuse the message",
                "add one: email.utils.formatdate(localtime=True)",
            )
        )
    if message["Message-ID"] is None:
        found.append(
            CheckWarning(
                "missing-message-id",
                "no Message-ID header; spam filters count this against the message and replies cannot thread",
                "add one: email.utils.make_msgid(domain='your domain')",
            )
        )
    return found
