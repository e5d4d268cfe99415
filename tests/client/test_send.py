"""sendmail and send_message: results, refusals, options, encodings and limits.

Most tests run twice (``rules_any``): against a server that offers PIPELINING
and one that does not, and must behave the same.
"""

import email.message
from email.message import EmailMessage

import pytest

from smtp_nb import (
    SMTPDataError,
    SMTPMessageTooLarge,
    SMTPNotSupported,
    SMTPRecipientsRefused,
    SMTPResponse,
    SMTPSenderRefused,
)
from smtp_nb.server import LocalServer
from tests.conftest import client_for
from tests.scripted import ScriptedServer, plain


async def test_sendmail_returns_refused_and_data_reply(rules_any):
    async with client_for(rules_any) as client:
        refused, reply = await client.sendmail(
            "a@example.com", ["b@example.com", "c@example.com"], "Subject: hi\n\nbody"
        )
        assert refused == {}
        assert reply.startswith("OK queued as")
        refused, _ = await client.sendmail("a@example.com", "d@example.com", b"Subject: bytes\r\n\r\nbody\r\n")
        assert refused == {}
    first, second = rules_any.messages
    assert first.rcpt_tos == ("b@example.com", "c@example.com")
    assert second.subject == "bytes"


async def test_one_of_three_recipients_refused(rules_any):
    rules_any.rules["RCPT"] = {"gone@example.com": "550 5.1.1 <gone@example.com>: no such user"}
    async with client_for(rules_any) as client:
        refused, _ = await client.sendmail("a@example.com", ["b@example.com", "gone@example.com", "c@example.com"], "x")
    assert refused == {"gone@example.com": SMTPResponse(550, "5.1.1 <gone@example.com>: no such user")}
    assert rules_any.messages[0].rcpt_tos == ("b@example.com", "c@example.com")


async def test_all_recipients_refused_raises_and_resets(rules_any):
    rules_any.rules["RCPT"] = {"x@example.com": "550 no", "y@example.com": "451 4.7.1 greylisted"}
    async with client_for(rules_any) as client:
        with pytest.raises(SMTPRecipientsRefused) as info:
            await client.sendmail("a@example.com", ["x@example.com", "y@example.com"], "x")
        assert [(r.recipient, r.code) for r in info.value.recipients] == [
            ("x@example.com", 550),
            ("y@example.com", 451),
        ]
        assert rules_any.rsets >= 1
        await client.sendmail("a@example.com", "ok@example.com", "after")  # the session is clean
    assert len(rules_any.messages) == 1


async def test_sender_refused_raises_and_resets(rules_any):
    rules_any.rules["MAIL"] = {"spammer@example.com": "553 5.7.1 sender rejected"}
    async with client_for(rules_any) as client:
        with pytest.raises(SMTPSenderRefused) as info:
            await client.sendmail("spammer@example.com", ["b@example.com"], "x")
        assert (info.value.code, info.value.sender) == (553, "spammer@example.com")
        assert rules_any.rsets >= 1
        await client.sendmail("fine@example.com", "b@example.com", "after")
    assert [m.mail_from for m in rules_any.messages] == ["fine@example.com"]


async def test_data_refused_raises_and_resets(rules_any):
    rules_any.rules["DATA"] = "554 5.6.0 message rejected"
    async with client_for(rules_any) as client:
        with pytest.raises(SMTPDataError) as info:
            await client.sendmail("a@example.com", "b@example.com", "x")
        assert info.value.code == 554
        assert client.is_connected
        assert rules_any.rsets >= 1


@pytest.mark.parametrize("pipelining", [True, False])
async def test_data_command_refused(pipelining):
    ehlo = "250-scripted\r\n250 PIPELINING" if pipelining else "250 scripted"
    with ScriptedServer(plain({"DATA": "451 4.3.0 try again later"}, ehlo=ehlo)) as srv:
        from smtp_nb import SMTP

        async with SMTP(**srv.options(timeout=5)) as client:
            with pytest.raises(SMTPDataError) as info:
                await client.sendmail("a@example.com", "b@example.com", "x")
            assert info.value.code == 451
    assert "RSET" in srv.lines
    assert not srv.data


async def test_dot_stuffing_and_line_endings_round_trip(any_server):
    body = "Subject: dots\n\n.\n..two\n.leading\nmiddle.dot\r\nlone\rcr\n."
    async with client_for(any_server) as client:
        await client.sendmail("a@example.com", "b@example.com", body)
    expected = b"Subject: dots\r\n\r\n.\r\n..two\r\n.leading\r\nmiddle.dot\r\nlone\r\ncr\r\n.\r\n"
    assert any_server.messages[0].data == expected


async def test_mail_and_rcpt_options_are_passed_through(rules_any):
    async with client_for(rules_any) as client:
        await client.sendmail(
            "a@example.com",
            ["b@example.com"],
            "Subject: dsn\n\nx",
            mail_options=["BODY=8BITMIME"],
            rcpt_options=["NOTIFY=SUCCESS,FAILURE"],
        )
    message = rules_any.messages[0]
    assert "BODY=8BITMIME" in message.mail_options
    assert message.rcpt_options == ("NOTIFY=SUCCESS,FAILURE",)
    assert any(o.startswith("SIZE=") for o in message.mail_options)


async def test_size_is_declared_and_checked_before_sending():
    with LocalServer(data_size_limit=1000) as srv:
        async with client_for(srv) as client:
            await client.sendmail("a@example.com", "b@example.com", "x" * 100)
            with pytest.raises(SMTPMessageTooLarge, match="at most 1,000 bytes") as info:
                await client.sendmail("a@example.com", "b@example.com", "x" * 2000)
            assert (info.value.size, info.value.limit) == (2002, 1000)
            sent = [e.text for e in client.transcript if e.direction == ">"]
        assert sent.count("MAIL FROM:<a@example.com> SIZE=102") == 1
        assert not any("SIZE=2002" in line for line in sent)
        assert len(srv.messages) == 1


async def test_smtputf8_address_uses_the_extension(any_server):
    async with client_for(any_server) as client:
        await client.sendmail("jürgen@example.com", ["zoë@example.com"], "Subject: utf8\n\nhi")
    message = any_server.messages[0]
    assert message.mail_from == "jürgen@example.com"
    assert "SMTPUTF8" in message.mail_options


async def test_smtputf8_address_without_the_extension_sends_nothing(rule_server):
    rule_server.rules["without"] = ["SMTPUTF8"]
    async with client_for(rule_server) as client:
        with pytest.raises(SMTPNotSupported, match="does not offer SMTPUTF8; nothing was sent"):
            await client.sendmail("a@example.com", ["zoë@example.com"], "x")
        assert not any(e.text.startswith("MAIL") for e in client.transcript)


async def test_eight_bit_body(rule_server):
    async with client_for(rule_server) as client:
        await client.sendmail("a@example.com", "b@example.com", "Subject: é\n\ncafé")
    assert "BODY=8BITMIME" in rule_server.messages[0].mail_options
    assert rule_server.messages[0].data.endswith("café\r\n".encode())
    rule_server.rules["without"] = ["8BITMIME"]
    async with client_for(rule_server) as client:
        with pytest.raises(SMTPNotSupported, match="8BITMIME"):
            await client.sendmail("a@example.com", "b@example.com", "café")
        assert (await client.sendmail("a@example.com", "b@example.com", "plain ascii"))[0] == {}


@pytest.mark.parametrize("eight_bit", [True, False])
async def test_send_message_encodes_for_the_server(rule_server, eight_bit):
    if not eight_bit:
        rule_server.rules["without"] = ["8BITMIME"]
    message = EmailMessage()
    message["From"] = "Sender <sender@example.com>"
    message["To"] = "One <one@example.com>, two@example.com"
    message["Cc"] = "cc@example.com"
    message["Bcc"] = "hidden@example.com"
    message["Subject"] = "Grüße"
    message.set_content("Grüße aus Köln\n.leading dot\n")
    async with client_for(rule_server) as client:
        refused, _ = await client.send_message(message)
    assert refused == {}
    received = rule_server.messages[0]
    assert received.mail_from == "sender@example.com"
    assert received.rcpt_tos == ("one@example.com", "two@example.com", "cc@example.com", "hidden@example.com")
    assert b"hidden@example.com" not in received.data and b"Bcc" not in received.data
    assert received.data.isascii() is (not eight_bit)
    assert ("BODY=8BITMIME" in received.mail_options) is eight_bit
    parsed = received.message
    assert parsed["Subject"] == "Grüße"
    assert parsed.get_content().replace("\r\n", "\n") == "Grüße aus Köln\n.leading dot\n"
    assert message["Bcc"] == "hidden@example.com"  # the caller's message is untouched


async def test_send_message_overrides_and_resent_headers(any_server):
    message = email.message.Message()  # the legacy class works too
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    message["Resent-Date"] = "Mon, 30 Nov 2026 10:00:00 +0000"
    message["Resent-From"] = "resender@example.com"
    message["Resent-To"] = "new@example.com"
    message["Resent-Bcc"] = "secret@example.com"
    message.set_payload("resent body")
    async with client_for(any_server) as client:
        await client.send_message(message)
        await client.send_message(message, sender="x@example.com", recipients="y@example.com")
    first, second = any_server.messages
    assert (first.mail_from, first.rcpt_tos) == ("resender@example.com", ("new@example.com", "secret@example.com"))
    assert b"Resent-Bcc" not in first.data
    assert (second.mail_from, second.rcpt_tos) == ("x@example.com", ("y@example.com",))


async def test_send_message_needs_sender_and_recipients(server):
    message = EmailMessage()
    message.set_content("x")
    async with client_for(server) as client:
        with pytest.raises(ValueError, match="no From or Sender"):
            await client.send_message(message)
        message["From"] = "a@example.com"
        with pytest.raises(ValueError, match="no To, Cc or Bcc"):
            await client.send_message(message)


@pytest.mark.parametrize(
    ("sender", "recipients"),
    [
        ("a@example.com\r\nRCPT TO:<victim@example.com>", ["b@example.com"]),
        ("a@example.com", ["b@example.com", "c@example.com\nDATA"]),
        ("a@example.com", ["b@exa\x00mple.com"]),
        ("a@example.com", []),
        ("a@example.com", ["not an address"]),
    ],
)
async def test_bad_addresses_are_refused_before_anything_is_sent(any_server, sender, recipients):
    async with client_for(any_server) as client:
        before = len(client.transcript)
        with pytest.raises(ValueError):
            await client.sendmail(sender, recipients, "x")
        assert len(client.transcript) == before
        assert client.is_connected
    assert not any_server.messages


async def test_null_sender_for_bounces(server):
    async with client_for(server) as client:
        await client.sendmail("<>", "b@example.com", "Subject: bounce\n\nx")
    assert "MAIL FROM:<> SIZE=22" in [e.text for e in client.transcript]
    assert server.messages[0].mail_from == "<>"  # how aiosmtpd reports the null reverse-path


async def test_one_shot_send(starttls_server):
    import smtp_nb

    options = {"hostname": starttls_server.host, "port": starttls_server.port, "cert_bundle": starttls_server.ca_path}
    message = EmailMessage()
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    message["Subject"] = "one shot"
    message.set_content("hi")
    refused, reply = await smtp_nb.send(message, username="demo", password="demo-password", **options)
    assert refused == {} and reply.startswith("OK queued as")
    await smtp_nb.send("Subject: raw\n\nhi", sender="c@example.com", recipients=["d@example.com"], **options)
    with pytest.raises(ValueError, match="needs sender= and recipients="):
        await smtp_nb.send("Subject: raw\n\nhi", **options)
    first, second = starttls_server.messages
    assert (first.subject, first.tls, first.login) == ("one shot", True, "demo")
    assert (second.mail_from, second.rcpt_tos) == ("c@example.com", ("d@example.com",))
