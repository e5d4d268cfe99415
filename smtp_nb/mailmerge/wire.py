"""A rendered merge message and its bytes on the wire.

The standard library's ``EmailMessage`` spends about a quarter of a
millisecond parsing each header it is given, which made a merge CPU-bound at
a few hundred messages a second. A text-only message (the common merge) is
written here directly: RFC 2047 encoding for non-ASCII headers (display names
only, in address headers), 7bit / 8bit / quoted-printable bodies. Messages
with an HTML part or attachments go through ``EmailMessage``; both paths
parse back to the same headers and content (tests/mailmerge/test_wire.py).
"""

from __future__ import annotations

import dataclasses
import email
import email.charset
import email.errors
import email.policy
import email.quoprimime
import email.utils
import functools
import hashlib
import math
import re
from email.header import Header
from email.message import EmailMessage
from typing import Any

from ..client.addresses import parse_address
from ..client.message import header_addresses
from ..html import InlineImage, set_html_body
from ..html.build import attach

__all__ = ["Attachment", "Rendered", "split_addresses"]

_UTF8 = email.charset.Charset("utf-8")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*")
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+")  # atext: a word that needs no quoting or encoding
_EXOTIC = re.compile(r"[():;\\]|=\?")  # comments, groups, quoted pairs, encoded words: the email package's


@functools.lru_cache(maxsize=512)  # the same From on every row is parsed once
def split_addresses(value: str) -> tuple[tuple[str, str], ...]:
    """``(display name, mailbox)`` pairs of an address-list header value, mailboxes validated.

    Handles ``a@x``, ``Name <a@x>`` and ``"Quoted, Name" <a@x>`` lists
    directly; comments, groups and encoded words go to the email package.
    Raises ``ValueError`` for a mailbox that is not a valid address.
    """
    if _EXOTIC.search(value):
        return tuple(_split_with_email_package(value))
    pieces: list[str] = []
    current: list[str] = []
    quoted = angle = False
    for char in value if "," in value else ():  # one piece unless a comma may separate mailboxes
        if char == '"' and not angle:
            quoted = not quoted
        elif char == "<" and not quoted:
            angle = True
        elif char == ">" and not quoted:
            angle = False
        elif char == "," and not quoted and not angle:
            pieces.append("".join(current))
            current = []
            continue
        current.append(char)
    pieces.append("".join(current) if "," in value else value)
    found = []
    for piece in (p.strip(" \t") for p in pieces):  # not Unicode spaces: parse_address judges those
        if not piece:
            continue
        if piece.endswith(">") and "<" in piece:
            name, _, mailbox = piece[:-1].rpartition("<")
            name = name.strip()
            if len(name) >= 2 and name[0] == name[-1] == '"':
                name = name[1:-1]
        else:
            name, mailbox = "", piece
        if '"' in name or "<" in name or ">" in name:
            return tuple(_split_with_email_package(value))
        found.append((name, parse_address(mailbox)))
    return tuple(found)


def _split_with_email_package(value: str) -> list[tuple[str, str]]:
    try:
        found = header_addresses("To", value)
    except (AttributeError, IndexError, TypeError, email.errors.HeaderParseError):  # e.g. a group mid-list
        raise ValueError(f"{value!r} is not a list of email addresses") from None
    return [(a.display_name, parse_address(a.addr_spec)) for a in found]


def _encode_header(name: str, value: str) -> str:
    line = f"{name}: {value}"
    if value.isascii() and len(line) <= 78:
        return line
    if value.isascii():
        return f"{name}: " + Header(value, "us-ascii", header_name=name).encode(linesep="\r\n")
    # Lines of at most 76 characters keep each encoded word within RFC 2047's 75.
    return f"{name}: " + Header(value, "utf-8", maxlinelen=76, header_name=name).encode(linesep="\r\n")


def _format_address(name: str, mailbox: str) -> str:
    if not name:
        return mailbox
    if _PLAIN_NAME.fullmatch(name) and mailbox.isascii():
        return f"{name} <{mailbox}>"  # what formataddr() gives a name of letters, digits and spaces
    if mailbox.isascii():
        formatted = email.utils.formataddr((name, mailbox), charset="utf-8")
        if name.isascii() or len(formatted) - len(mailbox) - 3 <= 75:
            return formatted
        # formataddr() writes a non-ASCII name as one encoded word however long; RFC 2047 allows 75.
        return f"{_encoded_phrase(name)} <{mailbox}>"
    # A non-ASCII mailbox travels raw under SMTPUTF8, and so may its display name.
    special = any(c in name for c in ',.;:<>@"()[]\\')
    shown = '"' + email.utils.quote(name) + '"' if special else name
    return f"{shown} <{mailbox}>"


def _encoded_phrase(name: str) -> str:
    """A long non-ASCII display name as plain, quoted and encoded words, each encoded word at most 75 characters.

    ASCII words stay readable (as they are, or quoted if they hold specials);
    each run of other words becomes encoded words cut after a space, the
    space inside the word before the cut (the whitespace between two encoded
    words is not part of the text). Only a single word too long for one
    encoded word is cut inside the word.
    """
    parts: list[str] = []
    run: list[str] = []
    for word in name.split(" "):
        if word and word.isascii() and word.isprintable() and "=?" not in word:
            if run:
                parts += _encoded_words(" ".join(run))
                run = []
            parts.append(word if _ATOM.fullmatch(word) else '"' + email.utils.quote(word) + '"')
        else:
            run.append(word)
    if run:
        parts += _encoded_words(" ".join(run))
    return " ".join(parts)


def _encoded_words(text: str) -> list[str]:
    words = []
    while text:
        size = len(text)
        while len(_UTF8.header_encode(text[:size])) > 75:
            size -= 1
        if size < len(text):
            space = text.rfind(" ", 0, size)
            size = space + 1 if space >= 0 else max(size, 1)
        words.append(_UTF8.header_encode(text[:size]))
        text = text[size:]
    return words


def _encode_addresses(name: str, pairs: list[tuple[str, str]]) -> str:
    return _fold(f"{name}: " + ", ".join(_format_address(n, a) for n, a in pairs))


def _fold(line: str) -> str:
    """``line`` folded at spaces into lines of at most 78 octets, where a space allows (RFC 5322 2.2.3).

    A fold only turns a space into CRLF + space, so unfolding gives ``line`` back.
    """
    if len(line) <= 78 and (line.isascii() or len(line.encode("utf-8")) <= 78):
        return line
    words = line.split(" ")
    lines, current = [], words[0]
    size = len(current.encode("utf-8"))
    for word in words[1:]:
        length = len(word.encode("utf-8"))
        if size + 1 + length > 78 and current.strip():  # never leave a line of whitespace alone
            lines.append(current)
            current, size = " " + word, 1 + length
        else:
            current += " " + word
            size += 1 + length
    lines.append(current)
    return "\r\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Attachment:
    """A file to attach, as ``stat`` saw it when the row was checked (it is read only when the message is sent)."""

    path: str  # resolved
    name: str
    size: int
    mtime_ns: int


@dataclasses.dataclass
class Rendered:
    """One row's message, rendered: header values in template order, text, optional HTML and attachments."""

    headers: list[tuple[str, str]]
    addresses: dict[str, list[tuple[str, str]]]  # lower-case header name → (name, mailbox) pairs
    text: str
    html: str | None = None
    attachments: list[Attachment] = dataclasses.field(default_factory=list)
    notes: list[Any] = dataclasses.field(default_factory=list)  # Problems allowed but worth a look in the preview
    images: list[InlineImage] = dataclasses.field(default_factory=list)  # related parts the HTML refers to (cid:)
    #: ``digest()``, once worked out: a merge asks for it in its check, its decision and its journal record.
    _digest: str = dataclasses.field(default="", init=False, repr=False, compare=False)

    @property
    def sender(self) -> str:
        for name in ("sender", "from"):
            if self.addresses.get(name):
                return self.addresses[name][0][1]
        return ""

    @property
    def recipients(self) -> list[str]:
        return [mailbox for name in ("to", "cc", "bcc") for _, mailbox in self.addresses.get(name, [])]

    def with_headers(self, **extra: str) -> Rendered:
        """A copy with headers set (replacing ones of the same name), e.g. Message-ID and Date."""
        names = {k.replace("_", "-").lower() for k in extra}
        headers = [(n, v) for n, v in self.headers if n.lower() not in names]
        headers += [(k.replace("_", "-"), v) for k, v in extra.items()]
        return dataclasses.replace(self, headers=headers)

    def digest(self) -> str:
        """What this row's message is, without Date and Message-ID: changes when anything sent would change.

        Attachments count by name, size and modification time (from ``stat``; the files are not read).
        Worked out once: a rendered message is not changed afterwards (``with_headers`` makes a copy).
        """
        if self._digest:
            return self._digest
        hashed = hashlib.sha256()
        for name, value in self.headers:
            if name.lower() not in ("date", "message-id"):
                hashed.update(f"{name.lower()}: {value}\0".encode())
        hashed.update(f"\0{self.text}\0{self.html}\0".encode())
        for a in self.attachments:
            hashed.update(f"{a.name}\0{a.size}\0{a.mtime_ns}\0".encode())
        self._digest = hashed.hexdigest()[:32]
        return self._digest

    def size_bound(self) -> int:
        """At least ``estimated_size()``, without serializing: what a server's SIZE is compared with first.

        No encoding makes an octet longer than four (quoted-printable "=XX" plus its soft line breaks, base64
        in encoded words and folding are less); each part adds headers and a boundary; files go in base64.
        """
        text = sum(len(n) + len(v.encode()) + 4 for n, v in self.headers) + len(self.text.encode())
        text += len(self.html.encode()) if self.html is not None else 0
        files = [a.size for a in self.attachments] + [len(i.data) for i in self.images]
        return 4 * text + sum(math.ceil(size / 57) * 78 + 400 for size in files) + 2000

    def estimated_size(self, *, eight_bit: bool = True) -> int:
        """The message's size on the wire, attachments counted from their sizes (base64), without reading them."""
        bare = dataclasses.replace(self, attachments=[]) if self.attachments else self
        size = len(bare.to_bytes(eight_bit=eight_bit))
        return size + sum(math.ceil(a.size / 57) * 78 + 200 for a in self.attachments)

    def to_bytes(self, *, eight_bit: bool = True) -> bytes:
        """The message as sent: CRLF line endings, without Bcc."""
        if self.html is not None or self.attachments or self.images or not _plain_body_ok(self.text):
            return self._via_email_package(eight_bit)
        lines = []
        for name, value in self.headers:
            lower = name.lower()
            if lower == "bcc":
                continue
            if lower in self.addresses:
                lines.append(_encode_addresses(name, self.addresses[lower]))
            else:
                lines.append(_encode_header(name, value))
        text = self.text.replace("\r\n", "\n").replace("\r", "\n")
        if not text.endswith("\n"):
            text += "\n"
        if text.isascii():
            body, encoding = text.encode("ascii"), "7bit"
        elif eight_bit:
            body, encoding = text.encode("utf-8"), "8bit"
        else:
            # quoprimime encodes one character per octet: hand it the UTF-8 octets as Latin-1 text.
            octets = text.encode("utf-8").decode("latin-1")
            body = email.quoprimime.body_encode(octets, maxlinelen=76, eol="\n").encode("ascii")
            encoding = "quoted-printable"
        lines += [
            'Content-Type: text/plain; charset="utf-8"',
            f"Content-Transfer-Encoding: {encoding}",
            "MIME-Version: 1.0",
        ]
        return "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n" + body.replace(b"\n", b"\r\n")

    def to_message(self, *, attachments: bool = True) -> EmailMessage:
        """An ``EmailMessage`` of exactly what is sent (Bcc kept), for inspection; ``attachments=False`` for
        previews (the files are then not read)."""
        shown = self if attachments else dataclasses.replace(self, attachments=[])
        message = email.message_from_bytes(shown.to_bytes().replace(b"\r\n", b"\n"), policy=email.policy.default)
        for value in (v for n, v in self.headers if n.lower() == "bcc"):
            message["Bcc"] = value
        return message  # type: ignore[return-value]

    def _via_email_package(self, eight_bit: bool) -> bytes:
        message = EmailMessage()
        for name, value in self.headers:
            if name.lower() != "bcc":
                message[name] = value
        files = []
        for attachment in self.attachments:
            with open(attachment.path, "rb") as handle:
                files.append((attachment.name, handle.read()))
        if self.html is not None:
            # The template inlined the CSS before sanitising (the sanitiser drops <style>): build the structure only.
            set_html_body(message, self.html, text=self.text, images=self.images, attachments=files, inline_css=False)
        else:
            message.set_content(self.text)
            for name, data in files:
                attach(message, name, data)
        policy = email.policy.SMTP if eight_bit else email.policy.SMTP.clone(cte_type="7bit")
        return message.as_bytes(policy=policy)


def _plain_body_ok(text: str) -> bool:
    """Short enough lines for 7bit/8bit (998 octets); longer ones take the email package's encodings.

    Lines as they go on the wire: only CR and LF end one (a form feed or U+2028 does not).
    """
    octets = text.encode("utf-8")
    return len(octets) <= 998 or max(map(len, octets.replace(b"\r", b"\n").split(b"\n"))) <= 998
