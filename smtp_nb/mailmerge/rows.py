"""Rows for a merge, one mapping at a time: a DataFrame, a list of dicts, any iterable of mappings, a CSV path.

Rows are read lazily so that a 10,000-row merge does not hold 10,000 rendered
messages; a merge reads them twice (validate, then send), so a one-shot
iterator is kept in a list first.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

__all__ = ["RowSource"]


class RowSource:
    """Re-iterable rows: ``for number, row in source`` gives 1-based numbers and plain dicts."""

    def __init__(self, rows: Any) -> None:
        self.description = _describe(rows)
        if isinstance(rows, (str, os.PathLike)):
            path = os.fspath(rows)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"no CSV file at {path!r}")
            self._rows: Any = path
        elif _is_dataframe(rows):
            self._rows = rows
        elif isinstance(rows, Mapping):
            raise TypeError("rows must be many mappings (a list of dicts, a DataFrame, a CSV path), not one mapping")
        elif isinstance(rows, Iterable):
            self._rows = rows if iter(rows) is not rows else list(rows)  # a one-shot iterator: keep it
        else:
            raise TypeError(
                f"rows must be a pandas DataFrame, a list of dicts, an iterable of mappings or a CSV path, "
                f"not {type(rows).__name__}"
            )

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
        rows = self._rows
        if isinstance(rows, str):
            with open(rows, newline="", encoding="utf-8-sig") as handle:
                for number, row in enumerate(csv.DictReader(handle), 1):
                    yield number, {k: v for k, v in row.items() if k is not None}
        elif _is_dataframe(rows):
            columns = [str(c) for c in rows.columns]
            for number, values in enumerate(rows.itertuples(index=False, name=None), 1):
                yield number, dict(zip(columns, values, strict=True))
        else:
            for number, row in enumerate(rows, 1):
                if not isinstance(row, Mapping):
                    raise TypeError(f"row {number} is a {type(row).__name__}, not a mapping of column to value")
                yield number, dict(row)

    def subset(self, keep: Callable[[dict[str, Any]], bool]) -> Any:
        """The rows ``keep`` says yes to, as the same kind as given: a DataFrame stays one, else a list of dicts."""
        if _is_dataframe(self._rows):
            positions = [number - 1 for number, row in self if keep(row)]
            return self._rows.iloc[positions]
        return [row for _, row in self if keep(row)]


def _is_dataframe(rows: Any) -> bool:
    return type(rows).__name__ == "DataFrame" and hasattr(rows, "itertuples")


def _describe(rows: Any) -> str:
    if isinstance(rows, (str, os.PathLike)):
        return f"CSV file {os.fspath(rows)}"
    if _is_dataframe(rows):
        return f"DataFrame of {len(rows)} rows"
    if hasattr(rows, "__len__"):
        return f"{len(rows)} rows"
    return "rows"
