"""Exactly once against a real Postfix: a 300-row merge whose connection is cut at 15 random points.

A small loopback proxy between the merge and a private Postfix forwards both directions and, each
time the bytes it has forwarded (both ways, over every connection) pass the next cut point, forwards
up to that byte and aborts both sides: a cut can fall in a command, in a message's data or in a
reply. The merge is resumed from its journal until every row has an outcome. Postfix's own
mailbox is the ground truth: every row delivered exactly once, except rows reported ``unknown``
(data sent, verdict lost), each delivered at most once. A cut loses the verdicts of the transactions
in flight, at most ``window`` of them (the merge's window of BDAT transactions per round trip), so
there are at most cuts x window unknown rows: cuts with window=1, the old one-at-a-time merge.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterator
from typing import Any

import pytest

import smtp_nb
from tests import postfix
from tests.conftest import run_strict

ROWS = [{"id": i, "email": f"row{i}@example.com"} for i in range(300)]
TEMPLATE = """From: Course Office <office@example.org>
To: {{ email }}
Subject: Row {{ id }}

Hello {{ id }}, this line makes the message long enough that cuts also fall inside the data.
"""
CUTS = 15
# bytes both ways for one row through Postfix (commands, replies, data): about 600; the cuts fall in
# the first half of that traffic, so every cut happens even with windows (a cut there leaves up to a
# window of rows unknown, and those are not sent again: less traffic in all)
CUT_RANGE = (200, int(len(ROWS) * 600 * 0.5))


class CuttingProxy:
    """Forwards 127.0.0.1:port to ``target`` and aborts the connection at each of ``cuts`` (byte offsets)."""

    def __init__(self, target: int, cuts: list[int]) -> None:
        self.target = target
        self.cuts = sorted(cuts)
        self.forwarded = 0
        self.cut_at: list[int] = []
        self.connections = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target)
        writers = (client_w, server_w)
        pumps = [
            asyncio.ensure_future(self._pump(client_r, server_w, writers)),
            asyncio.ensure_future(self._pump(server_r, client_w, writers)),
        ]
        for task in pumps:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.gather(*pumps, return_exceptions=True)
        for writer in writers:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, both: tuple[asyncio.StreamWriter, ...]
    ) -> None:
        while data := await reader.read(65536):
            if self.cuts and self.forwarded + len(data) >= self.cuts[0]:
                cut = self.cuts.pop(0)
                writer.write(data[: cut - self.forwarded])
                self.forwarded = cut
                self.cut_at.append(cut)
                for w in both:
                    w.transport.abort()
                return
            self.forwarded += len(data)
            writer.write(data)
            await writer.drain()
        writer.close()


@pytest.fixture
def mta() -> Iterator[postfix.Postfix]:
    if not postfix.available():
        pytest.fail("Postfix is not installed: .ci/run installs it (apt-get install postfix); run the tests as root")
    with postfix.running() as instance:
        yield instance


@pytest.mark.parametrize("window", [1, 8])
def test_a_merge_cut_15_times_delivers_every_row_once(mta: postfix.Postfix, tmp_path: Any, window: int) -> None:
    seed = int(os.environ.get("SMTP_NB_CUT_SEED", random.randrange(1 << 30)))
    cuts = random.Random(seed).sample(range(*CUT_RANGE), CUTS)
    runs: list[Any] = []

    async def merge_until_done() -> CuttingProxy:
        async with CuttingProxy(mta.port, cuts) as proxy:
            options = {
                "smtp": {"hostname": "127.0.0.1", "port": proxy.port, "timeout": 10},
                "journal": tmp_path / "journal.sqlite",
                "retry_delay": 0.01,
                "progress": False,
                "send": True,
                "window": window,
            }
            for _ in range(3 * CUTS):  # each run gets past at least one cut, or finishes
                result = await smtp_nb.merge(TEMPLATE, ROWS, **options)
                runs.append(result)
                outcome = {row["status"] for row in result.rows()}
                if outcome <= {"accepted", "unknown"} and len(list(result.rows())) == len(ROWS):
                    return proxy
            raise AssertionError(f"not done after {len(runs)} runs: {result.summary()}")

    proxy = run_strict(merge_until_done(), timeout=300)
    mta.wait_queue_empty()
    delivered = mta.deliveries()

    why = f"seed {seed} (SMTP_NB_CUT_SEED={seed} repeats it), cuts at {proxy.cut_at}"
    final = {row["key"]: row["status"] for row in runs[-1].rows()}
    unknown = {key for key, status in final.items() if status == "unknown"}
    assert proxy.cut_at == sorted(cuts), f"not every cut happened: {why}"
    twice = sorted(address for address, n in delivered.items() if n > 1)
    assert not twice, f"delivered more than once: {twice}; {why}"
    missing = sorted(row["email"] for row in ROWS if row["email"] not in delivered and row["email"] not in unknown)
    assert not missing, f"accepted by the journal but not delivered: {missing}; {why}"
    assert set(delivered) <= {row["email"] for row in ROWS}
    assert len(unknown) <= CUTS * window, why
    assert sum(status == "accepted" for status in final.values()) == len(ROWS) - len(unknown)
    print(
        f"\nwindow {window}, 300 rows, {CUTS} cuts, {len(runs)} runs, {proxy.connections} connections: "
        f"{len(delivered)} delivered once, {len(unknown)} unknown ({sum(a in delivered for a in unknown)} of them "
        f"delivered); {why}"
    )
