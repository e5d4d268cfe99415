"""Servers that fail mid-conversation: the client raises a clear error, closes, and can connect again."""

import logging

import pytest

from smtp_nb import (
    SMTP,
    SMTPProtocolError,
    SMTPServerDisconnected,
)
from smtp_nb.client.protocol import MAX_LINE_LENGTH
from tests.scripted import ScriptedServer, greet


def closes_during_data(after_dot: bool, ehlo: str = "250-x\r\n250 PIPELINING"):
    async def script(peer):
        await greet(peer)
        while line := await peer.readline():
            verb = line.split()[0].upper()
            if verb == "EHLO":
                await peer.reply(ehlo)
            elif verb == "DATA":
                await peer.reply("354 go")
                if after_dot:
                    await peer.read_data()
                else:
                    await peer.reader.readline()  # first line of the data, then hang up
                return
            else:
                await peer.reply("250 ok")

    return script


@pytest.mark.parametrize("ehlo", ["250-x\r\n250 PIPELINING", "250 x"], ids=["pipelining", "no-pipelining"])
@pytest.mark.parametrize("after_dot", [False, True], ids=["mid-data", "after-dot"])
async def test_server_closes_during_data(after_dot, ehlo):
    with ScriptedServer(closes_during_data(after_dot, ehlo)) as srv:
        client = SMTP(**srv.options(timeout=5))
        await client.connect()
        with pytest.raises(SMTPServerDisconnected, match="closed the connection"):
            await client.sendmail("a@example.com", "b@example.com", "Subject: x\n\n" + "line\n" * 1000)
        assert not client.is_connected
        await client.connect()  # the next connect works
        client.close()


async def test_overlong_reply_line():
    async def script(peer):
        await greet(peer)
        await peer.readline()
        await peer.send("250 " + "x" * (MAX_LINE_LENGTH * 3) + "\r\n")
        await peer.wait_closed_by_client()

    with ScriptedServer(script) as srv:
        client = SMTP(**srv.options(timeout=5))
        with pytest.raises(SMTPProtocolError, match="longer than 8192 bytes"):
            await client.connect()
        assert not client.is_connected


async def test_garbage_instead_of_a_reply():
    async def script(peer):
        await greet(peer)
        await peer.readline()
        await peer.send(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await peer.wait_closed_by_client()

    with ScriptedServer(script) as srv:
        client = SMTP(**srv.options(timeout=5))
        with pytest.raises(SMTPProtocolError, match=r"not an SMTP reply: 'HTTP/1\.1 400 Bad Request'"):
            await client.connect()
        assert not client.is_connected


async def test_close_during_auth():
    async def script(peer):
        await greet(peer)
        await peer.readline()
        await peer.reply("250-x\r\n250 AUTH LOGIN")
        await peer.readline()  # AUTH LOGIN: hang up

    with ScriptedServer(script) as srv:
        client = SMTP(**srv.options(timeout=5))
        await client.connect()
        with pytest.raises(SMTPServerDisconnected):
            await client.login("user", "secret-password")
        assert not client.is_connected


async def test_unsolicited_reply_is_ignored_not_paired_with_the_next_command():
    async def script(peer):
        await greet(peer)
        await peer.readline()
        # One write, so both lines reach the client before it can send NOOP: a reply arriving after
        # NOOP was sent cannot be told apart from NOOP's answer (CI once saw exactly that).
        await peer.send("250 x\r\n250 unsolicited: not an answer to anything\r\n")
        await peer.serve()

    with ScriptedServer(script) as srv:
        async with SMTP(**srv.options(timeout=5)) as client:
            noop = await client.noop()
            assert (noop.code, noop.message) == (250, "ok")
    assert any("ignored a reply nobody asked for" in line for line in client.transcript.lines())


async def test_transcript_hook_and_logger(server, caplog):
    seen = []
    caplog.set_level(logging.DEBUG, logger="smtp_nb.client")
    async with SMTP(**server.client_options(), on_transcript=seen.append) as client:
        await client.sendmail("a@example.com", "b@example.com", "Subject: t\n\nhello")
    texts = [f"{e.direction} {e.text}" for e in seen]
    assert texts[0].startswith("* connecting to 127.0.0.1:")
    assert "> MAIL FROM:<a@example.com> SIZE=21" in texts
    assert "> [message data: 21 bytes]" in texts
    assert any(t.startswith("< 250 OK queued as") for t in texts)
    assert texts[-1] == "* connection closed"
    assert [str(e) for e in client.transcript] == texts
    assert "> MAIL FROM:<a@example.com> SIZE=21" in caplog.text
