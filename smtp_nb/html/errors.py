"""The one exception of smtp_nb.html: what was wrong with an HTML message, and what to do.

Raised before a message exists, so nothing is ever half-built or half-sent.
"""

from __future__ import annotations

__all__ = ["HTMLMailError"]


class HTMLMailError(ValueError):
    """An HTML message cannot be built: a missing extra, a refused image path, an unreadable file."""
