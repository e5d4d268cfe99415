"""``send()``: connect, send one message, quit — in one call."""

from __future__ import annotations

import email.message
import socket
import ssl
from collections.abc import Sequence
from typing import Any, Optional, Union

from .response import SMTPResponse
from .smtp import DEFAULT_TIMEOUT, SMTP, OAuthTokenGenerator, SocketPathType

__all__ = ["send"]


async def send(
    message: Union[email.message.EmailMessage, email.message.Message, str, bytes],
    /,
    *,
    sender: Optional[str] = None,
    recipients: Optional[Union[str, Sequence[str]]] = None,
    mail_options: Optional[Sequence[str]] = None,
    rcpt_options: Optional[Sequence[str]] = None,
    hostname: Optional[str] = "localhost",
    port: Optional[int] = None,
    username: Optional[Union[str, bytes]] = None,
    password: Optional[Union[str, bytes]] = None,
    oauth_token_generator: Optional[OAuthTokenGenerator] = None,
    local_hostname: Optional[str] = None,
    source_address: Optional[tuple[str, int]] = None,
    timeout: Optional[float] = DEFAULT_TIMEOUT,
    use_tls: bool = False,
    start_tls: Optional[bool] = None,
    validate_certs: bool = True,
    client_cert: Optional[str] = None,
    client_key: Optional[str] = None,
    tls_context: Optional[ssl.SSLContext] = None,
    cert_bundle: Optional[str] = None,
    socket_path: Optional[SocketPathType] = None,
    sock: Optional[socket.socket] = None,
    allow_plaintext_auth: bool = False,
    **client_options: Any,
) -> tuple[dict[str, SMTPResponse], str]:
    """Send one message and disconnect; returns what ``sendmail()`` returns.

    ``message`` is an ``email.message`` object (sender and recipients default
    to its headers) or raw ``str``/``bytes`` (then ``sender`` and
    ``recipients`` are required). The other options are ``SMTP``'s.
    """
    if isinstance(message, (str, bytes)) and (not sender or not recipients):
        raise ValueError("a raw str/bytes message needs sender= and recipients=")
    client = SMTP(
        hostname=hostname,
        port=port,
        username=username,
        password=password,
        oauth_token_generator=oauth_token_generator,
        local_hostname=local_hostname,
        source_address=source_address,
        timeout=timeout,
        use_tls=use_tls,
        start_tls=start_tls,
        validate_certs=validate_certs,
        client_cert=client_cert,
        client_key=client_key,
        tls_context=tls_context,
        cert_bundle=cert_bundle,
        socket_path=socket_path,
        sock=sock,
        allow_plaintext_auth=allow_plaintext_auth,
        **client_options,
    )
    async with client:
        if isinstance(message, (str, bytes)):
            assert sender is not None and recipients is not None
            return await client.sendmail(
                sender, recipients, message, mail_options=mail_options, rcpt_options=rcpt_options
            )
        return await client.send_message(
            message, sender=sender, recipients=recipients, mail_options=mail_options, rcpt_options=rcpt_options
        )
