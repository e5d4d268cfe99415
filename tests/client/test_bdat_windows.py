"""Windows of BDAT transactions on a real connection: several whole messages per write, each reply to its message.

A scripted server that answers only once a whole window has arrived (it would wait forever for a client
that sends one message per round trip), and a real private Postfix with refusals in the middle.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import smtp_nb
from smtp_nb.client.connection import Connection
from tests import postfix
from tests.scripted import Peer, ScriptedServer


def window_server(flights: list[int], seen: list[int]) -> ScriptedServer:
    """Reads ``flights[0]`` whole BDAT transactions before it answers any of them, then the next flight."""

    async def script(peer: Peer) -> None:
        await peer.reply("220 windows ready")
        replies: list[str] = []
        transactions = total = 0
        while line := await peer.readline():
            verb = line.split()[0].upper()
            if verb == "EHLO":
                await peer.reply("250-windows\r\n250-PIPELINING\r\n250 CHUNKING")
            elif verb == "QUIT":
                await peer.reply("221 bye")
                return
            elif verb == "BDAT":
                await peer.reader.readexactly(int(line.split()[1]))
                replies.append(f"250 2.0.0 queued {total}")
                transactions += 1
                total += 1
                if flights and transactions == flights[0]:
                    seen.append(flights.pop(0))
                    await peer.send("".join(r + "\r\n" for r in replies))
                    replies, transactions = [], 0
            else:
                replies.append("250 ok")

    return ScriptedServer(script)


async def _async(items: list[Any]) -> Any:
    for item in items:
        yield item


@pytest.mark.parametrize("source", ["list", "async generator"])
async def test_send_many_puts_a_growing_window_of_messages_in_each_round_trip(source: str) -> None:
    seen: list[int] = []
    with window_server([2, 4, 8, 8], seen) as server:
        async with smtp_nb.SMTP(**server.options(timeout=5)) as client:
            messages = [("ada@example.com", [f"r{i}@example.com"], f"Subject: {i}\r\n\r\nhi\r\n") for i in range(22)]
            items = messages if source == "list" else _async(messages)
            done = [d async for d in client.send_many(items, window=8)]
    assert seen == [2, 4, 8, 8]
    assert [d.status for d in done] == ["accepted"] * 22
    assert [d.data.message.split()[-1] for d in done] == [str(n) for n in range(22)]


async def test_an_async_source_that_never_waits_shares_one_write_per_window(monkeypatch: Any) -> None:
    """A source with its next item at hand (the merge's rows) costs no more writes than a list."""
    writes: list[int] = []
    flush = Connection.flush

    def counted(self: Connection) -> None:
        writes[-1] += self.has_output
        flush(self)

    monkeypatch.setattr(Connection, "flush", counted)
    messages = [("ada@example.com", [f"r{i}@example.com"], f"Subject: {i}\r\n\r\nhi\r\n") for i in range(22)]
    for items in (lambda: messages, lambda: _async(messages)):
        writes.append(0)
        with window_server([2, 4, 8, 8], []) as server:
            async with smtp_nb.SMTP(**server.options(timeout=5)) as client:
                done = [d async for d in client.send_many(items(), window=8)]
                assert [d.status for d in done] == ["accepted"] * 22
    assert writes[0] == writes[1] <= 8  # EHLO, a write per flight, QUIT: not one per message


async def test_an_async_source_that_waits_has_what_is_due_written_first() -> None:
    """The source waits until the server has the first message: the client must have written it before waiting."""
    arrived = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def script_with_signal(peer: Peer) -> None:
        await peer.reply("220 ready")
        while line := await peer.readline():
            verb = line.split()[0].upper()
            if verb == "EHLO":
                await peer.reply("250-scripted\r\n250 PIPELINING")
            elif verb == "DATA":
                await peer.reply("354 go on")
                await peer.read_data()
                loop.call_soon_threadsafe(arrived.set)
                await peer.reply("250 queued")
            elif verb == "QUIT":
                await peer.reply("221 bye")
                return
            else:
                await peer.reply("250 ok")

    async def source() -> Any:
        yield ("ada@example.com", ["one@example.com"], "Subject: 1\r\n\r\nfirst\r\n")
        await asyncio.wait_for(arrived.wait(), 5)  # a client that held the first message back would time out here
        yield ("ada@example.com", ["two@example.com"], "Subject: 2\r\n\r\nsecond\r\n")

    with ScriptedServer(script_with_signal) as server:
        async with smtp_nb.SMTP(**server.options(timeout=5)) as client:
            done = [d async for d in client.send_many(source())]
    assert [d.status for d in done] == ["accepted", "accepted"]


async def test_send_many_refuses_a_window_below_one() -> None:
    client = smtp_nb.SMTP(hostname="127.0.0.1", port=1)
    with pytest.raises(ValueError, match="window must be a whole number of at least 1"):
        async for _ in client.send_many([], window=0):
            pass


@pytest.fixture(scope="module")
def mta() -> Any:
    if not postfix.available():
        pytest.fail("Postfix is not installed: .ci/run installs it (apt-get install postfix); run the tests as root")
    with postfix.running() as instance:
        yield instance


async def test_postfix_windows_map_each_reply_to_its_message(mta: postfix.Postfix) -> None:
    """Refused recipients and invalid senders inside windows: the right rows refused or failed, the rest once."""
    messages = []
    for i in range(30):
        sender = "bad sender@@" if i % 7 == 3 else "ada@example.com"
        rcpt = "nobody@elsewhere.invalid" if i % 5 == 2 else f"row{i}@example.com"
        messages.append((sender, [rcpt], f"Subject: {i}\r\n\r\nhi {i}\r\n"))
    async with smtp_nb.SMTP(hostname="127.0.0.1", port=mta.port, timeout=10) as client:
        done = [d async for d in client.send_many(_raw(messages), window=8)]
    mta.wait_queue_empty()
    delivered = mta.deliveries()
    expected = {f"row{i}@example.com" for i in range(30) if i % 7 != 3 and i % 5 != 2}
    assert [d.index for d in done] == list(range(30))
    assert {d.recipients[0] for d in done if d.status == "accepted"} == expected
    assert set(delivered) == expected and all(n == 1 for n in delivered.values())
    refused = {d.index for d in done if d.status == "refused"}
    assert refused == {i for i in range(30) if i % 5 == 2 and i % 7 != 3}
    assert all(isinstance(done[i].error, smtp_nb.SMTPRecipientsRefused) for i in refused)
    assert {d.index for d in done if d.status == "failed"} == {i for i in range(30) if i % 7 == 3}  # never sent
    assert "rset=" in mta.log()  # the windows: an RSET before each MAIL behind a transaction in flight


def _raw(messages: list[tuple[str, list[str], str]]) -> list[tuple[str, list[str], bytes]]:
    return [(s, r, m.encode()) for s, r, m in messages]
