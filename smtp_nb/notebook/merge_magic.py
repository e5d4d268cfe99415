"""``%%smtp_merge ROWS``: the cell is a merge template, ROWS the rows; preview by default, ``--send`` sends.

The merge runs on the session's loop over the session's connection (more
connections to the same server with the same options for ``--concurrency``);
the progress bar is made here, on the main thread, and only its values
change from the loop thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

from smtp_nb.client import SMTP
from smtp_nb.mailmerge import (
    DEFAULT_JOURNAL,
    MergePreview,
    MergeResult,
    MergeTemplate,
    MergeValidationError,
    TemplateError,
    merge,
)
from smtp_nb.mailmerge.merge import rate

from .errors import MessageError
from .magics import SessionMagics, call_connection, parse_arguments

__all__ = ["MergeMagics"]


@magics_class
class MergeMagics(SessionMagics):
    """The mail merge as a cell magic."""

    @magic_arguments()
    @argument("rows", help="the variable holding the rows (DataFrame, list of dicts), or a CSV file's path")
    @argument("--send", action="store_true", help="send; without it the merge only validates and previews")
    @argument("--key", metavar="COLUMN", help="the column that identifies a row (default: its first recipient)")
    @argument("--html", action="store_true", help="add an HTML part made from the body read as Markdown")
    @argument("--html-template", metavar="VAR", help="a variable holding an HTML template for the HTML part")
    @argument("--attachments", metavar="COLUMN", help="a column of file paths to attach (several: separate with ;)")
    @argument("--attach", action="append", default=[], metavar="PATH", help="attach this file to every message")
    @argument("--preview", type=int, default=3, metavar="N", help="how many messages to preview (default 3)")
    @argument("--limit", type=int, metavar="N", help="send at most N new rows this time")
    @argument("--rate", metavar="N/UNIT", help="at most this many messages, e.g. 30/min, 2/s, 500/h")
    @argument("--concurrency", type=int, default=1, metavar="N", help="connections to send over (default 1)")
    @argument("--retries", type=int, default=3, metavar="N", help="tries after a 4xx or a drop (default 3)")
    @argument("--retry-delay", type=float, default=2.0, metavar="SECONDS", help="first wait before a retry")
    @argument("--stop-after-failures", type=int, metavar="N", help="stop sending new rows after N failures")
    @argument(
        "--journal", default=DEFAULT_JOURNAL, metavar="PATH", help=f"the journal file (default {DEFAULT_JOURNAL})"
    )
    @argument("--campaign", default="default", metavar="NAME", help="the campaign within the journal")
    @argument("--resend-unknown", action="store_true", help="send again the rows whose outcome is unknown")
    @argument("--continue", dest="continue_changed", action="store_true", help="go on after the template changed")
    @argument("--name", help="the connection to send with (default: the current one)")
    @argument("-o", "--output", metavar="VAR", help="store the result in the variable VAR")
    @no_var_expand
    @cell_magic
    def smtp_merge(self, line: str, cell: str) -> MergePreview | MergeResult | None:
        """Merge the cell (headers, an empty line, the body; {{ column }} fields) with every row.

        Every row is rendered and checked first; any problem is listed (row,
        column, what is wrong) and nothing is sent. Without --send the first
        messages are shown as they would be sent. With --send, each row is
        marked in the journal before it leaves and recorded when the server
        answers, so running the cell again sends only what is left.

            %%smtp_merge students --key id --send --rate 30/min
            From: Course Office <office@example.com>
            To: {{ email | mailbox(name) }}
            Subject: Your grade, {{ name }}

            Dear {{ name }}, your grade is {{ grade }}.
        """
        args = parse_arguments(self.smtp_merge, line)
        if args is None:
            return None
        if args.output is not None and not args.output.isidentifier():
            raise UsageError(f"%%smtp_merge: -o needs a variable name, not {args.output!r}")
        rows = self._rows(args.rows)
        html = None
        if args.html_template is not None:
            html = self.namespace.get(args.html_template)
            if not isinstance(html, str):
                raise UsageError(f"%%smtp_merge: --html-template {args.html_template} is not a text variable")
        try:
            template = MergeTemplate(
                cell, html=html, markdown=args.html, attachments=args.attachments, files=args.attach
            )
        except (TemplateError, ValueError) as exc:
            raise MessageError(f"the template: {exc}") from exc
        options: dict[str, Any] = {
            "send": args.send,
            "key": args.key,
            "preview": args.preview,
            "limit": args.limit,
            "rate": args.rate,
            "concurrency": args.concurrency,
            "retries": args.retries,
            "retry_delay": args.retry_delay,
            "stop_after_failures": args.stop_after_failures,
            "journal": args.journal,
            "campaign": args.campaign,
            "resend_unknown": args.resend_unknown,
            "continue_changed": args.continue_changed,
        }
        try:
            result = self._run(template, rows, options, args.name)
        except MergeValidationError as exc:
            display(exc)  # the table of problems; then the cell fails with one line
            raise
        if args.output:
            self.namespace[args.output] = result
        return result

    def _rows(self, name: str) -> Any:
        if name in self.namespace:
            return self.namespace[name]
        if os.path.isfile(name):
            return name
        raise UsageError(
            f"%%smtp_merge: {name!r} is neither a variable of this notebook nor a file; "
            "give the name of a DataFrame or a list of dicts, or the path of a CSV file"
        )

    def _run(self, template: MergeTemplate, rows: Any, options: dict[str, Any], name: str | None) -> Any:
        has_connection = name is not None or self.session.current is not None
        if not options["send"] and not has_connection:
            from smtp_nb.mailmerge import merge_sync

            return merge_sync(template, rows, progress=False, **options)
        progress, finish = self._progress() if options["send"] else (None, lambda: None)

        async def operation(client: SMTP) -> Any:
            return await merge(template, rows, client=client, progress=progress or False, **options)

        try:
            return call_connection(self.session, operation, name, retry=False)
        finally:
            finish()

    def _progress(self) -> tuple[Callable[[dict[str, int]], None] | None, Callable[[], None]]:
        """A progress bar shown now (main thread) and moved from the session's loop thread."""
        if getattr(self.shell, "kernel", None) is None or os.environ.get("TQDM_DISABLE"):
            return None, lambda: None
        try:
            import ipywidgets
        except ImportError:
            return None, lambda: None
        bar = ipywidgets.IntProgress(value=0, min=0, max=1, description="merge")
        label = ipywidgets.Label("starting")
        display(ipywidgets.HBox([bar, label]))

        def update(counts: dict[str, int]) -> None:
            done = counts["accepted"] + counts["refused"] + counts["failed"] + counts["unknown"]
            bar.max = max(bar.max, done + counts.get("in_flight", 0))
            bar.value = done
            label.value = (
                f"{counts['accepted']} accepted, {counts['refused'] + counts['failed']} refused, "
                f"{counts['retried']} retried, {rate(counts)}"
            )

        def finish() -> None:
            bar.bar_style = "success"
            label.value += " — done"

        return update, finish
