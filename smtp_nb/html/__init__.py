"""HTML mail done right: CSS inlined, a readable text part, inline images, a check before sending, a viewer.

Standard library only, except css-inline (the extra ``html``) for inlining and matplotlib for figures, both
imported when first needed. No IPython: the notebook layer shows these objects through their reprs.
"""

from __future__ import annotations

from .build import build, set_html_body
from .check import GMAIL_CLIP_BYTES, CheckWarning, Warnings, check
from .css import inline_css
from .errors import HTMLMailError
from .images import InlineImage, InlineImages, inline_image
from .text import html_to_text
from .view import MessageView, view

__all__ = [
    "GMAIL_CLIP_BYTES",
    "CheckWarning",
    "HTMLMailError",
    "InlineImage",
    "InlineImages",
    "MessageView",
    "Warnings",
    "build",
    "check",
    "html_to_text",
    "inline_css",
    "inline_image",
    "set_html_body",
    "view",
]
