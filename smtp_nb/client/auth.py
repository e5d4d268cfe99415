"""SASL encodings for AUTH: PLAIN, LOGIN, CRAM-MD5 and XOAUTH2.

Pure functions from credentials (and a challenge) to the base64 answer the server expects.
"""

from __future__ import annotations

import base64
import binascii
import hmac

__all__ = ["crammd5_answer", "login_encode", "plain_encode", "xoauth2_encode"]


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def plain_encode(username: str | bytes, password: str | bytes) -> bytes:
    """RFC 4616: base64 of NUL username NUL password."""
    return base64.b64encode(b"\0" + _bytes(username) + b"\0" + _bytes(password))


def login_encode(username: str | bytes, password: str | bytes) -> tuple[bytes, bytes]:
    """The LOGIN mechanism's two answers: base64 username, base64 password."""
    return base64.b64encode(_bytes(username)), base64.b64encode(_bytes(password))


def crammd5_answer(username: str | bytes, password: str | bytes, challenge: str) -> bytes:
    """RFC 2195: base64 of "username hex(HMAC-MD5(password, challenge))".

    Raises ``ValueError`` if the challenge is not base64.
    """
    try:
        decoded = base64.b64decode(challenge, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the server's CRAM-MD5 challenge is not base64: {challenge[:60]!r}") from None
    digest = hmac.new(_bytes(password), decoded, "md5").hexdigest().encode("ascii")
    return base64.b64encode(_bytes(username) + b" " + digest)


def xoauth2_encode(username: str | bytes, token: str | bytes) -> bytes:
    """Google/Microsoft XOAUTH2: base64 of "user=U^Aauth=Bearer T^A^A"."""
    return base64.b64encode(b"user=" + _bytes(username) + b"\x01auth=Bearer " + _bytes(token) + b"\x01\x01")
