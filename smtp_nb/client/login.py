"""Logging in: AUTH PLAIN, LOGIN, CRAM-MD5 and XOAUTH2 over the session, with every reply scrubbed of the credentials.

``Login`` sits between the commands (``commands.ESMTP``) and the whole client (``smtp.SMTP``).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable
from typing import Any, Optional, Union, cast

from .auth import crammd5_answer, login_encode, plain_encode, xoauth2_encode
from .commands import ESMTP, Timeout, default
from .errors import SMTPAuthenticationError, SMTPNotSupported, SMTPSecurityError
from .options import check_username
from .redaction import Scrubber
from .response import SMTPResponse, SMTPStatus

__all__ = ["Login", "is_local_peer"]


def is_local_peer(peername: Any) -> bool:
    """True if ``peername`` (a transport's peer) is this machine: loopback IP or a Unix socket."""
    if not isinstance(peername, tuple):
        return True  # Unix domain socket: a path (or an abstract name)
    try:
        address = ipaddress.ip_address(str(peername[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _decoded_challenge(challenge: SMTPResponse) -> str:
    try:
        return base64.b64decode(challenge.message, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return challenge.message


class Login(ESMTP):
    """The AUTH methods, and ``login()``, which picks one both sides support."""

    def _check_auth_allowed(self) -> None:
        conn = self._connection()
        if conn.is_tls or self._options.allow_plaintext_auth or is_local_peer(conn.extra("peername")):
            return
        raise SMTPSecurityError(
            f"refusing to send credentials to {self._where()} over an unencrypted connection. "
            "Use start_tls=True (port 587) or use_tls=True (port 465); if this network is "
            "trusted, pass allow_plaintext_auth=True"
        )

    async def _auth_exchange(
        self,
        username: str | bytes,
        secret: str | bytes,
        first: bytes,
        answer: Callable[[SMTPResponse], bytes],
        timeout: Timeout,
    ) -> SMTPResponse:
        """Send ``first``, then ``answer(challenge)`` to each 334 (at most three), and check for 235.

        Every reply is scrubbed of the credentials while the exchange runs (``redaction.Scrubber``).
        """
        check_username(username)
        self._check_auth_allowed()
        limit = self._resolve(timeout)
        async with self._lock:
            await self._ehlo_or_helo_if_needed(limit)
            conn = self._connection()
            conn.scrubber = Scrubber(username, secret)
            try:
                response = await self._command(first, limit)
                for _ in range(3):
                    if response.code != SMTPStatus.auth_continue:
                        break
                    try:
                        reply = answer(response)
                    except ValueError as exc:
                        await self._command(b"*\r\n", limit)  # cancel the exchange (RFC 4954)
                        raise SMTPAuthenticationError(response.code, str(exc)) from None
                    response = await self._command(reply + b"\r\n", limit)
            finally:
                conn.scrubber = None
        if response.code != SMTPStatus.auth_successful:
            raise SMTPAuthenticationError(response.code, response.message)
        self.authenticated_as = username.decode("utf-8", "replace") if isinstance(username, bytes) else username
        return response

    async def auth_plain(
        self, username: Union[str, bytes], password: Union[str, bytes], /, *, timeout: Timeout = default
    ) -> SMTPResponse:
        """AUTH PLAIN (RFC 4616) with the credentials in the first line."""
        encoded = plain_encode(username, password)
        return await self._auth_exchange(
            username, password, b"AUTH PLAIN " + encoded + b"\r\n", lambda _: encoded, timeout
        )

    async def auth_login(
        self, username: Union[str, bytes], password: Union[str, bytes], /, *, timeout: Timeout = default
    ) -> SMTPResponse:
        """AUTH LOGIN: the username with the command, the password when the server asks for it."""
        user, secret = login_encode(username, password)

        def answer(challenge: SMTPResponse) -> bytes:
            # A server that ignores the initial response asks for the username
            # again: never answer that prompt with the password.
            return user if "user" in _decoded_challenge(challenge).lower() else secret

        return await self._auth_exchange(username, password, b"AUTH LOGIN " + user + b"\r\n", answer, timeout)

    async def auth_crammd5(
        self, username: Union[str, bytes], password: Union[str, bytes], /, *, timeout: Timeout = default
    ) -> SMTPResponse:
        """AUTH CRAM-MD5 (RFC 2195): the password never crosses the wire."""
        return await self._auth_exchange(
            username, password, b"AUTH CRAM-MD5\r\n", lambda r: crammd5_answer(username, password, r.message), timeout
        )

    async def auth_xoauth2(
        self, username: Union[str, bytes], access_token: Union[str, bytes], /, *, timeout: Timeout = default
    ) -> SMTPResponse:
        """AUTH XOAUTH2 with an OAuth 2 access token (Gmail, Outlook)."""
        return await self._auth_exchange(
            username,
            access_token,
            b"AUTH XOAUTH2 " + xoauth2_encode(username, access_token) + b"\r\n",
            lambda _: b"",  # the 334 carries the error; an empty line gets the final reply
            timeout,
        )

    async def login(
        self,
        username: Union[str, bytes],
        password: Union[str, bytes],
        /,
        *,
        method: Optional[str] = None,
        timeout: Timeout = default,
    ) -> SMTPResponse:
        """Log in with ``method`` or, if not given, each method both sides support until one succeeds.

        Raises ``SMTPAuthenticationError`` (credentials refused),
        ``SMTPNotSupported`` (no AUTH, or no common method) or
        ``SMTPSecurityError`` (plaintext connection to another host).
        """
        self._connection()
        await self._ehlo_or_helo_if_needed(self._resolve(timeout))
        self._check_auth_allowed()
        if not self.supports_extension("auth"):
            hint = (
                ""
                if self.is_tls
                else "; many servers offer AUTH only after STARTTLS. Try connecting via TLS (or STARTTLS): "
                "start_tls=True or use_tls=True"
            )
            raise SMTPNotSupported(f"{self._where()} does not offer AUTH{hint}")
        if method is not None:
            chosen = method.lower()
            if chosen not in (*self.AUTH_METHODS, "xoauth2"):
                raise ValueError(
                    f"unknown AUTH method {method!r}; choose one of {', '.join(self.AUTH_METHODS)}, xoauth2"
                )
            if chosen not in self.server_auth_methods:
                offered = ", ".join(self.server_auth_methods) or "none"
                raise SMTPNotSupported(f"{self._where()} does not offer AUTH {chosen.upper()} (it offers: {offered})")
            methods = [chosen]
        else:
            methods = self.supported_auth_methods
            if not methods:
                offered = ", ".join(self.server_auth_methods) or "none"
                raise SMTPNotSupported(
                    f"no AUTH method in common: {self._where()} offers {offered}; this client supports "
                    f"{', '.join(self.AUTH_METHODS)}"
                )
        failure: SMTPAuthenticationError | None = None
        for name in methods:
            handler = getattr(self, f"auth_{name.replace('-', '')}")
            try:
                return cast(SMTPResponse, await handler(username, password, timeout=timeout))
            except SMTPAuthenticationError as exc:
                failure = exc
                if not self.is_connected:
                    break
        assert failure is not None
        raise failure
