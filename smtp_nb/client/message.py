"""From an ``email.message.Message`` to an envelope (sender, recipients) and wire bytes."""

from __future__ import annotations

import copy
import email.generator
import email.message
import email.policy
import io
from email.headerregistry import Address, Group
from typing import Any

from .addresses import parse_address

__all__ = ["extract_recipients", "extract_sender", "flatten_message", "header_addresses"]

_HEADER_FACTORY = email.policy.default.header_factory


def _resent_prefix(message: email.message.Message) -> str:
    dates = message.get_all("Resent-Date") or []
    if len(dates) > 1:
        raise ValueError("the message has more than one Resent- block; give sender= and recipients= explicitly")
    return "Resent-" if dates else ""


def header_addresses(name: str, value: object) -> list[Address]:
    """The addresses of one address header (parsed, or its text), groups flattened, as the email package reads them."""
    header: Any = value if hasattr(value, "addresses") else _HEADER_FACTORY(name, str(value))
    found: list[Address] = []
    for item in header.addresses:
        found.extend(item.addresses if isinstance(item, Group) else (item,))
    return found


def _addresses(name: str, value: object) -> list[str]:
    """The mailboxes of one address header, each validated."""
    return [parse_address(address.addr_spec) for address in header_addresses(name, value)]


def extract_sender(message: email.message.Message) -> str | None:
    """The envelope sender: ``Sender`` if present, else ``From`` (their ``Resent-`` forms for a resent message)."""
    prefix = _resent_prefix(message)
    for name in (f"{prefix}Sender", f"{prefix}From"):
        value = message.get(name)
        if value is not None:
            found = _addresses(name, value)
            if found:
                return found[0]
    return None


def extract_recipients(message: email.message.Message) -> list[str]:
    """The envelope recipients: ``To``, ``Cc`` and ``Bcc`` (the ``Resent-`` forms for a resent message)."""
    prefix = _resent_prefix(message)
    recipients: list[str] = []
    for name in (f"{prefix}To", f"{prefix}Cc", f"{prefix}Bcc"):
        for value in message.get_all(name, []):
            recipients.extend(_addresses(name, value))
    return recipients


def flatten_message(message: email.message.Message, *, utf8: bool = False, eight_bit: bool = True) -> bytes:
    """The message as it goes on the wire: CRLF line endings, no ``Bcc``/``Resent-Bcc``.

    ``utf8`` writes non-ASCII headers raw (the server must offer SMTPUTF8);
    ``eight_bit=False`` re-encodes 8-bit parts as quoted-printable or base64.
    """
    message = copy.copy(message)
    del message["Bcc"]
    del message["Resent-Bcc"]
    policy: Any
    if isinstance(message, email.message.EmailMessage):
        policy = email.policy.SMTPUTF8 if utf8 else email.policy.SMTP
    else:
        policy = email.policy.compat32.clone(linesep="\r\n")
    if not eight_bit:
        policy = policy.clone(cte_type="7bit")
    with io.BytesIO() as buffer:
        email.generator.BytesGenerator(buffer, policy=policy).flatten(message)
        return buffer.getvalue()
