"""Every protocol command of the spec against a real server, its reply checked."""

import pytest

from smtp_nb import (
    SMTP,
    SMTPDataError,
    SMTPHeloError,
    SMTPReadTimeoutError,
    SMTPRecipientRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from tests.conftest import client_for
from tests.scripted import ScriptedServer, greet, plain


async def test_helo_and_ehlo_with_a_name(server):
    async with client_for(server) as client:
        helo = await client.helo("client.example.com")
        assert helo.code == 250 and client.last_helo_response == helo
        ehlo = await client.ehlo(hostname="other.example.com")
        assert ehlo.code == 250 and ehlo.message.startswith("localhost")
        assert client.last_ehlo_response == ehlo
    sent = [e.text for e in client.transcript if e.direction == ">"]
    assert "HELO client.example.com" in sent and "EHLO other.example.com" in sent


async def test_helo_name_with_line_break_is_refused_before_sending():
    with ScriptedServer(plain()) as srv:
        async with SMTP(**srv.options(timeout=5)) as client:
            lines_before = list(srv.lines)
            for bad in ("evil\r\nMAIL FROM:<x@example.com>", "two words", "nul\x00"):
                with pytest.raises(ValueError):
                    await client.ehlo(bad)
            assert (await client.noop()).code == 250
        assert srv.lines[len(lines_before)] == "NOOP"


async def test_ehlo_refusal_raises():
    with ScriptedServer(plain({"HELO": "501 no thanks"})) as srv:
        async with SMTP(**srv.options(timeout=5)) as client:
            with pytest.raises(SMTPHeloError) as info:
                await client.helo("x.example.com")
            assert info.value.code == 501


async def test_help_noop_rset(server):
    async with client_for(server) as client:
        general = await client.help()
        assert general.code == 250 and "EHLO" in general.message
        about = await client.help("MAIL")
        assert about.message.startswith("Syntax: MAIL FROM:")
        assert (await client.noop()).code == 250
        assert (await client.rset()).code == 250


async def test_vrfy_and_expn(server):
    async with client_for(server) as client:
        known = await client.vrfy("alice@example.com")
        assert (known.code, known.message) == (250, "<alice@example.com>")
        unknown = await client.vrfy("nobody@example.com")
        assert unknown.code == 252
        team = await client.expn("team@example.com")
        assert team.code == 250
        assert team.message.split("\n") == ["<alice@example.com>", "<bob@example.com>"]
        with pytest.raises(SMTPResponseException) as info:
            await client.expn("nolist@example.com")
        assert info.value.code == 550


async def test_manual_transaction(server):
    async with client_for(server) as client:
        assert (await client.mail("sender@example.com")).code == 250
        assert (await client.rcpt("rcpt@example.com")).code == 250
        reply = await client.data("Subject: manual\n\n.leading dot\nbody")
        assert reply.code == 250 and reply.message.startswith("OK queued as")
    (message,) = server.messages
    assert (message.mail_from, message.rcpt_tos) == ("sender@example.com", ("rcpt@example.com",))
    assert message.data == b"Subject: manual\r\n\r\n.leading dot\r\nbody\r\n"


async def test_mail_and_rcpt_options_and_refusals(rule_server):
    rule_server.rules["MAIL"] = {"blocked@example.com": "550 5.7.1 sender blocked"}
    rule_server.rules["RCPT"] = {"gone@example.com": "550 5.1.1 no such user"}
    async with client_for(rule_server) as client:
        with pytest.raises(SMTPSenderRefused) as sender:
            await client.mail("blocked@example.com")
        assert (sender.value.code, sender.value.sender) == (550, "blocked@example.com")
        assert (await client.mail("ok@example.com", ["BODY=8BITMIME"])).code == 250
        with pytest.raises(SMTPRecipientRefused) as rcpt:
            await client.rcpt("gone@example.com")
        assert (rcpt.value.code, rcpt.value.recipient) == (550, "gone@example.com")
        assert (await client.rcpt("here@example.com", ["NOTIFY=SUCCESS"])).code == 250
        await client.data("Subject: opts\n\nx")
    (message,) = rule_server.messages
    assert message.mail_options == ("BODY=8BITMIME",)
    assert message.rcpt_options == ("NOTIFY=SUCCESS",)


async def test_data_refused(rule_server):
    rule_server.rules["DATA"] = "554 5.6.0 content rejected"
    async with client_for(rule_server) as client:
        await client.mail("a@example.com")
        await client.rcpt("b@example.com")
        with pytest.raises(SMTPDataError) as info:
            await client.data("Subject: x\n\nspam")
        assert info.value.code == 554
    async with client_for(rule_server) as client:
        with pytest.raises(SMTPDataError) as start:
            await client.data("Subject: x\n\nno envelope")
        assert start.value.code == 503


async def test_execute_command_forms(server):
    async with client_for(server) as client:
        assert (await client.execute_command("NOOP")).code == 250
        assert (await client.execute_command(b"NOOP")).code == 250
        assert (await client.execute_command("NOOP", 5)).code == 250
        assert (await client.execute_command(b"HELP", b"DATA", timeout=5)).message.startswith("Syntax: DATA")
        unknown = await client.execute_command("FROB")
        assert unknown.code == 500
        with pytest.raises(ValueError, match="control character"):
            await client.execute_command("NOOP\r\nQUIT")
        assert client.is_connected


async def test_every_command_accepts_a_timeout(server):
    async with client_for(server) as client:
        await client.ehlo(timeout=5)
        await client.helo(timeout=5)
        await client.help(timeout=5)
        await client.noop(timeout=5)
        await client.rset(timeout=5)
        await client.vrfy("alice@example.com", timeout=5)
        await client.expn("team@example.com", timeout=5)
        await client.mail("a@example.com", timeout=5)
        await client.rcpt("b@example.com", timeout=5)
        await client.data("x", timeout=5)
        await client.sendmail("a@example.com", "b@example.com", "x", timeout=5)
        await client.quit(timeout=5)


async def test_silent_reply_times_out_and_closes():
    async def script(peer):
        await greet(peer)
        while True:
            line = await peer.readline()
            if not line:
                return
            if line.startswith("EHLO"):
                await peer.reply("250 quiet")  # then silence for everything else

    with ScriptedServer(script) as srv:
        client = SMTP(**srv.options(timeout=5))
        await client.connect()
        with pytest.raises(SMTPReadTimeoutError, match=r"did not reply within 0\.2 seconds"):
            await client.noop(timeout=0.2)
        assert not client.is_connected
        with pytest.raises(SMTPServerDisconnected):
            await client.noop()
        await client.connect()  # the next connect works
        client.close()


async def test_quit_unanswered_returns_within_the_timeout():
    async def script(peer):
        await greet(peer)
        while line := await peer.readline():
            if line.startswith("EHLO"):
                await peer.reply("250 ok")
        # QUIT read, never answered; keep the socket open until the client leaves

    with ScriptedServer(script) as srv:
        client = SMTP(**srv.options(timeout=5))
        await client.connect()
        with pytest.raises(SMTPReadTimeoutError):
            await client.quit(timeout=0.2)
        assert not client.is_connected


async def test_quit_answered_by_closing_counts_as_done():
    async def script(peer):
        await greet(peer)
        while line := await peer.readline():
            if line.startswith("QUIT"):
                return  # close without 221
            await peer.reply("250 ok")

    with ScriptedServer(script) as srv:
        client = SMTP(**srv.options(timeout=5))
        await client.connect()
        assert (await client.quit()).code == 221
        assert not client.is_connected


async def test_421_closes_the_connection():
    with ScriptedServer(plain({"NOOP": "421 4.3.2 shutting down"})) as srv:
        client = SMTP(**srv.options(timeout=5))
        await client.connect()
        with pytest.raises(SMTPResponseException) as info:
            await client.noop()
        assert info.value.code == 421
        assert not client.is_connected
