"""The merge's window: rows claimed ("sending" on disk) a window at a time, in one commit each.

Fewer fsyncs per row; the price is that a kill can leave up to ``max(window, 2) x concurrency`` rows unknown
(with DATA the next row is claimed while the last one's verdict is on its way).
"""

from __future__ import annotations

import collections
from typing import Any

import pytest

import smtp_nb
from smtp_nb.mailmerge.journal import Journal
from smtp_nb.mailmerge.merge import MergeOptions
from tests.scripted import ScriptedServer, plain

TEMPLATE = """From: office@example.com
To: {{ email }}
Subject: Row {{ id }}

Hello {{ id }}
"""
ROWS = [{"id": i, "email": f"row{i}@example.com"} for i in range(40)]


@pytest.mark.parametrize(("window", "concurrency"), [(1, 1), (8, 1), (3, 2)])
async def test_the_sending_marks_of_a_window_share_one_commit(window, concurrency, server, tmp_path: Any) -> None:
    """One commit claims a window of rows; never more rows are ``sending`` than max(window, 2) x concurrency."""
    begins = collections.Counter[str]()
    sending: list[int] = []
    journal = Journal(tmp_path / "journal.sqlite")
    journal.db.set_trace_callback(lambda sql: begins.update([sql]) if sql.startswith("BEGIN") else None)

    def progress(report: dict[str, int]) -> None:  # called as each row settles
        sending.append(journal.counts("default").get("sending", 0))

    with journal:
        result = await smtp_nb.merge(
            TEMPLATE,
            ROWS,
            smtp=server.client_options(),
            journal=journal,
            send=True,
            progress=progress,
            window=window,
            concurrency=concurrency,
        )
    assert result.counts["accepted"] == len(ROWS)
    assert len(ROWS) <= len(server.messages) and max(sending) <= max(window, 2) * concurrency
    commits = begins["BEGIN IMMEDIATE"]  # each claim's commit also writes the outcomes recorded since the last one
    if window == 1:
        # one commit (one fsync) per row, and at the end at most two for the outcomes of the last two rows
        assert len(ROWS) <= commits <= len(ROWS) + 2
    else:
        assert commits <= 2 * len(ROWS) // window + 2


async def test_rows_claimed_but_never_sent_are_not_left_sending(tmp_path: Any) -> None:
    """The run stops with rows of its window claimed and not yet sent: the claims are undone, no row is unknown."""
    server = ScriptedServer(plain({"RCPT": "550 5.1.1 no such user"}))
    journal = tmp_path / "journal.sqlite"
    with server:
        options = {"smtp": server.options(timeout=5), "journal": journal, "send": True, "progress": False}
        result = await smtp_nb.merge(TEMPLATE, ROWS, **options, window=8, stop_after_failures=1)
    assert result.stopped and result.counts["refused"] < 8
    with Journal(journal) as opened:
        states = opened.counts("default")
    assert set(states) == {"refused"} and states["refused"] == result.counts["refused"]


@pytest.mark.parametrize("window", [0, -1, 2.5, True])
def test_a_window_is_a_whole_number_of_at_least_one(window: Any) -> None:
    with pytest.raises(ValueError, match="window must be a whole number of at least 1"):
        MergeOptions(window=window)
