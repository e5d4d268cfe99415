"""How far a merge is: the done count (computed here and nowhere else), rate, ETA, and the terminal display.

A report is a dict of counts (accepted, refused, failed, unknown, skipped,
retried), plus ``total``, ``in_flight``, ``retrying`` and ``elapsed_ms``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping

__all__ = ["Progress", "describe", "done", "rate", "terminal_progress"]

Progress = Callable[[dict[str, int]], None]
#: The states that end a row's part in this run.
_ANSWERED = ("accepted", "refused", "failed", "unknown")


def done(counts: Mapping[str, int]) -> int:
    """Rows this run has finished with (answered, one way or the other)."""
    return sum(counts.get(state, 0) for state in _ANSWERED)


def rate(counts: Mapping[str, int]) -> str:
    """Messages answered per second so far."""
    seconds = counts.get("elapsed_ms", 0) / 1000
    return f"{done(counts) / seconds:.1f} msg/s" if seconds > 0 and done(counts) else "- msg/s"


def _eta(counts: Mapping[str, int]) -> str:
    finished, total = done(counts), counts.get("total", 0)
    seconds = counts.get("elapsed_ms", 0) / 1000
    if not finished or not seconds or total <= finished:
        return "-"
    left = round((total - finished) * seconds / finished)
    return f"{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}" if left >= 3600 else f"{left // 60}:{left % 60:02d}"


def describe(counts: Mapping[str, int]) -> str:
    """``12 of 20 done, 3.1 msg/s, ETA 0:03 — 11 accepted, 1 refused, 0 retrying``."""
    refused = counts.get("refused", 0) + counts.get("failed", 0)
    tail = f"{counts.get('accepted', 0)} accepted, {refused} refused, {counts.get('retrying', 0)} retrying"
    if counts.get("unknown"):
        tail += f", {counts['unknown']} unknown"
    eta = f", ETA {_eta(counts)}" if done(counts) < counts.get("total", 0) else ""
    return f"{done(counts)} of {counts.get('total', 0)} done, {rate(counts)}{eta} — {tail}"


def terminal_progress(total: int) -> tuple[Progress | None, Callable[[], None]]:
    """A progress line on a terminal's stderr, rewritten in place (``TQDM_DISABLE`` turns it off, as for tqdm).

    Only on a terminal: in a log file or a notebook's stderr the carriage returns and erase codes would
    pile up as noise (``%%smtp_merge`` shows its own progress bar).
    """
    if os.environ.get("TQDM_DISABLE") or total == 0 or not sys.stderr.isatty():
        return None, lambda: None
    shown = {"done": -1}

    def show(counts: dict[str, int]) -> None:
        if done(counts) != shown["done"]:
            shown["done"] = done(counts)
            sys.stderr.write("\r" + describe(counts) + "\033[K")
            sys.stderr.flush()

    def end() -> None:
        if shown["done"] >= 0:
            sys.stderr.write("\n")

    return show, end
