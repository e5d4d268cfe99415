"""``%%smtp_send``: the cell is a message (headers, an empty line, the body), sent over the current connection.

The result is the table of the server's replies; a message not delivered fails the cell with one line
after showing that table.
"""

from __future__ import annotations

from typing import Any

from IPython.core.magic import cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

from smtp_nb.client import SMTP, SMTPServerDisconnected
from smtp_nb.html import check

from ..compose import build_message
from ..errors import NotConnectedError, SMTPNotebookError
from ..views import Help, SendResult
from .base import SMTPMagicsBase

__all__ = ["SendMagics"]


@magics_class
class SendMagics(SMTPMagicsBase):
    """Send one message written in the cell."""

    @magic_arguments()
    @argument("--from", dest="sender", metavar="ADDRESS", help="the sender (replaces the cell's From:)")
    @argument("--to", action="append", default=[], metavar="ADDRESS", help="a recipient (repeatable; replaces To:)")
    @argument("--cc", action="append", default=[], metavar="ADDRESS", help="a copy recipient (repeatable)")
    @argument("--bcc", action="append", default=[], metavar="ADDRESS", help="a hidden recipient (repeatable)")
    @argument("--subject", help="the subject (replaces the cell's Subject:)")
    @argument(
        "--html",
        action="store_true",
        help="the body is HTML: CSS inlined, a plain-text version added, {{ 'chart.png' | inline_image }} attached",
    )
    @argument("--no-inline-css", action="store_true", help="with --html: keep the <style> blocks as written")
    @argument("--attach", action="append", default=[], metavar="PATH", help="attach this file (repeatable)")
    @argument("--name", help="the connection to send with (default: the current one)")
    @argument(
        "--dry-run",
        action="store_true",
        help="show the message as its recipient will see it, with the check's warnings, and send nothing",
    )
    @argument("-o", "--output", metavar="VAR", help="store the result in the variable VAR")
    @no_var_expand
    @cell_magic
    def smtp_send(self, line: str, cell: str) -> SendResult | Help:
        """Send the cell as an email: headers, an empty line, then the body.

        {{ name }} fields are filled in from the notebook's variables (Jinja2;
        an undefined name is an error). The table shows the server's reply to
        each recipient and its reply to the data, with the queue id. With --html
        the body is HTML, its CSS inlined; {{ "chart.png" | inline_image }} or
        {{ fig | inline_image }} (a matplotlib figure) shows an image inline.
        --dry-run shows the message as its recipient will see it, with what
        mail programs may do to it (smtp_nb.html.check), and sends nothing.

            %%smtp_send --to grace@example.com
            From: Ada <ada@example.com>
            Subject: Results for {{ week }}

            Hello Grace, ...
        """
        args = self._parse(self.smtp_send, line)
        if isinstance(args, Help):
            return args
        if args.output is not None and not args.output.isidentifier():
            raise self.usage("%%smtp_send", f"-o needs a variable name, not {args.output!r}")
        message, sender, recipients = build_message(
            cell,
            self.namespace,
            sender=args.sender,
            to=args.to,
            cc=args.cc,
            bcc=args.bcc,
            subject=args.subject,
            html=args.html,
            attachments=args.attach,
            inline_css=not args.no_inline_css,
        )
        if args.dry_run:
            result = SendResult(
                message, sender, recipients, warnings=check(message, size_limit=self._size_limit(args.name))
            )
            self._store(args.output, result)
            return result

        conn = self.session.get(args.name)

        async def send(client: SMTP) -> Any:
            (delivery,) = [d async for d in client.send_many([message])]
            error = delivery.error
            if isinstance(error, SMTPServerDisconnected) and not delivery.data_sent:
                raise error  # nothing went out: the session may reconnect and send it once more
            return delivery

        delivery = self._call(send, conn.name)
        result = SendResult(message, sender, recipients, delivery=delivery, connection=conn.name)
        self._store(args.output, result)
        if delivery.error is not None:
            display(result)
            raise SMTPNotebookError(result.summary(), error=delivery.error, result=result)
        return result

    def _size_limit(self, name: str | None) -> int | None:
        """The SIZE of the server the message would go to, if a connection to it is open."""
        try:
            conn = self.session.get(name)
        except NotConnectedError:
            return None
        return conn.client.max_message_size if conn.is_connected else None

    def _store(self, variable: str | None, result: Any) -> None:
        if variable:
            self.namespace[variable] = result
