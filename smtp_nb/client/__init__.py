"""The async SMTP client (standard library only).

Its exceptions are imported at once; the rest when first used, so that ``import smtp_nb`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import *  # noqa: F403 - the exception tree is the public API
from .errors import __all__ as _errors

if TYPE_CHECKING:
    from .addresses import parse_address  # noqa: F401
    from .api import send  # noqa: F401
    from .options import ConnectOptions  # noqa: F401
    from .redaction import REDACTED, Secret  # noqa: F401
    from .response import SMTPResponse, SMTPStatus  # noqa: F401
    from .smtp import DEFAULT_TIMEOUT, SMTP, SMTP_PORT, SMTP_STARTTLS_PORT, SMTP_TLS_PORT  # noqa: F401
    from .transaction import Delivery  # noqa: F401
    from .transcript import Transcript, TranscriptEntry  # noqa: F401

#: Each public name other than the exceptions, and the module that defines it.
_LAZY = {
    "DEFAULT_TIMEOUT": "smtp",
    "REDACTED": "redaction",
    "SMTP": "smtp",
    "SMTP_PORT": "smtp",
    "SMTP_STARTTLS_PORT": "smtp",
    "SMTP_TLS_PORT": "smtp",
    "ConnectOptions": "options",
    "Delivery": "transaction",
    "SMTPResponse": "response",
    "SMTPStatus": "response",
    "Secret": "redaction",
    "Transcript": "transcript",
    "TranscriptEntry": "transcript",
    "parse_address": "addresses",
    "send": "api",
}

__all__ = [*_LAZY, *_errors]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smtp_nb.client' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
