"""Failures the notebook layer expects, shown as one line in the cell instead of a traceback.

IPython and nbclient call ``_render_traceback_()`` to draw an exception: these
return the one-line message, so the cell fails visibly (nbval sees an error)
and the reader sees a sentence, not forty lines of asyncio.
"""

from __future__ import annotations

from typing import Any

from smtp_nb.client.errors import SMTPException, SMTPResponseException
from smtp_nb.rendering import OneLineTraceback

__all__ = ["MessageError", "NotConnectedError", "SMTPNotebookError", "describe"]


class SMTPNotebookError(OneLineTraceback, SMTPException):
    """An expected failure of a notebook operation; ``error`` is the client's exception behind it, if any.

    The cell shows one line, named after the client's exception when there is
    one (``SMTPAuthenticationError: ...``, as in the README's *Errors* table),
    else after this class. ``result`` holds what the operation produced before
    failing (for example the per-recipient replies of a refused message).
    """

    def __init__(self, message: str, /, *, error: BaseException | None = None, result: Any = None) -> None:
        super().__init__(message)
        self.error = error
        self.result = result

    def _traceback_name(self) -> str:
        return type(self.error).__name__ if self.error is not None else type(self).__name__


class NotConnectedError(SMTPNotebookError):
    """No connection under that name (or no embedded server) to work with."""


class MessageError(SMTPNotebookError, ValueError):
    """The message of a ``%%smtp_send`` cell cannot be built; nothing was sent."""


def describe(exc: BaseException) -> str:
    """The client's exception as a sentence: ``535 5.7.8 ...`` rather than ``(535, '5.7.8 ...')``."""
    if isinstance(exc, SMTPResponseException) and exc.code > 0:
        return f"{exc.code} {exc.message}"
    if isinstance(exc, SMTPException):
        return exc.message
    return str(exc) or type(exc).__name__
