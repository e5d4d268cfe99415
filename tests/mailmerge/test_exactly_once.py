"""Exactly once under faults: the connection dies at each step of one transaction in a 50-row merge.

The server keeps a delivery log (what it would have delivered). Whatever the
step, after the merge and a rerun from its journal every row has been
delivered exactly once, except a row recorded ``unknown`` — the server took
its data but died before answering — which is reported and not resent, and
which the log shows delivered once (the server did take it).
"""

from __future__ import annotations

import collections
from typing import Any

import pytest

import smtp_nb
from tests.scripted import Peer, ScriptedServer

TEMPLATE = """From: office@example.com
To: {{ email }}
Subject: Row {{ id }}

Hello {{ id }}
"""
ROWS = [{"id": i, "email": f"row{i}@example.com"} for i in range(50)]
STEPS = ["mail", "rcpt", "data", "dot", "reply"]
FAULTY_TRANSACTION = 10


def faulty_server(step: str, pipelining: bool, chunking: bool = False) -> tuple[ScriptedServer, list[str]]:
    """A server that hangs up once, at ``step`` of its 10th transaction; returns it and its delivery log."""
    delivered: list[str] = []
    state = {"transactions": 0, "tripped": False}

    def trip(at: str) -> bool:
        if not state["tripped"] and state["transactions"] == FAULTY_TRANSACTION and at == step:
            state["tripped"] = True
            return True
        return False

    async def script(peer: Peer) -> None:
        await peer.reply("220 faulty ready")
        recipients: list[str] = []
        while line := await peer.readline():
            verb = line.split()[0].upper()
            if verb == "EHLO":
                if chunking:
                    await peer.reply("250-faulty\r\n250-PIPELINING\r\n250 CHUNKING")
                else:
                    await peer.reply("250-faulty\r\n250 PIPELINING" if pipelining else "250 faulty")
            elif verb == "MAIL":
                state["transactions"] += 1
                recipients = []
                if trip("mail"):
                    return
                await peer.reply("250 2.1.0 ok")
            elif verb == "RCPT":
                recipients.append(line.split("<", 1)[1].split(">", 1)[0])
                if trip("rcpt"):
                    return
                await peer.reply("250 2.1.5 ok")
            elif verb == "DATA":
                if trip("data"):
                    return
                await peer.reply("354 go ahead")
                await peer.read_data()
                delivered.extend(recipients)
                if trip("dot"):
                    return
                await peer.reply("250 2.0.0 queued")
                if trip("reply"):
                    return
            elif verb == "BDAT":  # always "BDAT n LAST" from smtp_nb
                if trip("data"):
                    return
                await peer.reader.readexactly(int(line.split()[1]))
                delivered.extend(recipients)
                if trip("dot"):
                    return
                await peer.reply("250 2.0.0 queued")
                if trip("reply"):
                    return
            elif verb == "QUIT":
                await peer.reply("221 bye")
                return
            else:
                await peer.reply("250 ok")

    return ScriptedServer(script), delivered


async def merge_twice(server: ScriptedServer, tmp_path: Any, **extra: Any) -> tuple[Any, Any]:
    """The merge against ``server``, then the same merge again from its journal."""
    with server:
        options = {
            "smtp": server.options(timeout=5),
            "journal": tmp_path / "journal.sqlite",
            "retry_delay": 0.01,
            "progress": False,
            "send": True,
            **extra,
        }
        first = await smtp_nb.merge(TEMPLATE, ROWS, **options)
        rerun = await smtp_nb.merge(TEMPLATE, ROWS, **options)
    return first, rerun


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
@pytest.mark.parametrize("step", STEPS)
async def test_connection_killed_at_each_step(step: str, pipelining: bool, tmp_path: Any) -> None:
    server, delivered = faulty_server(step, pipelining)
    first, rerun = await merge_twice(server, tmp_path)
    assert server.connections >= 2 + 1  # the drop forced a reconnection; the rerun connected again
    counts = collections.Counter(delivered)
    unknown = {r["key"] for r in first.rows() if r["status"] == "unknown"}
    assert all(n == 1 for n in counts.values()), f"delivered twice: {[a for a, n in counts.items() if n > 1]}"
    assert set(counts) == {row["email"] for row in ROWS}  # every row reached the server once
    if step == "dot":
        # data taken, verdict lost: reported unknown, and the rerun leaves it alone
        assert unknown == {f"row{FAULTY_TRANSACTION - 1}@example.com"}
        assert rerun.counts["unknown"] == 1
    else:
        assert not unknown
    assert first.counts["accepted"] == 50 - len(unknown)
    assert rerun.counts["accepted"] == 0 and rerun.counts["skipped"] == 50 - len(unknown)


@pytest.mark.parametrize("window", [1, 3, 8])
@pytest.mark.parametrize("step", STEPS)
async def test_connection_killed_at_each_step_of_a_window_of_bdat_transactions(
    step: str, window: int, tmp_path: Any
) -> None:
    """With CHUNKING a window of transactions is in flight, data and all: one drop loses every verdict in it.

    Each of those rows is ``unknown`` (its data went out, even with a window of one, as BDAT sends the
    data with the envelope), at most ``window`` of them; the server
    delivered each at most once (the one whose data it took, not the ones after it), and the rerun
    resends none of them. Every other row is delivered exactly once.
    """
    server, delivered = faulty_server(step, pipelining=True, chunking=True)
    first, rerun = await merge_twice(server, tmp_path, window=window)
    counts = collections.Counter(delivered)
    unknown = {r["key"] for r in first.rows() if r["status"] == "unknown"}
    assert all(n == 1 for n in counts.values()), f"delivered twice: {[a for a, n in counts.items() if n > 1]}"
    assert set(counts) | unknown == {row["email"] for row in ROWS}  # every row reached the server, or is unknown
    # BDAT sends the data with the envelope: whatever the step, the row cut and those behind it are unknown
    assert 1 <= len(unknown) <= window
    if step == "dot":
        assert (
            f"row{FAULTY_TRANSACTION - 1}@example.com" in unknown and counts[f"row{FAULTY_TRANSACTION - 1}@example.com"]
        )
    assert first.counts["accepted"] == 50 - len(unknown)
    assert rerun.counts["accepted"] == 0 and rerun.counts["skipped"] == 50 - len(unknown)
