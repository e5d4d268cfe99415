"""The terminal progress line: rewritten in place on a terminal, absent where it would be noise."""

from __future__ import annotations

import io
import os
import pty
import sys

import pytest

from smtp_nb.mailmerge.progress import terminal_progress

REPORT = {"accepted": 1, "refused": 0, "failed": 0, "unknown": 0, "total": 2, "elapsed_ms": 500}


@pytest.fixture
def no_tqdm_disable(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)


def _read_all(leader: int) -> str:
    """Everything written to the terminal: one read may return only the first write (seen on Python 3.13)."""
    chunks = []
    try:
        while chunk := os.read(leader, 4096):
            chunks.append(chunk)
    except OSError:  # EIO: the other side is closed and everything has been read
        pass
    os.close(leader)
    return b"".join(chunks).decode()


def test_a_terminal_gets_one_line_rewritten_in_place(monkeypatch, no_tqdm_disable):
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        show, end = terminal_progress(2)
        assert show is not None
        show(REPORT)
        show({**REPORT, "accepted": 2, "elapsed_ms": 900})
        end()
    written = _read_all(leader)
    assert written.count("\r") >= 2 and "1 of 2 done" in written and "2 of 2 done" in written


def test_a_pipe_or_a_notebook_stderr_gets_nothing(monkeypatch, no_tqdm_disable):
    captured = io.StringIO()  # not a terminal, as a log file or ipykernel's stderr
    monkeypatch.setattr(sys, "stderr", captured)
    show, end = terminal_progress(2)
    assert show is None
    end()
    assert captured.getvalue() == ""
