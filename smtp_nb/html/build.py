"""The MIME tree of an HTML message: text/plain and text/html alternatives, inline images, attachments.

mixed > alternative > (text/plain, related > (text/html, image/*)), each level present only when needed.
Boundaries come from the content, so the same message serializes to the same bytes every time.
"""

from __future__ import annotations

import email.message
import email.policy
import hashlib
import mimetypes
import os
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Union, cast

from .css import inline_css as _inline_css
from .errors import HTMLMailError
from .images import InlineImage
from .text import html_to_text

__all__ = ["build", "set_html_body"]

#: A file to attach: a path, or (filename, bytes).
Attachment = Union[str, "os.PathLike[str]", tuple[str, bytes]]


def _attachment(item: Attachment) -> tuple[str, bytes]:
    if isinstance(item, tuple):
        return item
    path = pathlib.Path(item).expanduser()
    try:
        return path.name, path.read_bytes()
    except OSError as exc:
        raise HTMLMailError(f"attachment {str(item)!r} cannot be read: {exc.strerror}") from None


def set_html_body(
    message: email.message.EmailMessage,
    html: str,
    *,
    text: str | None = None,
    images: Iterable[InlineImage] = (),
    attachments: Sequence[Attachment] = (),
    inline_css: bool = True,
) -> email.message.EmailMessage:
    """Give ``message`` (its headers already set) an HTML body; returns it.

    ``text`` is the plain-text alternative, made from the HTML when not given. ``images`` are the related
    parts the HTML refers to by ``cid:`` (see ``InlineImages``); ``attachments`` are paths or
    ``(filename, bytes)``. ``inline_css=False`` keeps the HTML as written. Raises ``HTMLMailError``
    (a missing css-inline, an unreadable attachment) before the message is touched.
    """
    files = [_attachment(item) for item in attachments]
    sent_html = _inline_css(html) if inline_css else html
    plain = html_to_text(html) if text is None else text
    related = list({image.cid: image for image in images}.values())

    digest = hashlib.sha256()
    for piece in (sent_html.encode(), plain.encode(), *(i.data for i in related), *(d for _, d in files)):
        digest.update(hashlib.sha256(piece).digest())
    token = digest.hexdigest()[:32]

    message.clear_content()
    message.set_content(plain)
    message.add_alternative(sent_html, subtype="html")
    if related:
        html_part = cast(email.message.EmailMessage, message.get_payload(1))
        for image in related:
            html_part.add_related(
                image.data, "image", image.subtype, cid=f"<{image.cid}>", filename=image.filename, disposition="inline"
            )
        html_part.set_param("type", "text/html")  # RFC 2387: the type of the root part
    for name, data in files:
        attach(message, name, data)
    for part in message.walk():
        if part is not message:
            del part["MIME-Version"]  # the email package adds it to parts it converts; it belongs on top only
        if part.is_multipart():
            part.set_boundary(f"=_{part.get_content_subtype()}_{token}")
    return message


def build(
    html: str,
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    text: str | None = None,
    images: Iterable[InlineImage] = (),
    attachments: Sequence[Attachment] = (),
    inline_css: bool = True,
) -> email.message.EmailMessage:
    """A new HTML message with ``headers`` (From, To, Subject, ...); the rest as in ``set_html_body``."""
    message = email.message.EmailMessage(policy=email.policy.default)
    for name, value in headers.items() if isinstance(headers, Mapping) else headers:
        message[name] = value
    return set_html_body(message, html, text=text, images=images, attachments=attachments, inline_css=inline_css)


def attach(message: email.message.EmailMessage, name: str, data: bytes) -> None:
    """Add ``data`` as an attachment named ``name``, typed from the name (octet-stream when unsure)."""
    kind, encoding = mimetypes.guess_type(name)
    if kind is None or encoding is not None:
        kind = "application/octet-stream"
    maintype, subtype = kind.split("/", 1)
    message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
