"""A message checked against the server's extensions and turned into its commands, before any byte is sent.

Pure functions: the server's EHLO keywords in, a ``Prepared`` message (or the reason it cannot go) out.
"""

from __future__ import annotations

import email.message
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Optional, Union

from .addresses import needs_smtputf8, parse_address
from .errors import SMTPMessageTooLarge, SMTPNotSupported
from .message import extract_recipients, extract_sender, flatten_message
from .protocol import dot_stuff, has_option, mail_command, normalize_line_endings, options_bytes, rcpt_command
from .transaction import Delivery, Prepared

__all__ = ["Server", "flatten", "max_message_size", "message_bytes", "prepare", "prepare_item"]


class Server:
    """What preparing a message needs to know of the server: its EHLO keywords and how to name it.

    ``where`` is a string, or a function giving it (called only for an error message).
    """

    __slots__ = ("_where", "extensions")

    def __init__(self, extensions: dict[str, str], where: str | Callable[[], str]) -> None:
        self.extensions = extensions
        self._where = where

    @property
    def where(self) -> str:
        return self._where if isinstance(self._where, str) else self._where()


def max_message_size(extensions: dict[str, str]) -> int | None:
    """The server's SIZE limit in bytes, or None if it set none."""
    value = extensions.get("size", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def message_bytes(message: Union[str, bytes, bytearray, memoryview]) -> bytes:
    if isinstance(message, str):
        return message.encode("utf-8")
    if isinstance(message, bytes):
        return message
    if isinstance(message, (bytearray, memoryview)):
        return bytes(message)
    raise TypeError(
        f"the message must be str or bytes, not {type(message).__name__}; use send_message() for email.message objects"
    )


def prepare(
    server: Server,
    sender: str,
    recipients: Union[str, Sequence[str]],
    message: Union[str, bytes],
    mail_options: Optional[Iterable[str]],
    rcpt_options: Optional[Iterable[str]],
    *,
    index: int = 0,
    tag: Any = None,
) -> Prepared:
    """Validate a message against the server's extensions and encode its commands; nothing is sent.

    This runs once per message on the hot path: the command lines are
    built from already validated parts without a second scan.
    """
    if isinstance(recipients, str):
        recipients = [recipients]
    boxes = [parse_address(r) for r in recipients]
    if not boxes:
        raise ValueError("no recipients: give at least one address")
    sender_box = parse_address(sender, allow_empty=True)
    mail_opts = list(mail_options) if mail_options else []
    body = normalize_line_endings(message_bytes(message))
    extensions = server.extensions
    if not (sender_box.isascii() and all(box.isascii() for box in boxes)):
        if "smtputf8" not in extensions:
            raise SMTPNotSupported(
                "SMTPUTF8 is not supported by this server: an address is not ASCII "
                f"({', '.join(a for a in [sender_box, *boxes] if not a.isascii())}) and {server.where} "
                "does not offer SMTPUTF8; nothing was sent"
            )
        if not has_option(mail_opts, "SMTPUTF8"):
            mail_opts.append("SMTPUTF8")
    elif mail_opts and has_option(mail_opts, "SMTPUTF8") and "smtputf8" not in extensions:
        raise SMTPNotSupported(
            f"SMTPUTF8 is not supported by this server: the SMTPUTF8 option was given and {server.where} "
            "does not offer SMTPUTF8; nothing was sent"
        )
    if not body.isascii() and not has_option(mail_opts, "BODY"):
        if "8bitmime" not in extensions:
            raise SMTPNotSupported(
                f"the message holds 8-bit data and {server.where} does not offer 8BITMIME; "
                "send an EmailMessage with send_message(), which re-encodes it as 7-bit, or "
                "encode the body yourself (quoted-printable or base64)"
            )
        mail_opts.append("BODY=8BITMIME")
    mail_params = options_bytes(mail_opts, "mail option")
    if "size" in extensions:
        limit = max_message_size(extensions)
        if limit is not None and len(body) > limit:
            raise SMTPMessageTooLarge(len(body), limit)
        if not has_option(mail_opts, "SIZE"):
            mail_params.insert(0, b"SIZE=%d" % len(body))
    rcpt_params = options_bytes(rcpt_options, "rcpt option")
    mail_line = mail_command(sender_box.encode("utf-8"), mail_params)
    rcpt_lines = [rcpt_command(box.encode("utf-8"), rcpt_params) for box in boxes]
    chunked = "chunking" in extensions
    delivery = Delivery(index=index, tag=tag, sender=sender_box, recipients=tuple(boxes))
    return Prepared(delivery, mail_line, rcpt_lines, body if chunked else dot_stuff(body), chunked)


def flatten(
    server: Server,
    message: email.message.Message,
    sender: Optional[str],
    recipients: Optional[Union[str, Sequence[str]]],
) -> tuple[str, list[str], bytes]:
    """The envelope (from the headers unless given) and the bytes of an ``email.message`` object."""
    if sender is None:
        sender = extract_sender(message)
        if sender is None:
            raise ValueError("the message has no From or Sender header: pass sender=")
    if recipients is None:
        recipients = extract_recipients(message)
        if not recipients:
            raise ValueError("the message has no To, Cc or Bcc header: pass recipients=")
    elif isinstance(recipients, str):
        recipients = [recipients]
    recipients = list(recipients)
    utf8 = needs_smtputf8(sender, *recipients)
    if utf8 and "smtputf8" not in server.extensions:
        raise SMTPNotSupported(
            "SMTPUTF8 is not supported by this server: an address is not ASCII and "
            f"{server.where} does not offer SMTPUTF8; nothing was sent"
        )
    flat = flatten_message(message, utf8=utf8, eight_bit="8bitmime" in server.extensions)
    return sender, recipients, flat


def prepare_item(
    server: Server,
    item: Any,
    index: int,
    mail_options: Optional[Sequence[str]],
    rcpt_options: Optional[Sequence[str]],
) -> Prepared | Delivery:
    """One item of ``send_many()`` prepared, or a failed ``Delivery`` saying why it cannot go."""
    tag = None
    sender: Any = None
    recipients: Any = ()
    try:
        if isinstance(item, tuple) and len(item) in (3, 4):
            sender, recipients, body = item[:3]
            tag = item[3] if len(item) == 4 else None
            return prepare(server, sender, recipients, body, mail_options, rcpt_options, index=index, tag=tag)
        if isinstance(item, email.message.Message):
            sender, recipients, flat = flatten(server, item, None, None)
            return prepare(server, sender, recipients, flat, mail_options, rcpt_options, index=index)
        raise TypeError(
            "each message must be an email.message.Message or a (sender, recipients, message[, tag]) "
            f"tuple, not {type(item).__name__}"
        )
    except (ValueError, TypeError, SMTPNotSupported) as exc:
        listed = (recipients,) if isinstance(recipients, str) else tuple(recipients or ())
        return Delivery(index=index, tag=tag, sender=str(sender or ""), recipients=listed, error=exc)
