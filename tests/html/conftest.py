"""Helpers for the HTML mail tests: messages go through bytes and the standard library's parser."""

from __future__ import annotations

import email
import email.message
import email.policy


def parsed(message: email.message.EmailMessage) -> email.message.EmailMessage:
    """``message`` as a recipient's program reads it: serialized with CRLF as sent, then parsed again."""
    return from_wire(message.as_bytes(policy=email.policy.SMTP))


def from_wire(data: bytes) -> email.message.EmailMessage:
    """Bytes as sent (CRLF line ends) parsed as a mail program stores them (local line ends)."""
    return email.message_from_bytes(data.replace(b"\r\n", b"\n"), policy=email.policy.default)  # type: ignore[return-value]


def shape(part: email.message.Message) -> object:
    """The MIME tree as nested (type, [children]) / type, for comparing structures at a glance."""
    if part.is_multipart():
        return (part.get_content_type(), [shape(p) for p in part.get_payload()])
    return part.get_content_type()
