"""Every exception the client raises, in one place.

    SMTPException
    ├── SMTPServerDisconnected          (also ConnectionError)
    ├── SMTPConnectError                (also ConnectionError)
    │   ├── SMTPConnectTimeoutError     (also SMTPTimeoutError)
    │   ├── SMTPConnectResponseError    (also SMTPResponseException)
    │   └── SMTPTLSError                (also ssl.SSLError: the TLS handshake failed)
    │       └── SMTPCertificateError    (also ssl.SSLCertVerificationError)
    ├── SMTPTimeoutError                (also TimeoutError)
    │   ├── SMTPReadTimeoutError
    │   └── SMTPConnectTimeoutError
    ├── SMTPNotSupported
    │   └── SMTPMessageTooLarge
    ├── SMTPSecurityError
    ├── SMTPRecipientsRefused           (.recipients: list of SMTPRecipientRefused)
    └── SMTPResponseException           (.code, .message)
        ├── SMTPHeloError
        ├── SMTPDataError
        ├── SMTPAuthenticationError
        ├── SMTPSenderRefused           (.sender)
        ├── SMTPRecipientRefused        (.recipient)
        ├── SMTPProtocolError           (code -1: the server broke the protocol)
        └── SMTPConnectResponseError

Addresses or arguments that cannot be sent safely raise ``ValueError`` before
any byte leaves the client.
"""

from __future__ import annotations

import ssl

__all__ = [
    "SMTPAuthenticationError",
    "SMTPCertificateError",
    "SMTPConnectError",
    "SMTPConnectResponseError",
    "SMTPConnectTimeoutError",
    "SMTPDataError",
    "SMTPException",
    "SMTPHeloError",
    "SMTPMessageTooLarge",
    "SMTPNotSupported",
    "SMTPProtocolError",
    "SMTPReadTimeoutError",
    "SMTPRecipientRefused",
    "SMTPRecipientsRefused",
    "SMTPResponseException",
    "SMTPSecurityError",
    "SMTPSenderRefused",
    "SMTPServerDisconnected",
    "SMTPTLSError",
    "SMTPTimeoutError",
]


class SMTPException(Exception):
    """Base class of every error raised by the client."""

    def __init__(self, message: str, /) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SMTPServerDisconnected(SMTPException, ConnectionError):
    """The connection was lost, or a command needs a connection that is not there."""


class SMTPConnectError(SMTPException, ConnectionError):
    """Connecting to the server failed (network, TLS handshake or greeting)."""


class SMTPTLSError(SMTPConnectError, ssl.SSLError):
    """The TLS handshake failed (rejected certificate, protocol mismatch): also an ``ssl.SSLError``."""


class SMTPCertificateError(SMTPTLSError, ssl.SSLCertVerificationError):
    """The server's certificate did not verify: also an ``ssl.SSLCertVerificationError``."""


def tls_error(exc: ssl.SSLError, message: str) -> SMTPTLSError:
    """``message`` as an ``SMTPTLSError`` (``SMTPCertificateError`` if verification failed), with ``exc``'s details."""
    error = SMTPCertificateError(message) if isinstance(exc, ssl.SSLCertVerificationError) else SMTPTLSError(message)
    for name in ("reason", "library", "verify_code", "verify_message"):
        if hasattr(exc, name):
            setattr(error, name, getattr(exc, name))
    return error


class SMTPTimeoutError(SMTPException, TimeoutError):
    """A network operation took longer than the timeout."""


class SMTPConnectTimeoutError(SMTPTimeoutError, SMTPConnectError):
    """Connecting, the TLS handshake or the server's greeting took too long."""


class SMTPReadTimeoutError(SMTPTimeoutError):
    """The server did not answer a command within the timeout."""


class SMTPNotSupported(SMTPException):
    """The server lacks an extension that the operation needs."""


class SMTPMessageTooLarge(SMTPNotSupported):
    """The message is larger than the SIZE the server advertised."""

    def __init__(self, size: int, limit: int, /) -> None:
        super().__init__(
            f"the message is {size:,} bytes but the server accepts at most "
            f"{limit:,} bytes (its SIZE limit); nothing was sent"
        )
        self.size = size
        self.limit = limit


class SMTPSecurityError(SMTPException):
    """The client refused an operation that would expose credentials or data."""


class SMTPResponseException(SMTPException):
    """The server answered with a reply code the operation cannot accept."""

    def __init__(self, code: int, message: str, /) -> None:
        super().__init__(message)
        self.code = code
        self.args = (code, message)

    def __str__(self) -> str:
        return f"({self.code}, {self.message!r})"


class SMTPConnectResponseError(SMTPResponseException, SMTPConnectError):
    """The server's greeting was not 220 (it refused the connection)."""


class SMTPProtocolError(SMTPResponseException):
    """The server sent something that is not a valid SMTP reply."""

    def __init__(self, message: str, /) -> None:
        super().__init__(-1, message)


class SMTPHeloError(SMTPResponseException):
    """The server refused HELO or EHLO."""


class SMTPDataError(SMTPResponseException):
    """The server refused DATA or the message content."""


class SMTPAuthenticationError(SMTPResponseException):
    """The server refused the credentials."""


class SMTPSenderRefused(SMTPResponseException):
    """The server refused the envelope sender (MAIL FROM)."""

    def __init__(self, code: int, message: str, sender: str, /) -> None:
        super().__init__(code, message)
        self.sender = sender
        self.args = (code, message, sender)


class SMTPRecipientRefused(SMTPResponseException):
    """The server refused one recipient (RCPT TO)."""

    def __init__(self, code: int, message: str, recipient: str, /) -> None:
        super().__init__(code, message)
        self.recipient = recipient
        self.args = (code, message, recipient)


class SMTPRecipientsRefused(SMTPException):
    """The server refused every recipient; ``recipients`` holds each refusal."""

    def __init__(self, recipients: list[SMTPRecipientRefused], /) -> None:
        listed = ", ".join(f"{r.recipient} ({r.code} {r.message})" for r in recipients)
        super().__init__(f"all recipients were refused: {listed}")
        self.recipients = recipients
        self.args = (recipients,)
