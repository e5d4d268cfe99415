"""HTML and plain-text tables, the two-form ``View`` base, and the one-line traceback: one home for all of them.

The notebook's views and the merge's results both draw with these; nothing here imports IPython,
so ``smtp_nb.mailmerge`` may use it in plain Python too.
"""

from __future__ import annotations

import abc
import html
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["OneLineTraceback", "View", "escape", "html_table", "text_table"]

TABLE_CLASS = "smtp-nb"
_TABLE = f'<table class="{TABLE_CLASS}" style="border-collapse:collapse">'
_CELL = 'style="text-align:left"'


def escape(value: Any) -> str:
    """``value`` as HTML text; None is empty."""
    return html.escape("" if value is None else str(value))


def html_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, styles: Sequence[str | None] = ()) -> str:
    """An HTML table of plain values (escaped); ``styles[i]``, if given, is the CSS of row ``i``."""
    head = "".join(f"<th {_CELL}>{escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        style = styles[i] if i < len(styles) else None
        cells = "".join(f"<td {_CELL}>{escape(c)}</td>" for c in row)
        body.append(f'<tr style="{style}">{cells}</tr>' if style else f"<tr>{cells}</tr>")
    return f"{_TABLE}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def text_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, max_width: int | None = None) -> str:
    """Columns aligned with two spaces between; the last column is neither padded nor cut.

    ``max_width`` cuts the other columns' cells to that many characters.
    """
    table = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    last = len(headers) - 1
    if max_width is not None:
        table = [[c if i == last else c[:max_width] for i, c in enumerate(row)] for row in table]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = []
    for row in table:
        cells = [cell if i == last else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


class View(abc.ABC):
    """One result in two forms: ``_text()`` (``repr``, terminals, ``text/plain``) and ``_html()`` (``text/html``).

    Only these two MIME types: a saved notebook then reads the same in JupyterLab, VS Code, on GitHub
    and after ``nbconvert``, with or without a kernel.
    """

    @abc.abstractmethod
    def _text(self) -> str: ...

    @abc.abstractmethod
    def _html(self) -> str: ...

    def __repr__(self) -> str:
        return self._text()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self._text())

    def _repr_html_(self) -> str:
        return self._html()


class OneLineTraceback:
    """Mixin for exceptions: IPython and nbclient draw ``Name: message`` instead of a traceback.

    ``_traceback_name()`` gives the name shown (the class's own unless a subclass says otherwise).
    """

    def _traceback_name(self) -> str:
        return type(self).__name__

    def _render_traceback_(self) -> list[str]:
        return [f"{self._traceback_name()}: {self}"]
