"""``send()``: connect, send one message, quit — in one call."""

from __future__ import annotations

import email.message
from collections.abc import Sequence
from typing import Any, Optional, Union

from .response import SMTPResponse
from .smtp import SMTP

__all__ = ["send"]


async def send(
    message: Union[email.message.EmailMessage, email.message.Message, str, bytes],
    /,
    *,
    sender: Optional[str] = None,
    recipients: Optional[Union[str, Sequence[str]]] = None,
    mail_options: Optional[Sequence[str]] = None,
    rcpt_options: Optional[Sequence[str]] = None,
    **options: Any,
) -> tuple[dict[str, SMTPResponse], str]:
    """Send one message and disconnect; returns what ``sendmail()`` returns.

    ``message`` is an ``email.message`` object (sender and recipients default
    to its headers) or raw ``str``/``bytes`` (then ``sender`` and
    ``recipients`` are required). ``options`` are the connection options of
    ``SMTP()`` (``hostname`` defaults to localhost, ``port`` to the one
    ``use_tls``/``start_tls`` imply), checked by ``ConnectOptions``.
    """
    if isinstance(message, (str, bytes)) and (not sender or not recipients):
        raise ValueError("a raw str/bytes message needs sender= and recipients=")
    client = SMTP(**options)
    async with client:
        if isinstance(message, (str, bytes)):
            assert sender is not None and recipients is not None
            return await client.sendmail(
                sender, recipients, message, mail_options=mail_options, rcpt_options=rcpt_options
            )
        return await client.send_message(
            message, sender=sender, recipients=recipients, mail_options=mail_options, rcpt_options=rcpt_options
        )
