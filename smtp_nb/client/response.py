"""A server reply (``SMTPResponse``) and the reply codes worth naming (``SMTPStatus``)."""

from __future__ import annotations

import enum
import re
from typing import NamedTuple

__all__ = ["SMTPResponse", "SMTPStatus"]

_ENHANCED = re.compile(r"([245]\.\d{1,3}\.\d{1,3})(?:\s|$)")


class SMTPResponse(NamedTuple):
    """A reply: its code and its text (the lines of a multi-line reply joined by ``\\n``)."""

    code: int
    message: str

    def __str__(self) -> str:
        return f"{self.code} {self.message}"

    @property
    def enhanced_status(self) -> str | None:
        """The RFC 3463 enhanced status code at the start of the text (``"2.0.0"``), if any."""
        match = _ENHANCED.match(self.message)
        return match.group(1) if match else None

    @property
    def is_success(self) -> bool:
        """True for 2xx and 3xx replies."""
        return 200 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        """True for 4xx replies: try again later."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """True for 5xx replies: do not retry unchanged."""
        return 500 <= self.code < 600


@enum.unique
class SMTPStatus(enum.IntEnum):
    """Reply codes of RFC 5321 and its extensions, by meaning."""

    invalid_response = -1
    system_status_ok = 211
    help_message = 214
    ready = 220
    closing = 221
    auth_successful = 235
    completed = 250
    will_forward = 251
    cannot_vrfy = 252
    auth_continue = 334
    start_input = 354
    domain_unavailable = 421
    mailbox_unavailable = 450
    error_processing = 451
    insufficient_storage = 452
    tls_not_available = 454
    unrecognized_command = 500
    unrecognized_parameters = 501
    command_not_implemented = 502
    bad_command_sequence = 503
    parameter_not_implemented = 504
    domain_does_not_accept_mail = 521
    access_denied = 530
    auth_failed = 535
    encryption_required = 538
    mailbox_does_not_exist = 550
    user_not_local = 551
    storage_exceeded = 552
    mailbox_name_invalid = 553
    transaction_failed = 554
    syntax_error = 555
