"""Credential redaction, in one place: the ``Secret`` wrapper, AUTH lines as shown, and replies scrubbed of echoes.

Every credential that could show up in a repr, an exception, the transcript or the log is replaced by ``REDACTED``.
"""

from __future__ import annotations

import base64
import hmac
import re

from .auth import plain_encode, xoauth2_encode
from .response import SMTPResponse

__all__ = ["REDACTED", "Scrubber", "Secret", "redact_command"]

REDACTED = "********"

#: Between two characters of an echoed secret: nothing, or the end of one reply line and the start of the next.
_LINE_BREAK = r"(?:[ \t]*\n[ \t]*)?"


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


class Secret:
    """A password or token: usable by the client, never shown by ``repr``, ``str`` or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes) -> None:
        self._value = value

    def reveal(self) -> str | bytes:
        return self._value

    def forms(self) -> list[str]:
        """The secret as text and in the base64 forms AUTH sends, to scrub from server replies."""
        raw = _bytes(self._value)
        forms = {raw.decode("utf-8", "replace"), base64.b64encode(raw).decode("ascii")}
        return sorted((f for f in forms if len(f) >= 4), key=len, reverse=True)

    def __repr__(self) -> str:
        return f"Secret('{REDACTED}')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(_bytes(self._value), _bytes(other._value))

    def __hash__(self) -> int:
        return hash(Secret)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


class Scrubber:
    """Finds a credential echoed in a reply: in any letter case, and split over the lines of a multi-line reply."""

    __slots__ = ("_pattern",)

    def __init__(self, username: str | bytes, secret: str | bytes) -> None:
        forms = set(Secret(secret).forms())
        forms.add(plain_encode(username, secret).decode("ascii"))
        forms.add(xoauth2_encode(username, secret).decode("ascii"))
        alternatives = (_LINE_BREAK.join(re.escape(c) for c in form) for form in sorted(forms, key=len, reverse=True))
        self._pattern = re.compile("|".join(alternatives), re.IGNORECASE)

    def text(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text)

    def reply(self, reply: SMTPResponse) -> SMTPResponse:
        """``reply`` with every echo of the credential replaced by ``REDACTED``."""
        message = self.text(reply.message)
        return reply if message == reply.message else SMTPResponse(reply.code, message)


def redact_command(line: bytes, in_auth: bool) -> tuple[bytes | str, bool]:
    """A command line as the transcript shows it, and whether an AUTH exchange is now under way.

    ``AUTH METHOD payload`` keeps its method; every line answering a challenge is hidden whole.
    """
    if line[:5].upper() == b"AUTH ":
        words = line[:-2].split(b" ")
        if len(words) > 2:
            return f"AUTH {words[1].decode('ascii', 'replace')} {REDACTED}", True
        return line[:-2].decode("ascii", "replace"), True
    if in_auth:
        return REDACTED, True
    return line, False
