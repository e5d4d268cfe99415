"""Mail merge: a template times rows (DataFrame, CSV, list of dicts) → validated, previewed, sent once each.

Needs the ``merge`` extra (jinja2; markdown for ``markdown=True``); no IPython.
"""

from .journal import DEFAULT_JOURNAL, Journal, TemplateChanged
from .merge import merge, merge_sync, parse_rate
from .results import MergePreview, MergeResult, MergeValidationError
from .template import MergeTemplate, Problem, RowError, TemplateError

__all__ = [
    "DEFAULT_JOURNAL",
    "Journal",
    "MergePreview",
    "MergeResult",
    "MergeTemplate",
    "MergeValidationError",
    "Problem",
    "RowError",
    "TemplateChanged",
    "TemplateError",
    "merge",
    "merge_sync",
    "parse_rate",
]
