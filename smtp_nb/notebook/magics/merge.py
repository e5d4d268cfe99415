"""``%%smtp_merge ROWS``: the cell is a merge template, ROWS the rows; preview by default, ``--send`` sends.

The merge runs on the session's loop over the session's connection (more
connections to the same server with the same options for ``--concurrency``);
the progress bar is made here, on the main thread, and only its values
change from the loop thread. While the merge sends, the bar is a live widget;
when it ends, ``update_display`` replaces it with the summary as static HTML
and text, so a saved notebook holds no widget view.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

from smtp_nb.client import SMTP
from smtp_nb.mailmerge import (
    DEFAULT_JOURNAL,
    MergeError,
    MergeOptions,
    MergePreview,
    MergeResult,
    MergeTemplate,
    MergeValidationError,
    TemplateError,
    merge,
    merge_sync,
)
from smtp_nb.mailmerge.progress import describe, done
from smtp_nb.rendering import View, escape

from ..errors import MessageError, SMTPNotebookError
from ..views import Help
from .base import SessionMagics, SMTPMagicsBase, call_connection, help_text, parse_arguments

__all__ = ["MergeMagics"]


def help_alone(lines: list[str]) -> list[str]:
    """An input transformer: ``%%smtp_merge --help`` with nothing below becomes ``%smtp_merge --help``.

    IPython refuses a cell magic with an empty body before the magic runs;
    asking for help should not need a template.
    """
    if lines and lines[0].startswith("%%smtp_merge") and not "".join(lines[1:]).strip():
        words = lines[0].split()
        if "--help" in words or "-h" in words:
            return [lines[0][1:]]
    return lines


@magics_class
class MergeMagics(SessionMagics):
    """The mail merge as a cell magic."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)
        transformers = getattr(shell, "input_transformers_cleanup", None)
        if transformers is not None and help_alone not in transformers:
            transformers.append(help_alone)

    @magic_arguments()
    @argument("rows", help="the variable holding the rows (DataFrame, list of dicts), or a CSV file's path")
    @argument("--send", action="store_true", help="send; without it the merge only validates and previews")
    @argument("--key", metavar="COLUMN", help="the column that identifies a row (default: its first recipient)")
    @argument("--html", action="store_true", help="add an HTML part made from the body read as Markdown")
    @argument("--html-template", metavar="VAR", help="a variable holding an HTML template for the HTML part")
    @argument("--no-inline-css", action="store_true", help="keep the HTML template's <style> as written (not inlined)")
    @argument("--attachments", metavar="COLUMN", help="a column of file paths to attach (several: separate with ;)")
    @argument("--attach", action="append", default=[], metavar="PATH", help="attach this file to every message")
    @argument("--attachments-root", metavar="FOLDER", help="the folder attachment paths are inside (default: here)")
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
    @argument(
        "--continue",
        dest="continue_changed",
        action="store_true",
        help="rows accepted earlier with another message or by another server count as sent; send the rest",
    )
    @argument("--name", help="the connection to send with (default: the current one)")
    @argument("-o", "--output", metavar="VAR", help="store the result in the variable VAR")
    @no_var_expand
    @line_cell_magic
    def smtp_merge(self, line: str, cell: str | None = None) -> MergePreview | MergeResult | Help:
        """Merge the cell (headers, an empty line, the body; {{ column }} fields) with every row.

        Every row is rendered and checked first; any problem is listed (row,
        column, what is wrong) and nothing is sent. Without --send the first
        messages are shown as they would be sent. With --send, each row is
        marked in the journal before it leaves and recorded when the server
        answers, so running the cell again sends only what is left. Mail the
        embedded server accepts is a rehearsal: sending to a real server
        afterwards sends every row. Rows accepted with another message (new
        data, a new template) or by another server stop the merge: give
        --campaign NEW to send everyone, or --continue to count them as sent.

            %%smtp_merge students --key id --send --rate 30/min
            From: Course Office <office@example.com>
            To: {{ email | mailbox(name) }}
            Subject: Your grade, {{ name }}

            Dear {{ name }}, your grade is {{ grade }}.
        """
        args = parse_arguments(self.smtp_merge, line, show_help=False)
        if args is None:
            return Help(help_text(self.smtp_merge))
        if args.output is not None and not args.output.isidentifier():
            raise UsageError(f"%%smtp_merge: -o needs a variable name, not {args.output!r}")
        if cell is None or not cell.strip():
            raise UsageError("%%smtp_merge: no template; write it in the cell below the %%smtp_merge line")
        rows = self._rows(args.rows)
        html = None
        if args.html_template is not None:
            html = self.namespace.get(args.html_template)
            if not isinstance(html, str):
                raise UsageError(f"%%smtp_merge: --html-template {args.html_template} is not a text variable")
        try:
            options = MergeOptions(
                send=args.send,
                key=args.key,
                preview=args.preview,
                limit=args.limit,
                rate=args.rate,
                concurrency=args.concurrency,
                retries=args.retries,
                retry_delay=args.retry_delay,
                stop_after_failures=args.stop_after_failures,
                journal=args.journal,
                campaign=args.campaign,
                resend_unknown=args.resend_unknown,
                continue_changed=args.continue_changed,
                html=html,
                markdown=args.html,
                inline_css=not args.no_inline_css,
                attachments=args.attachments,
                files=args.attach,
                attachments_root=args.attachments_root,
            )
        except ValueError as exc:
            raise UsageError(f"%%smtp_merge: {_in_option_words(str(exc))}; see %%smtp_merge --help") from None
        if args.attachments_root is not None and not os.path.isdir(args.attachments_root):
            raise UsageError(
                f"%%smtp_merge: --attachments-root {args.attachments_root} is not a folder; give the folder "
                "the attachment paths are inside"
            )
        try:
            template = options.template(cell)
        except (TemplateError, ValueError) as exc:
            raise MessageError(f"the template: {exc}") from exc
        try:
            result = self._run(template, rows, options, args.name)
        except MergeValidationError as exc:
            display(exc)  # the table of problems; the cell then fails with one line that does not repeat them
            exc.shown = True
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

    def _run(self, template: MergeTemplate, rows: Any, options: MergeOptions, name: str | None) -> Any:
        has_connection = name is not None or self.session.current is not None
        if not options.send and not has_connection:
            return merge_sync(template, rows, options=options, progress=False)
        conn = self.session.get(name)
        embedded = conn.embedded or self.session.reaches_embedded(conn.client.hostname, conn.client.port)
        progress, finish = self._progress() if options.send else (None, _no_summary)

        async def operation(client: SMTP) -> Any:
            return await merge(
                template, rows, options=options, client=client, embedded=embedded, progress=progress or False
            )

        result = None
        try:
            result = call_connection(self.session, operation, name, retry=False)
            return result
        except SMTPNotebookError as exc:
            if isinstance(exc.error, MergeError):
                raise exc.error from None  # the merge's own error, already one line
            raise
        finally:
            finish(result)

    def _widgets_wanted(self) -> bool:
        """``%config SMTPMagics.widgets = False`` turns the progress bar off too."""
        configurables = getattr(self.shell, "configurables", [])
        config = next((c for c in configurables if isinstance(c, SMTPMagicsBase)), None)
        return config is None or bool(config.widgets)

    def _progress(self) -> tuple[Callable[[dict[str, int]], None] | None, Callable[[Any], None]]:
        """A progress bar shown now (main thread), moved from the session's loop thread, and replaced by a
        static line when the merge ends: a saved notebook shows the outcome, not a widget."""
        if getattr(self.shell, "kernel", None) is None or os.environ.get("TQDM_DISABLE") or not self._widgets_wanted():
            return None, _no_summary
        try:
            import ipywidgets
        except ImportError:
            return None, _no_summary
        bar = ipywidgets.IntProgress(value=0, min=0, max=1, description="merge")
        label = ipywidgets.Label("checking the rows")
        box = ipywidgets.HBox([bar, label])
        handle = display(box, display_id=True)

        last: dict[str, int] = {}

        def update(counts: dict[str, int]) -> None:
            last.update(counts)
            bar.max = max(1, counts.get("total", 0))
            bar.value = min(done(counts), bar.max)
            label.value = describe(counts)

        def finish(result: Any) -> None:
            # How the run went (the bar's last words); the result below it says what each row became.
            seconds = f" in {last.get('elapsed_ms', 0) / 1000:.1f} s" if last else ""
            said = describe(last) if last else "nothing to send in this run"
            line = f"merge {'finished' if isinstance(result, MergeResult) else 'stopped'}{seconds}: {said}"
            if handle is not None:
                handle.update(StaticLine(line))
            box.close()

        return update, finish


class StaticLine(View):
    """What replaces the progress bar when the merge ends: one line of text, in HTML and plain text."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _text(self) -> str:
        return self.text

    def _html(self) -> str:
        return f"<div>{escape(self.text)}</div>"


def _no_summary(result: Any) -> None:
    return None


def _in_option_words(text: str) -> str:
    """The option's Python name as the magic spells it: retry_delay → --retry-delay."""
    name, _, rest = text.partition(" ")
    if name in {f.name for f in dataclasses.fields(MergeOptions)}:
        return f"--{name.replace('_', '-')} {rest}"
    return text
