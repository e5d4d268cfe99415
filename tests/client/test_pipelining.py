"""PIPELINING, the overlapped many-messages API, and CHUNKING (BDAT).

A recording server keeps each chunk it reads, so the tests see how commands
really travel: together when the server offers PIPELINING, one by one when not.
"""

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from smtp_nb import (
    SMTP,
    SMTPDataError,
    SMTPException,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from smtp_nb.server import LocalServer, _ServerProtocol
from tests.conftest import NoPipeliningHandler, RuleHandler, client_for
from tests.scripted import ScriptedServer, greet


class RecordingProtocol(_ServerProtocol):
    """aiosmtpd as usual, plus a log of every chunk read from the socket."""

    def data_received(self, data: bytes) -> None:
        self._owner.reads.append(data)
        super().data_received(data)


def recording_server(handler: Any = RuleHandler) -> LocalServer:
    server = LocalServer(handler_class=handler, protocol_class=RecordingProtocol)
    server.reads = []  # type: ignore[attr-defined]
    server.rules = {}  # type: ignore[attr-defined]
    server.rsets = 0  # type: ignore[attr-defined]
    return server


@pytest.fixture
def recorded() -> Iterator[LocalServer]:
    with recording_server() as server:
        yield server


def command_reads(server: LocalServer) -> list[list[str]]:
    """The command lines of each read (message data left out)."""
    reads = []
    for chunk in server.reads:
        lines = [line for line in chunk.decode().split("\r\n") if line[:4].upper() in ("MAIL", "RCPT", "DATA", "RSET")]
        if lines:
            reads.append(lines)
    return reads


async def test_envelope_goes_in_one_write_when_pipelining_is_offered(recorded):
    async with client_for(recorded) as client:
        await client.sendmail("a@example.com", ["b@example.com", "c@example.com", "d@example.com"], "Subject: p\n\nx")
    assert command_reads(recorded) == [
        [
            "MAIL FROM:<a@example.com> SIZE=17",
            "RCPT TO:<b@example.com>",
            "RCPT TO:<c@example.com>",
            "RCPT TO:<d@example.com>",
            "DATA",
        ]
    ]


async def test_one_command_per_round_trip_without_pipelining():
    with recording_server(NoPipeliningHandler) as server:
        async with client_for(server) as client:
            assert not client.supports_extension("pipelining")
            await client.sendmail("a@example.com", ["b@example.com", "c@example.com"], "x")
            async for delivery in client.send_many([("a@example.com", "e@example.com", "y")] * 2):
                assert delivery.ok
        assert all(len(lines) == 1 for lines in command_reads(server))
        assert len(command_reads(server)) == 4 + 3 * 2
        assert len(server.messages) == 3


def _batch(count: int) -> list[tuple[str, list[str], str, int]]:
    return [
        (f"s{i}@example.com", [f"r{i}@example.com"], f"Subject: message {i}\n\nbody {i}\n", i) for i in range(count)
    ]


async def test_send_many_reports_each_reply_against_its_message(recorded):
    recorded.rules.update(
        RCPT={"r7@example.com": "550 5.1.1 no such user"},
        MAIL={"s12@example.com": "553 5.7.1 sender not allowed"},
        DATA={"body 15": "554 5.7.1 content rejected"},
    )
    async with client_for(recorded) as client:
        deliveries = [d async for d in client.send_many(_batch(20))]
        assert client.is_connected
        await client.noop()  # the session is clean after the refusals
    assert [d.index for d in deliveries] == list(range(20))
    assert [d.tag for d in deliveries] == list(range(20))
    statuses = {d.index: d.status for d in deliveries if d.status != "accepted"}
    assert statuses == {7: "refused", 12: "refused", 15: "refused"}
    assert isinstance(deliveries[7].error, SMTPRecipientsRefused)
    assert deliveries[7].rcpt["r7@example.com"].code == 550
    assert isinstance(deliveries[12].error, SMTPSenderRefused) and deliveries[12].error.sender == "s12@example.com"
    assert isinstance(deliveries[15].error, SMTPDataError) and deliveries[15].data.code == 554
    for d in deliveries:
        if d.ok:
            assert d.data.code == 250 and d.accepted == [f"r{d.index}@example.com"]
    delivered = {m.rcpt_tos: m.subject for m in recorded.messages}
    expected = {(f"r{i}@example.com",): f"message {i}" for i in range(20) if i not in (7, 12, 15)}
    assert delivered == expected and len(recorded.messages) == 17
    # the next envelope travels with the previous message's data: about one round trip a message
    assert len(command_reads(recorded)) <= 20 + 3


async def test_send_many_records_invalid_messages_and_goes_on(server):
    batch: list[Any] = _batch(5)
    batch[2] = ("s2@example.com", ["bad\r\naddress@example.com"], "x", 2)
    batch[3] = "not a message"
    async with client_for(server) as client:
        deliveries = [d async for d in client.send_many(batch)]
    assert [d.status for d in deliveries] == ["accepted", "accepted", "failed", "failed", "accepted"]
    assert isinstance(deliveries[2].error, ValueError) and not deliveries[2].data_sent
    assert isinstance(deliveries[3].error, TypeError)
    assert sorted(m.subject for m in server.messages) == ["message 0", "message 1", "message 4"]


async def test_send_many_accepts_email_messages_and_async_sources(server):
    from email.message import EmailMessage

    async def source():
        for i in range(3):
            message = EmailMessage()
            message["From"] = "a@example.com"
            message["To"] = f"r{i}@example.com"
            message["Bcc"] = "archive@example.com"
            message["Subject"] = f"async {i}"
            message.set_content("hi")
            yield message

    async with client_for(server) as client:
        deliveries = [d async for d in client.send_many(source())]
    assert [d.recipients for d in deliveries] == [(f"r{i}@example.com", "archive@example.com") for i in range(3)]
    assert [m.subject for m in server.messages] == ["async 0", "async 1", "async 2"]
    assert all(b"archive@" not in m.data for m in server.messages)


def _drop_after_data(number: int, pipelining: bool = True):
    """A server that hangs up after reading the data of message ``number`` (1-based), before replying."""

    async def script(peer):
        await greet(peer)
        seen = 0
        while line := await peer.readline():
            verb = line.split()[0].upper()
            if verb == "EHLO":
                await peer.reply("250-x\r\n250 PIPELINING" if pipelining else "250 x")
            elif verb == "DATA":
                await peer.reply("354 go")
                await peer.read_data()
                seen += 1
                if seen == number:
                    return
                await peer.reply(f"250 queued {seen}")
            else:
                await peer.reply("250 ok")

    return script


@pytest.mark.parametrize("pipelining", [True, False])
async def test_connection_lost_mid_stream(pipelining):
    with ScriptedServer(_drop_after_data(4, pipelining)) as srv:
        client = SMTP(**srv.options(timeout=5))
        await client.connect()
        deliveries = [d async for d in client.send_many(_batch(10))]
        assert not client.is_connected
    statuses = [d.status for d in deliveries]
    assert statuses[:3] == ["accepted"] * 3
    assert statuses[3] == "unknown" and deliveries[3].data_sent  # sent, verdict lost: maybe delivered
    assert isinstance(deliveries[3].error, SMTPServerDisconnected)
    if pipelining:  # the fifth envelope was in flight with the fourth data: not sent, safe to retry
        assert statuses[4:] == ["failed"] and not deliveries[4].data_sent and deliveries[4].transient
    else:
        assert len(deliveries) == 4
    assert len(srv.data) == 4


async def test_leaving_the_loop_with_a_transaction_open_closes_the_connection(recorded):
    async with client_for(recorded) as client:
        async for delivery in client.send_many(_batch(10)):
            assert delivery.ok
            break  # message 1 has been given 354 and waits for its data
        with pytest.raises(SMTPException, match="connection was closed: nothing half-sent is delivered"):
            await client.noop()  # would otherwise land inside message 1's data
        assert not client.is_connected
        await client.connect()
        async with contextlib.aclosing(client.send_many(_batch(10))) as stream:
            async for _ in stream:
                break
        assert not client.is_connected  # closed where the block ends
    assert [m.subject for m in recorded.messages] == ["message 0", "message 0"]


async def test_leaving_the_loop_between_transactions_keeps_the_connection(recorded):
    async with client_for(recorded) as client:
        async for delivery in client.send_many(_batch(1)):
            assert delivery.ok
        assert (await client.noop()).code == 250


async def test_large_messages_pipelined(recorded):
    big = "Subject: big\n\n" + ("x" * 998 + "\n") * 300  # ~300 KB, over the write buffer's high-water mark
    async with client_for(recorded) as client:
        await client.sendmail("a@example.com", "b@example.com", big)
        deliveries = [
            d async for d in client.send_many([("a@example.com", ["b@example.com"], big, i) for i in range(3)])
        ]
    assert all(d.ok for d in deliveries)
    assert [len(m.data) for m in recorded.messages] == [len(big.replace("\n", "\r\n"))] * 4


def bdat_server(pipelining: bool, refuse: set[str] = frozenset()):
    """A small CHUNKING server: BDAT <size> LAST takes exactly size bytes, no dot-stuffing."""

    async def script(peer):
        await greet(peer)
        rcpts = 0
        while line := await peer.readline():
            verb = line.split()[0].upper()
            if verb == "EHLO":
                await peer.reply("250-x\r\n250-CHUNKING\r\n" + ("250 PIPELINING" if pipelining else "250 8BITMIME"))
            elif verb == "RCPT":
                address = line.split("<", 1)[1].split(">", 1)[0]
                ok = address not in refuse
                rcpts += ok
                await peer.reply("250 ok" if ok else "550 no such user")
            elif verb == "BDAT":
                size = int(line.split()[1])
                data = await peer.reader.readexactly(size)
                if rcpts:
                    peer.server.data.append(data)
                await peer.reply("250 2.0.0 chunk queued" if rcpts else "554 5.5.1 no valid recipients")
                rcpts = 0
            elif verb == "QUIT":
                await peer.reply("221 bye")
                return
            else:
                rcpts = 0 if verb == "RSET" else rcpts
                await peer.reply("250 ok")

    return script


@pytest.mark.parametrize("pipelining", [True, False])
async def test_chunking_sends_bdat_without_dot_stuffing(pipelining):
    body = "Subject: bdat\n\n.leading dot\n..two\nend"
    with ScriptedServer(bdat_server(pipelining, refuse={"gone@example.com"})) as srv:
        async with SMTP(**srv.options(timeout=5)) as client:
            refused, reply = await client.sendmail("a@example.com", ["b@example.com", "gone@example.com"], body)
            assert reply == "2.0.0 chunk queued" and list(refused) == ["gone@example.com"]
            with pytest.raises(SMTPRecipientsRefused):
                await client.sendmail("a@example.com", ["gone@example.com"], body)
            deliveries = [d async for d in client.send_many(_batch(3))]
            assert [d.status for d in deliveries] == ["accepted"] * 3
    assert srv.data[0] == b"Subject: bdat\r\n\r\n.leading dot\r\n..two\r\nend\r\n"
    assert len(srv.data) == 4
    bdat_lines = [line for line in srv.lines if line.startswith("BDAT")]
    assert bdat_lines[0] == f"BDAT {len(srv.data[0])} LAST"
    assert not any(line == "DATA" for line in srv.lines)


async def test_server_that_accepts_data_with_no_valid_recipient():
    """RFC 2920: if DATA gets 354 although every RCPT failed, end it with a lone '.' and reset."""

    async def script(peer):
        await greet(peer)
        while line := await peer.readline():
            verb = line.split()[0].upper()
            if verb == "EHLO":
                await peer.reply("250-x\r\n250 PIPELINING")
            elif verb == "RCPT":
                await peer.reply("550 no")
            elif verb == "DATA":
                await peer.reply("354 go ahead anyway")
                data = await peer.read_data()
                await peer.reply("554 no valid recipients" if not data else "250 delivered?!")
            elif verb == "QUIT":
                await peer.reply("221 bye")
                return
            else:
                await peer.reply("250 ok")

    with ScriptedServer(script) as srv:
        async with SMTP(**srv.options(timeout=5)) as client:
            with pytest.raises(SMTPRecipientsRefused):
                await client.sendmail("a@example.com", ["x@example.com"], "Subject: secret\n\nnot to be sent")
            assert (await client.noop()).code == 250
    assert srv.data == [b""]  # only the empty terminator, never the message
    assert "RSET" in srv.lines
