"""The ``%smtp_*`` magics, one module per concern, joined into ``SMTPMagics`` (``%config SMTPMagics.<option>``).

``base`` parses arguments, calls the session and words failures; ``connections``, ``sending`` and
``embedded`` hold the magics; ``merge`` wires in ``%%smtp_merge`` (imported by the extension, not here).
Every magic returns a result object with ``_repr_html_`` and a text form.
"""

from __future__ import annotations

from .base import SessionMagics, SMTPMagicsBase, call_connection, joined_magics, parse_arguments
from .connections import ConnectionMagics
from .embedded import ServerMagics
from .sending import SendMagics

__all__ = ["SMTPMagics", "SessionMagics", "call_connection", "parse_arguments"]


class SMTPMagics(ConnectionMagics, SendMagics, ServerMagics, SMTPMagicsBase):
    """SMTP in the notebook: the embedded server, connections, the conversation, sending."""

    magics = joined_magics(ConnectionMagics, SendMagics, ServerMagics)  # type: ignore[assignment,unused-ignore]
    registered = True
