"""Figures of the hardening suite: each hostile case records how long the error took and how much memory it cost.

They are printed at the end of the run (``hardening figures``) and, when
``SMTP_NB_HARDENING_FIGURES`` names a file, written there as JSON.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

_FIGURES: list[Figure] = []


@dataclasses.dataclass
class Figure:
    case: str
    outcome: str  # the exception raised, or what happened
    seconds: float | None = None
    peak_bytes: int | None = None
    note: str = ""


@dataclasses.dataclass
class Memory:
    """Peak traced allocations (bytes) while the ``traced()`` block ran."""

    peak: int = 0


@contextlib.contextmanager
def traced() -> Iterator[Memory]:
    """Measure the peak of Python allocations made inside the block, with tracemalloc.

    tracemalloc sees every thread, so a scripted server running in this process
    counts too: the figure is an upper bound on the client's own allocations.
    """
    memory = Memory()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    try:
        yield memory
    finally:
        memory.peak = max(0, tracemalloc.get_traced_memory()[1] - base)
        if started:
            tracemalloc.stop()


@pytest.fixture
def figures() -> list[Figure]:
    """The list a test appends its figures to (kept for the whole run)."""
    return _FIGURES


def _format(figure: Figure) -> str:
    seconds = f"{figure.seconds:8.3f} s" if figure.seconds is not None else " " * 10
    peak = f"{figure.peak_bytes / 1024:9.1f} KiB" if figure.peak_bytes is not None else " " * 13
    note = f"  {figure.note}" if figure.note else ""
    return f"{figure.case:<58} {figure.outcome:<30} {seconds} {peak}{note}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("hardening figures")
    terminalreporter.write_line(f"{'case':<58} {'outcome':<30} {'time':>10} {'peak alloc':>13}")
    for figure in _FIGURES:
        terminalreporter.write_line(_format(figure))
    path = os.environ.get("SMTP_NB_HARDENING_FIGURES")
    if path:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump([dataclasses.asdict(f) for f in _FIGURES], handle, indent=1)
