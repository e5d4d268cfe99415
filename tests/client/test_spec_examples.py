"""The usage examples of spec/smtp-client-api.md, with smtp_nb in place of the other module, against local servers.

Each example keeps its code as written (host names and ports point at the
test's server); the test checks what it printed and what the server received.
"""

import ssl
from email.message import EmailMessage

import pytest

import smtp_nb
from smtp_nb.server import LocalServer
from tests.conftest import RuleHandler


async def test_basic_client_usage(server, capsys):
    smtp = smtp_nb.SMTP(hostname="localhost", port=server.port)
    try:
        await smtp.connect()
        print(f"Connected: {smtp.is_connected}")
        message = EmailMessage()
        message["From"] = "sender@example.com"
        message["To"] = "recipient@example.com"
        message["Subject"] = "Test Email"
        message.set_content("Hello from SMTP client!")
        response = await smtp.send_message(message)
        print(f"Email sent: {response}")
    finally:
        smtp.close()
    out = capsys.readouterr().out
    assert "Connected: True" in out and "Email sent: ({}, 'OK queued as" in out
    assert server.messages[0].subject == "Test Email"


async def test_context_manager_usage(server, capsys):
    async with smtp_nb.SMTP(hostname="localhost", port=server.port) as smtp:
        print(f"Connected: {smtp.is_connected}")
        for i in range(3):
            response = await smtp.sendmail(
                "sender@example.com", ["recipient@example.com"], f"Subject: Message {i}\n\nThis is message {i}"
            )
            print(f"Message {i} sent: {response[1]}")
    out = capsys.readouterr().out
    assert out.count("sent: OK queued as") == 3
    assert [m.subject for m in server.messages] == ["Message 0", "Message 1", "Message 2"]


async def test_advanced_configuration(capsys):
    with LocalServer(starttls=True, auth=True, users={"your-email@example.com": "your-password"}) as server:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.load_verify_locations(server.ca_path)  # the test CA instead of a public one
        smtp = smtp_nb.SMTP(
            hostname="localhost",
            port=server.port,
            username="your-email@example.com",
            password="your-password",
            start_tls=True,
            validate_certs=True,
            tls_context=context,
            timeout=30,
            local_hostname="my.local.host",
        )
        async with smtp:
            print(f"Supported auth methods: {smtp.supported_auth_methods}")
            print(f"Supports PIPELINING: {smtp.supports_extension('PIPELINING')}")
            print(f"Last EHLO response: {smtp.last_ehlo_response}")
            response = await smtp.sendmail(
                "sender@example.com",
                ["recipient@example.com"],
                "Subject: Advanced Config\n\nEmail with advanced configuration",
                mail_options=["BODY=8BITMIME"],
                rcpt_options=["NOTIFY=SUCCESS,FAILURE"],
            )
            print(f"Email sent with options: {response}")
        received = server.messages[0]
    out = capsys.readouterr().out
    assert "Supported auth methods: ['cram-md5', 'plain', 'login']" in out
    assert "Supports PIPELINING: True" in out
    assert "Last EHLO response: 250 localhost" in out
    assert received.tls and received.login == "your-email@example.com"
    assert "BODY=8BITMIME" in received.mail_options and received.rcpt_options == ("NOTIFY=SUCCESS,FAILURE",)


async def test_error_handling_and_recovery(capsys):
    with LocalServer(auth=True, users={"user": "different_password"}, handler_class=RuleHandler) as server:
        server.rules = {"RCPT": {"invalid@nonexistent.domain": "550 5.1.2 domain does not exist"}}
        smtp = smtp_nb.SMTP(hostname="localhost", port=server.port)
        try:
            await smtp.connect()
            try:
                await smtp.login("user", "password")
            except smtp_nb.SMTPAuthenticationError:
                print("Authentication failed, trying different credentials")
                await smtp.login("user", "different_password")
            try:
                response = await smtp.sendmail(
                    "sender@example.com", ["invalid@nonexistent.domain"], "Subject: Test\n\nTest message"
                )
                for recipient, smtp_response in response[0].items():
                    if smtp_response.code >= 400:
                        print(f"Failed to send to {recipient}: {smtp_response}")
                    else:
                        print(f"Successfully sent to {recipient}")
            except smtp_nb.SMTPRecipientsRefused as e:
                print(f"All recipients refused: {e.recipients}")
            except smtp_nb.SMTPSenderRefused as e:
                print(f"Sender refused: {e.sender}")
        except smtp_nb.SMTPConnectError as e:
            print(f"Connection failed: {e}")
        except smtp_nb.SMTPTimeoutError as e:
            print(f"Operation timed out: {e}")
        finally:
            if smtp.is_connected:
                await smtp.quit()
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "Authentication failed, trying different credentials",
        "All recipients refused: [SMTPRecipientRefused(550, '5.1.2 domain does not exist',"
        " 'invalid@nonexistent.domain')]",
    ]
    assert not server.messages and not smtp.is_connected


async def test_error_handling_when_the_server_is_down(capsys):
    smtp = smtp_nb.SMTP(hostname="127.0.0.1", port=1, timeout=5)
    try:
        await smtp.connect()
    except smtp_nb.SMTPConnectError as e:
        print(f"Connection failed: {e}")
    assert capsys.readouterr().out.startswith("Connection failed: cannot connect to 127.0.0.1:1:")


async def test_low_level_commands(auth_server, capsys):
    smtp = smtp_nb.SMTP(hostname="localhost", port=auth_server.port)
    async with smtp:
        ehlo_response = await smtp.ehlo("my.domain.com")
        print(f"EHLO response: {ehlo_response}")
        if smtp.supported_auth_methods:
            auth_response = await smtp.login("demo", "demo-password")
            print(f"AUTH response: {auth_response}")
        mail_response = await smtp.mail("sender@example.com")
        print(f"MAIL response: {mail_response}")
        rcpt_response = await smtp.rcpt("recipient@example.com")
        print(f"RCPT response: {rcpt_response}")
        data_response = await smtp.data("Subject: Manual\n\nManual message")
        print(f"DATA response: {data_response}")
        rset_response = await smtp.rset()
        print(f"RSET response: {rset_response}")
    out = capsys.readouterr().out
    assert out.startswith("EHLO response: 250 localhost\nPIPELINING\n")
    lines = [line for line in out.splitlines() if " response: " in line]
    assert lines[1:4] == [
        "AUTH response: 235 2.7.0 Authentication successful",
        "MAIL response: 250 OK",
        "RCPT response: 250 OK",
    ]
    assert lines[4].startswith("DATA response: 250 OK queued as")
    assert lines[5] == "RSET response: 250 OK"
    assert auth_server.messages[0].subject == "Manual"


@pytest.mark.parametrize("name", ["SMTP_PORT", "SMTP_TLS_PORT", "SMTP_STARTTLS_PORT", "DEFAULT_TIMEOUT"])
def test_module_constants(name):
    assert (
        getattr(smtp_nb, name)
        == {"SMTP_PORT": 25, "SMTP_TLS_PORT": 465, "SMTP_STARTTLS_PORT": 587, "DEFAULT_TIMEOUT": 60}[name]
    )
    assert smtp_nb.SMTP.AUTH_METHODS == ("cram-md5", "plain", "login")
