"""What a merge shows: the validation errors, the preview, and the result table.

Each object has a readable ``repr`` (terminal IPython, logs) and
``_repr_html_`` (Jupyter). Nothing here imports IPython; pandas only for
``to_frame()``. The HTML holds no random ids or times, so notebook outputs
stay comparable from run to run.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

from ..html import MessageView, Warnings, check, view
from ..rendering import html_table, text_table
from .errors import MergeError
from .journal import Journal
from .progress import done as _done
from .rows import RowSource
from .template import Problem

__all__ = ["MergePreview", "MergeResult", "MergeValidationError", "STATUS_COLOURS"]

STATUS_COLOURS = {
    "accepted": "#d9f2d9",
    "rehearsed": "#dbe9f6",
    "refused": "#f8d7da",
    "failed": "#f8d7da",
    "unknown": "#fff3cd",
    "sending": "#fff3cd",
}


def _table(headers: list[str], rows: list[list[Any]], colours: list[str | None] | None = None) -> str:
    styles = [f"background: {c}" if c else None for c in colours or []]
    return html_table(headers, rows, styles=styles)


def _text_table(headers: list[str], rows: list[list[Any]]) -> str:
    return text_table(headers, rows, max_width=60)


class MergeValidationError(MergeError, ValueError):
    """Rows that cannot be sent; nothing was sent. ``problems`` lists (row, column, problem)."""

    def __init__(self, problems: list[Problem], total: int, rows: int) -> None:
        self.problems = problems
        self.total = total
        self.rows = rows
        shown = "; ".join(str(p) for p in problems[:3])
        more = f" (and {total - 3} more)" if total > 3 else ""
        super().__init__(f"{total} problem(s) in {rows} row(s), nothing was sent: {shown}{more}")
        #: Set once the table of problems is on screen: the one-line error then does not repeat them.
        self.shown = False

    def _render_traceback_(self) -> list[str]:
        if self.shown:
            return [f"{type(self).__name__}: {self.total} problem(s) in {self.rows} row(s), nothing was sent (above)"]
        return super()._render_traceback_()

    def _table_rows(self) -> list[list[Any]]:
        return [[p.row, p.column, p.problem] for p in self.problems]

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """What terminal IPython shows for ``display(error)``: every problem, as a table."""
        more = f"\n... and {self.total - len(self.problems)} more" if self.total > len(self.problems) else ""
        heading = f"{self.total} problem(s) in {self.rows} row(s); nothing was sent."
        printer.text(f"{heading}\n{_text_table(['row', 'column', 'problem'], self._table_rows())}{more}")

    def _repr_html_(self) -> str:
        more = f"<p>… and {self.total - len(self.problems)} more</p>" if self.total > len(self.problems) else ""
        return (
            f"<p><b>{self.total} problem(s) in {self.rows} row(s); nothing was sent.</b></p>"
            + _table(["row", "column", "problem"], self._table_rows())
            + more
        )


@dataclasses.dataclass
class MergePreview:
    """The first messages as they will be sent, every row's attachments, and counts over every row. Nothing was sent.

    ``messages``: (row, key, message without its attachments, [(file name, size)]).
    ``notes``: what is allowed but worth a look (an address whose domain has no dot).
    """

    messages: list[tuple[int, str, EmailMessage, list[tuple[str, int]]]]
    rows: int
    recipients: int
    to_send: int
    skipped: int
    unknown: int
    size_limit: int | None
    journal: str
    campaign: str
    rehearsed: int = 0
    changed: int = 0
    notes: list[Problem] = dataclasses.field(default_factory=list)
    attachments: list[tuple[int, list[tuple[str, int]]]] = dataclasses.field(default_factory=list)
    attachment_rows: int = 0  # rows with attachments (``attachments`` lists the first 1,000)

    def _files_heading(self) -> str:
        listed = len(self.attachments)
        more = f" (the first {listed:,} of {self.attachment_rows:,} rows)" if self.attachment_rows > listed else ""
        return f"Attachments of every row{more}"

    def summary(self) -> str:
        parts = [f"{self.rows} rows", f"{self.recipients} recipients", f"{self.to_send} to send"]
        if self.skipped > self.rehearsed:
            parts.append(f"{self.skipped - self.rehearsed} already accepted (skipped)")
        if self.rehearsed:
            parts.append(f"{self.rehearsed} rehearsed earlier (skipped on the embedded server, sent on a real one)")
        if self.unknown:
            parts.append(f"{self.unknown} with unknown outcome (not resent unless asked)")
        if self.changed:
            parts.append(
                f"{self.changed} accepted earlier with another message or by another server "
                "(sending stops unless --continue or --campaign NEW)"
            )
        return "Preview: " + ", ".join(parts) + ". Nothing was sent; send with --send / send=True."

    def view(self, message: EmailMessage) -> MessageView:
        """A previewed message as its recipient will see it, with ``smtp_nb.html.check``'s warnings."""
        found = check(message, size_limit=self.size_limit)
        # The merge dates each message and gives it its Message-ID as it sends it: not missing then.
        return view(message, warnings=Warnings(w for w in found if w.code not in _ADDED_WHEN_SENT))

    def _files(self) -> list[list[Any]]:
        return [[row, name, f"{size:,} bytes"] for row, files in self.attachments for name, size in files]

    def __repr__(self) -> str:
        out = [self.summary()]
        out.extend(f"note: {note}" for note in self.notes)
        for number, key, message, files in self.messages:
            out.append(f"\n--- row {number} (key {key}) ---")
            out.append(self.view(message).text())
            if files:
                out.append(f"[attachments: {', '.join(f'{n} ({s:,} bytes)' for n, s in files)}]")
        if self.attachments:
            out.append(f"\n{self._files_heading()}:")
            out.append(_text_table(["row", "file", "size"], self._files()))
        return "\n".join(out)

    def _repr_html_(self) -> str:
        parts = [f"<p><b>{html.escape(self.summary())}</b></p>"]
        if self.notes:
            items = "".join(f"<li>{html.escape(str(note))}</li>" for note in self.notes)
            parts.append(f"<p>Worth a look:</p><ul>{items}</ul>")
        for number, key, message, files in self.messages:
            parts.append(f"<h4>row {number} — key {html.escape(str(key))}</h4>")
            parts.append(self.view(message).html())
            if files:
                listed = ", ".join(f"{n} ({s:,} bytes)" for n, s in files)
                parts.append(f"<p>attachments: {html.escape(listed)}</p>")
        if self.attachments:
            parts.append(f"<details><summary>{html.escape(self._files_heading())}</summary>")
            parts.append(_table(["row", "file", "size"], self._files()) + "</details>")
        return "".join(parts)


_ADDED_WHEN_SENT = {"missing-date", "missing-message-id"}
_COLUMNS = ["row", "key", "recipients", "status", "code", "message", "message_id", "attempts"]


class MergeResult:
    """The outcome of a merge, row by row, read from the journal when asked (the file is opened briefly).

    A result of a ``":memory:"`` journal keeps its rows instead.
    """

    def __init__(
        self,
        *,
        journal: Journal,
        campaign: str,
        run: int,
        source: RowSource,
        key_of: Callable[[dict[str, Any]], str],
        counts: dict[str, int],
        died: list[str],
        stopped: str | None,
        seconds: float,
        rehearsal: bool = False,
        done: int | None = None,
    ) -> None:
        self.journal_path = journal.path
        self._kept = journal.rows(campaign) if journal.path == ":memory:" else None
        self.campaign = campaign
        self.run = run
        self._source = source
        self._key_of = key_of
        self.counts = counts
        self.died = died
        self.stopped = stopped
        self.seconds = seconds
        self.rehearsal = rehearsal
        self.done = done if done is not None else _done(counts)

    @property
    def sent(self) -> int:
        """Rows accepted by a real server in this run (a rehearsal sends nobody anything)."""
        return 0 if self.rehearsal else self.counts.get("accepted", 0)

    def summary(self) -> str:
        c = self.counts
        accepted = c.get("accepted", 0)
        parts = [f"{accepted} rehearsed on the embedded server" if self.rehearsal else f"{accepted} accepted"]
        for state in ("refused", "failed", "unknown"):
            if c.get(state):
                parts.append(f"{c[state]} {state}")
        rehearsed_earlier = c.get("skipped_rehearsed", 0)
        if c.get("skipped", 0) > rehearsed_earlier:
            parts.append(f"{c['skipped'] - rehearsed_earlier} skipped (accepted earlier)")
        if rehearsed_earlier:
            again = "; --campaign NEW rehearses them again" if self.rehearsal else ""
            parts.append(f"{rehearsed_earlier} skipped (rehearsed earlier, message unchanged{again})")
        if c.get("retried"):
            parts.append(f"{c['retried']} retries")
        text = f"Merge {self.campaign!r}: " + ", ".join(parts)
        if self.stopped:
            text += f". Stopped: {self.stopped}"
        if self.died:
            text += f". {len(self.died)} row(s) of an interrupted run have an unknown outcome and were not resent"
        return text + f". Journal: {self.journal_path}"

    def _journal_rows(self, **query: Any) -> list[dict[str, Any]]:
        if self._kept is not None:
            kept = [r for r in self._kept if not query.get("failed_only") or r["state"] != "accepted"]
            offset = query.get("offset", 0)
            limit = query.get("limit")
            return kept[offset : None if limit is None else offset + limit]
        with Journal(self.journal_path, readonly=True) as journal:
            return journal.rows(self.campaign, **query)

    def rows(self, **query: Any) -> Iterator[dict[str, Any]]:
        """Every row of the campaign: key, recipients, status, code, message, message_id, attempts."""
        for r in self._journal_rows(**query):
            yield {
                "row": r["row"],
                "key": r["key"],
                "recipients": r["recipients"],
                "status": "rehearsed" if r["state"] == "accepted" and r.get("rehearsal") else r["state"],
                "code": r["code"],
                "message": r["reply"],
                "message_id": r["message_id"],
                "attempts": r["attempts"],
            }

    def to_frame(self) -> Any:
        """The rows as a pandas DataFrame."""
        import pandas

        return pandas.DataFrame(list(self.rows()), columns=_COLUMNS)

    def failed(self) -> Any:
        """The original rows that were not accepted (refused, failed, unknown), ready to merge again.

        The same kind as the rows given: a DataFrame's rows as a DataFrame, else a list of dicts.
        """
        not_accepted = {r["key"] for r in self.rows(failed_only=True)}
        return self._source.subset(lambda row: self._key_of(row) in not_accepted)

    def _shown(self) -> tuple[list[dict[str, Any]], int]:
        """What a display shows, read with bounded queries: the first rows, then the ones not accepted."""
        rows = list(self.rows(limit=51))
        if len(rows) <= 50:
            return rows, len(rows)
        first = rows[:20]
        later = [r for r in self.rows(failed_only=True, limit=220) if r["row"] > first[-1]["row"]][:200]
        return first + later, self.counts.get("skipped", 0) + self.done

    def __repr__(self) -> str:
        shown, _ = self._shown()
        table = _text_table(_COLUMNS, [[r[c] for c in _COLUMNS] for r in shown])
        return f"{self.summary()}\n{table}"

    def _repr_html_(self) -> str:
        shown, total = self._shown()
        colours = [STATUS_COLOURS.get(str(r["status"])) for r in shown]
        more = f"<p>showing {len(shown)} of the rows; .to_frame() has them all</p>" if len(shown) < total else ""
        return (
            f"<p><b>{html.escape(self.summary())}</b></p>"
            + _table(_COLUMNS, [[r[c] for c in _COLUMNS] for r in shown], colours)
            + more
        )
