"""Injection: no argument, message or merge row can add a command, a recipient or a header.

Every command argument with CR, LF or NUL is refused with a ValueError
before a byte leaves: each test checks the exact bytes a ScriptedServer
received. Message data cannot end early (SMTP smuggling), even at a server
that takes a bare LF or CR as a line end. A merge row cannot add headers
or recipients, whatever its fields hold.
"""

from __future__ import annotations

import email.message
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from smtp_nb import SMTP
from tests.scripted import Peer, ScriptedServer, greet

BAD = ["\r", "\n", "\x00", "\r\n"]
EHLO = "250-scripted.example\r\n250-PIPELINING\r\n250-SMTPUTF8\r\n250 AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2"
AFTER_CONNECT = b"NOOP\r\nQUIT\r\n"  # all the server may see once connected: the probe, then the goodbye

Call = Callable[[SMTP, str], Awaitable[Any]]


def a_message() -> email.message.EmailMessage:
    message = email.message.EmailMessage()
    message["Subject"] = "x"
    message.set_content("x")
    return message


CALLS: dict[str, Call] = {
    "HELO name": lambda c, bad: c.helo(f"client{bad}MAIL FROM:<x@example.com>"),
    "HELO hostname=": lambda c, bad: c.helo(hostname=f"client{bad}RSET"),
    "EHLO name": lambda c, bad: c.ehlo(f"client{bad}RSET"),
    "EHLO hostname=": lambda c, bad: c.ehlo(hostname=f"client{bad}RSET"),
    "MAIL address": lambda c, bad: c.mail(f"a@example.com>{bad}RCPT TO:<victim@example.com"),
    "MAIL option": lambda c, bad: c.mail("a@example.com", [f"SIZE=1{bad}RCPT"]),
    "RCPT address": lambda c, bad: c.rcpt(f"b@example.com{bad}DATA"),
    "RCPT option": lambda c, bad: c.rcpt("b@example.com", [f"NOTIFY=NEVER{bad}DATA"]),
    "sendmail sender": lambda c, bad: c.sendmail(f"a@example.com{bad}RCPT TO:<v@example.com>", "b@example.com", "x"),
    "sendmail recipient": lambda c, bad: c.sendmail("a@example.com", ["b@example.com", f"c@example.com{bad}"], "x"),
    "sendmail mail_options": lambda c, bad: c.sendmail("a@example.com", "b@example.com", "x", mail_options=[bad]),
    "sendmail rcpt_options": lambda c, bad: c.sendmail(
        "a@example.com", "b@example.com", "x", rcpt_options=[f"NOTIFY=NEVER{bad}"]
    ),
    "send_message sender=": lambda c, bad: c.send_message(
        a_message(), sender=f"a@example.com{bad}", recipients=["b@example.com"]
    ),
    "send_message recipients=": lambda c, bad: c.send_message(
        a_message(), sender="a@example.com", recipients=[f"b@example.com{bad}RSET"]
    ),
    "VRFY address": lambda c, bad: c.vrfy(f"alice{bad}RSET"),
    "VRFY option": lambda c, bad: c.vrfy("alice", options=[f"SMTPUTF8{bad}"]),
    "EXPN list": lambda c, bad: c.expn(f"team{bad}QUIT"),
    "HELP topic": lambda c, bad: c.help(f"MAIL{bad}RSET"),
    "execute_command str": lambda c, bad: c.execute_command(f"NOOP{bad}RSET"),
    "execute_command parts": lambda c, bad: c.execute_command(b"MAIL", f"FROM:<a@example.com>{bad}RCPT".encode()),
    "execute_command, timeout": lambda c, bad: c.execute_command(f"VRFY a{bad}b", 5),
    "AUTH PLAIN username": lambda c, bad: c.auth_plain(f"ada{bad}", "password"),
    "AUTH LOGIN username": lambda c, bad: c.auth_login(f"ada{bad}", "password"),
    "AUTH CRAM-MD5 username": lambda c, bad: c.auth_crammd5(f"ada{bad}", "password"),
    "AUTH XOAUTH2 username": lambda c, bad: c.auth_xoauth2(f"ada{bad}\x01auth=Bearer other-token", "token"),
    "login() username": lambda c, bad: c.login(f"ada{bad}", "password"),
    "login() bytes username": lambda c, bad: c.login(f"ada{bad}".encode(), "password"),
}


async def serve_plainly(peer: Peer) -> None:
    await greet(peer)
    await peer.serve(ehlo=EHLO)


@pytest.mark.parametrize("name", list(CALLS))
async def test_control_characters_in_arguments_are_refused_before_sending(name):
    with ScriptedServer(serve_plainly) as srv:
        client = SMTP(**srv.options(timeout=5, local_hostname="client.example"))
        await client.connect()
        connected = len(srv.received)
        for bad in BAD:
            with pytest.raises(ValueError, match="control character") as info:
                await CALLS[name](client, bad)
            assert repr(bad)[1:-1] in str(info.value) or repr(bad[0])[1:-1] in str(info.value)
            assert client.is_connected
        assert (await client.noop()).code == 250
        await client.quit()
    assert bytes(srv.received[connected:]) == AFTER_CONNECT


@pytest.mark.parametrize(
    "option", ["local_hostname", "username", "hostname"], ids=["local_hostname", "username", "hostname"]
)
async def test_bad_options_are_refused_before_connecting(option):
    with ScriptedServer(serve_plainly) as srv:
        for bad in BAD:
            value = f"name{bad}RSET"
            with pytest.raises(ValueError, match="control character"):
                SMTP(**{**srv.options(timeout=5), option: value})
            client = SMTP(**srv.options(timeout=5))
            with pytest.raises(ValueError, match="control character"):
                await client.connect(**{option: value})
            assert not client.is_connected
        assert srv.connections == 0


# -- message data: SMTP smuggling ---------------------------------------------------------------

#: Every way a lenient server may read "end of data": a dot alone between any two line ends.
LENIENT_END = re.compile(rb"(?:\r\n|\n|\r)\.(?:\r\n|\n|\r)")
SMUGGLED = "MAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nsmuggled\r\n.\r\n"


def lenient_server(ehlo: str, seen: list[bytes]) -> Callable[[Peer], Awaitable[None]]:
    """A server that ends the data at the first dot alone between any line ends (LF, CR or CRLF).

    ``seen`` gets the bytes it read after the end it found, before its reply: any
    there were smuggled in by the message.
    """

    async def script(peer: Peer) -> None:
        await greet(peer)
        while line := await peer.readline():
            verb = line.split(" ")[0].upper()
            if verb == "EHLO":
                await peer.reply(ehlo)
            elif verb == "DATA":
                await peer.reply("354 go ahead")
                buffer = b"\r\n"  # the DATA line's end: a dot first in the data is at a line start
                while not (match := LENIENT_END.search(buffer)):
                    chunk = await peer.reader.read(65536)
                    if not chunk:
                        return
                    buffer += chunk
                peer.server.data.append(buffer[2 : match.start()])
                seen.append(buffer[match.end() :])
                await peer.reply("250 2.0.0 queued")
            elif verb == "QUIT":
                await peer.reply("221 bye")
                return
            else:
                await peer.reply("250 ok")

    return script


@pytest.mark.parametrize("ending", ["\n.\n", "\r.\r", "\r\n.\n", "\n.\r\n", "\r\n.\r\n", "\r.\r\n", "\n.\r"])
@pytest.mark.parametrize("ehlo", ["250-x\r\n250 PIPELINING", "250 x"], ids=["pipelining", "no-pipelining"])
async def test_message_data_cannot_end_early_even_at_a_lenient_server(ending, ehlo):
    body = f"Subject: smuggling\r\n\r\nbefore{ending}{SMUGGLED}after"
    seen: list[bytes] = []
    with ScriptedServer(lenient_server(ehlo, seen)) as srv:
        async with SMTP(**srv.options(timeout=5, local_hostname="client.example")) as client:
            refused, _ = await client.sendmail("a@example.com", ["b@example.com"], body)
            assert refused == {}
            deliveries = [d async for d in client.send_many([("a@example.com", ["b@example.com"], body)])]
            assert [d.status for d in deliveries] == ["accepted"]
    assert seen == [b"", b""]  # nothing after the one end of data each time
    envelope = [line.split(":")[0] for line in srv.lines if line.startswith(("MAIL", "RCPT"))]
    assert envelope == ["MAIL FROM", "RCPT TO"] * 2
    assert not any("smuggled@evil.example" in line for line in srv.lines)
    for data in srv.data:
        assert b"MAIL FROM:<smuggled@evil.example>" in data  # it arrived, as message text
