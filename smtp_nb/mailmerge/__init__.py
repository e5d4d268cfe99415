"""Mail merge: a template times rows (DataFrame, CSV, list of dicts) → validated, previewed, sent once each.

Needs the ``merge`` extra (jinja2, nh3; markdown for ``markdown=True``); no IPython.
"""

from .errors import (
    DestinationChanged,
    JournalError,
    MergeBusy,
    MergeError,
    MergeStopped,
    MessagesChanged,
    TemplateChanged,
    TemplateError,
)
from .journal import DEFAULT_JOURNAL, Journal
from .merge import MergeOptions, merge, merge_sync, parse_rate
from .results import MergePreview, MergeResult, MergeValidationError
from .template import MergeTemplate, Problem, RowError

__all__ = [
    "DEFAULT_JOURNAL",
    "DestinationChanged",
    "Journal",
    "JournalError",
    "MergeBusy",
    "MergeError",
    "MergeOptions",
    "MergePreview",
    "MergeResult",
    "MergeStopped",
    "MergeTemplate",
    "MergeValidationError",
    "MessagesChanged",
    "Problem",
    "RowError",
    "TemplateChanged",
    "TemplateError",
    "merge",
    "merge_sync",
    "parse_rate",
]
