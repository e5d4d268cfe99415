"""The sans-IO core: bytes in, replies out; commands and message data out as bytes.

Nothing here touches a socket, so the parser and encoders are tested and
fuzzed on their own, and pipelining is simply "encode several, parse several".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from .addresses import check_argument
from .errors import SMTPProtocolError
from .response import SMTPResponse

__all__ = [
    "MAX_LINE_LENGTH",
    "MAX_REPLY_LENGTH",
    "ReplyParser",
    "bdat_command",
    "dot_stuff",
    "encode_command",
    "has_option",
    "mail_command",
    "options_bytes",
    "rcpt_command",
    "normalize_line_endings",
    "parse_ehlo",
]

#: Longest reply line accepted (RFC 5321 asks for 512; real banners are longer).
MAX_LINE_LENGTH = 8192
#: Longest whole reply, multi-line continuations included: bounds memory when a
#: server streams ``250-`` lines forever.
MAX_REPLY_LENGTH = 65536

_LINE_ENDING = re.compile(rb"\r\n|\r|\n")
_new_tuple = tuple.__new__  # builds an SMTPResponse without NamedTuple's Python-level __new__
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


class ReplyParser:
    """Turns the bytes a server sends into complete ``SMTPResponse`` objects.

    Accepts CRLF or bare LF line endings and code-only lines (``250``); refuses
    anything that is not ``DDD``, ``DDD text`` or ``DDD-text`` with
    ``SMTPProtocolError``, as well as lines and replies over the size limits.
    """

    __slots__ = ("_lines", "_partial", "_size")

    def __init__(self) -> None:
        self._partial = b""
        self._lines: list[bytes] = []
        self._size = 0

    def clear(self) -> None:
        """Forget everything buffered (used when TLS starts: RFC 3207 section 4.2)."""
        self._partial = b""
        self._lines = []
        self._size = 0

    @property
    def has_partial(self) -> bool:
        """True when part of a reply has arrived but not its end."""
        return bool(self._partial or self._lines)

    def feed(self, data: bytes) -> list[SMTPResponse]:
        """Add received bytes; return the replies they complete, in order."""
        if self._partial:
            data = self._partial + data
        lines = data.split(b"\n")
        rest = lines.pop()  # after the last line ending: the start of a line still to come
        if len(rest) > MAX_LINE_LENGTH:
            self.clear()
            raise SMTPProtocolError(f"the server sent a reply line longer than {MAX_LINE_LENGTH} bytes")
        self._partial = rest
        replies: list[SMTPResponse] = []
        for line in lines:
            code = line[:3]
            if (
                line[3:4] == b" "
                and not self._lines
                and code.isdigit()
                and 50 <= code[0] <= 53  # "2".."5"
                and len(line) <= MAX_LINE_LENGTH
            ):  # the common one-line reply, in one step
                message = line[4:].strip().decode("utf-8", "backslashreplace")
                replies.append(_new_tuple(SMTPResponse, (int(code), message)))
                continue
            if len(line) > MAX_LINE_LENGTH:
                self.clear()
                raise SMTPProtocolError(f"the server sent a reply line longer than {MAX_LINE_LENGTH} bytes")
            if line[-1:] == b"\r":
                line = line[:-1]
            code, separator = line[:3], line[3:4]
            if not (len(code) == 3 and code.isdigit() and code[0] in b"2345" and separator in b" -"):
                self.clear()
                shown = line[:80].decode("ascii", "backslashreplace")
                raise SMTPProtocolError(f"the server sent something that is not an SMTP reply: {shown!r}")
            if separator == b"-":
                self._size += len(line)
                if self._size > MAX_REPLY_LENGTH:
                    self.clear()
                    raise SMTPProtocolError(f"the server sent a multi-line reply longer than {MAX_REPLY_LENGTH} bytes")
                self._lines.append(line[4:].strip())
                continue
            if self._lines:
                self._lines.append(line[4:].strip())
                text = b"\n".join(self._lines)
                self._lines = []
                self._size = 0
            else:
                text = line[4:].strip()
            replies.append(SMTPResponse(int(code), text.decode("utf-8", "backslashreplace")))
        return replies


def encode_command(*parts: bytes) -> bytes:
    """One command line: the parts joined by spaces, CRLF-terminated.

    Raises ``ValueError`` if a part holds a control character, so that no
    argument can end the line and inject a second command.
    """
    line = b" ".join(parts)
    bad = _CONTROL.search(line)
    if bad:
        raise ValueError(
            f"command argument contains the control character {bad.group()!r}; "
            "CR, LF and NUL are refused because they could inject commands"
        )
    return line + b"\r\n"


def normalize_line_endings(data: bytes) -> bytes:
    """``data`` with every line ending as CRLF and a final CRLF (what SMTP transmits).

    Returns ``data`` itself, uncopied, when it is already in that form.
    """
    if b"\r" not in data:
        data = data.replace(b"\n", b"\r\n")
    elif not (data.count(b"\r\n") == data.count(b"\r") == data.count(b"\n")):
        data = _LINE_ENDING.sub(b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def dot_stuff(normalized: bytes) -> bytes:
    """Double each line-initial '.' of CRLF-normalized data (RFC 5321 section 4.5.2)."""
    if normalized.startswith(b"."):
        normalized = b"." + normalized
    return normalized.replace(b"\n.", b"\n..")


def parse_ehlo(message: str) -> tuple[dict[str, str], list[str]]:
    """The extensions (lower-case keyword → parameters) and AUTH methods of an EHLO reply.

    The first line is the server's name and is skipped; the old ``AUTH=...``
    form is understood; empty lines (smtp-sink ends with ``250 ``) are ignored.
    """
    extensions: dict[str, str] = {}
    auth_methods: list[str] = []
    for line in message.split("\n")[1:]:
        line = line.strip()
        if not line:
            continue
        if line[:5].lower() == "auth=":
            keyword, params = "auth", line[5:]
        else:
            keyword, _, params = line.partition(" ")
            keyword = keyword.lower()
        params = params.strip()
        if keyword == "auth":
            for method in params.lower().split():
                if method not in auth_methods:
                    auth_methods.append(method)
            params = " ".join(auth_methods).upper() if params else extensions.get("auth", "")
        extensions[keyword] = params
    return extensions, auth_methods


def options_bytes(options: Iterable[str] | None, what: str) -> list[bytes]:
    """ESMTP parameters (``SIZE=100``, ``BODY=8BITMIME``) checked and encoded; ``ValueError`` names a bad one."""
    encoded = []
    for option in options or ():
        check_argument(option, what)
        if not option or " " in option or not option.isascii():
            raise ValueError(f"{what} {option!r} must be one ASCII word such as BODY=8BITMIME")
        encoded.append(option.encode("ascii"))
    return encoded


def has_option(options: Sequence[str], name: str) -> bool:
    """True if ``options`` holds the parameter ``name`` (``SIZE`` matches ``SIZE=100``), in any case."""
    name = name.upper()
    return any(o.upper().split("=", 1)[0] == name for o in options)


def mail_command(mailbox: bytes, params: Sequence[bytes] = ()) -> bytes:
    """``MAIL FROM:<mailbox> params``: ``mailbox`` already validated and encoded (empty for ``<>``)."""
    return b"MAIL FROM:<" + mailbox + b">" + b"".join([b" " + p for p in params]) + b"\r\n"


def rcpt_command(mailbox: bytes, params: Sequence[bytes] = ()) -> bytes:
    """``RCPT TO:<mailbox> params``: ``mailbox`` already validated and encoded."""
    return b"RCPT TO:<" + mailbox + b">" + b"".join([b" " + p for p in params]) + b"\r\n"


def bdat_command(size: int, last: bool = True) -> bytes:
    """``BDAT size [LAST]`` (RFC 3030): announces a chunk of exactly ``size`` bytes."""
    return b"BDAT %d LAST\r\n" % size if last else b"BDAT %d\r\n" % size
