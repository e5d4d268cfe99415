"""Every exception the merge raises, in one place; each is shown as one line in a notebook.

SMTPException                       (smtp_nb's root)
└── MergeError
    ├── TemplateError               (also ValueError)  the template itself: syntax, layout, a header
    ├── MergeValidationError        (also ValueError)  rows that cannot be sent; nothing was sent
    ├── MergeStopped                (also RuntimeError) nothing was sent; the message says the ways on
    │   ├── MessagesChanged         rows accepted earlier would now get another message
    │   │   └── TemplateChanged     ... because the template changed
    │   ├── DestinationChanged      rows were accepted by another real server
    │   └── MergeBusy               another merge is sending this campaign right now
    └── JournalError                (also OSError)  the journal file: missing folder, read-only, full, lost
"""

from __future__ import annotations

from ..client.errors import SMTPException
from ..rendering import OneLineTraceback

__all__ = [
    "DestinationChanged",
    "JournalError",
    "MergeBusy",
    "MergeError",
    "MergeStopped",
    "MessagesChanged",
    "TemplateChanged",
    "TemplateError",
]


class MergeError(OneLineTraceback, SMTPException):
    """Base class of the merge's errors."""


class TemplateError(MergeError, ValueError):
    """The template itself is wrong (syntax, no blank line, bad header line); says where."""


class MergeStopped(MergeError, RuntimeError):
    """The merge stopped before sending anything; the message names the ways on."""


class MessagesChanged(MergeStopped):
    """Rows accepted earlier would get a different message now: nothing was sent. ``rows`` lists them."""

    def __init__(self, message: str, /, rows: list[int] | None = None) -> None:
        super().__init__(message)
        self.rows = rows or []


class TemplateChanged(MessagesChanged):
    """The template changed since rows of this campaign were accepted: nothing was sent."""


class DestinationChanged(MergeStopped):
    """Rows of this campaign were accepted by another (real) server: nothing was sent."""


class MergeBusy(MergeStopped):
    """Another merge is sending this campaign from this journal right now: nothing was sent."""


class JournalError(MergeError, OSError):
    """The journal file cannot be used (or vanished during a run); names the file and what to do."""
