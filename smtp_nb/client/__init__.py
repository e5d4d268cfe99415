"""The async SMTP client (standard library only)."""

from .addresses import parse_address
from .api import send
from .errors import *  # noqa: F403 - the exception tree is the public API
from .errors import __all__ as _errors
from .options import ConnectOptions
from .redaction import REDACTED, Secret
from .response import SMTPResponse, SMTPStatus
from .smtp import DEFAULT_TIMEOUT, SMTP, SMTP_PORT, SMTP_STARTTLS_PORT, SMTP_TLS_PORT
from .transaction import Delivery
from .transcript import Transcript, TranscriptEntry

__all__ = [
    "DEFAULT_TIMEOUT",
    "REDACTED",
    "SMTP",
    "SMTP_PORT",
    "SMTP_STARTTLS_PORT",
    "SMTP_TLS_PORT",
    "ConnectOptions",
    "Delivery",
    "SMTPResponse",
    "SMTPStatus",
    "Secret",
    "Transcript",
    "TranscriptEntry",
    "parse_address",
    "send",
    *_errors,
]
