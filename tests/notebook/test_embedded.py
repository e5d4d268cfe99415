"""The embedded server as ``%smtp_server`` starts it; mistakes that must not echo a password or raise a traceback."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

import smtp_nb.server
from smtp_nb.client import SMTP, SMTPSenderRefused
from smtp_nb.notebook.session import get_session
from tests.notebook.conftest import run, shown

SECRET = "hunter2-correct-horse"


def test_auth_needs_tls_unless_plaintext_is_asked_for(ip):
    with pytest.raises(UsageError, match="--auth offers AUTH only over TLS: add --starttls"):
        ip.run_cell("%smtp_server --auth")
    with pytest.raises(UsageError, match="--auth-plaintext goes with --auth"):
        ip.run_cell("%smtp_server --auth-plaintext")
    assert get_session().server is None


async def test_auth_is_offered_only_after_starttls_and_mail_waits_for_a_login(ip):
    run(ip, "%smtp_server --starttls --auth")
    server = get_session().server
    async with SMTP(hostname="127.0.0.1", port=server.port, start_tls=False, timeout=10) as plain:
        assert "auth" not in plain.esmtp_extensions and "starttls" in plain.esmtp_extensions
    async with SMTP(**server.client_options(), timeout=10) as tls:
        assert tls.supported_auth_methods  # offered once encrypted
        with pytest.raises(SMTPSenderRefused) as refused:
            await tls.sendmail("a@example.com", ["b@example.com"], "Subject: x\n\nno login")
        assert refused.value.code == 530
    assert server.messages == []


async def test_auth_plaintext_offers_auth_in_clear_and_still_requires_it(ip):
    run(ip, "%smtp_server --auth --auth-plaintext")
    server = get_session().server
    async with SMTP(hostname="127.0.0.1", port=server.port, timeout=10) as client:
        assert client.supported_auth_methods
        with pytest.raises(SMTPSenderRefused):
            await client.sendmail("a@example.com", ["b@example.com"], "Subject: x\n\nno login")
        await client.login("demo", smtp_nb.server.demo_password())
        await client.sendmail("a@example.com", ["b@example.com"], "Subject: x\n\nlogged in")
    assert [m.login for m in server.messages] == ["demo"]


def test_demo_password_is_random_for_each_server_and_readable(ip):
    run(ip, "%smtp_server --starttls --auth")
    first = get_session().server
    password = smtp_nb.server.demo_password()
    assert password == first.users["demo"] == smtp_nb.server.demo_password(first.port)
    assert password != smtp_nb.server.DEMO_USERS["demo"] and len(password) >= 16
    report, _ = run(ip, "%smtp_connect")
    assert report.capabilities.user == "demo"  # %smtp_connect with no host logs in by itself
    run(ip, "%smtp_server --stop")
    with pytest.raises(LookupError, match="no embedded server with AUTH runs: start one with"):
        smtp_nb.server.demo_password()
    run(ip, "%smtp_server --starttls --auth")
    assert smtp_nb.server.demo_password() != password


def test_reload_ext_says_what_it_closed(ip):
    run(ip, "%smtp_server")
    run(ip, "%smtp_connect")
    run(ip, "%%smtp_send --to b@example.com --from a@example.com\nSubject: x\n\nbody")
    port = get_session().server.port
    with shown() as captured:
        ip.run_line_magic("reload_ext", "smtp_nb")
    assert captured.stdout == (
        f"smtp_nb closed connection 'default' (127.0.0.1:{port}), "
        f"the embedded server on port {port} (its 1 message(s) discarded)\n"
    )
    assert get_session().server is None and get_session().names() == []
    with shown() as captured:
        ip.run_line_magic("reload_ext", "smtp_nb")
    assert captured.stdout == ""  # nothing was open


def test_a_raw_command_with_a_tab_is_one_line(ip, server):
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    with pytest.raises(UsageError, match=r"^%smtp: AUTH cannot be sent raw"):
        ip.run_cell("%smtp AUTH\tPLAIN AGRlbW8AZGVtby1wYXNzd29yZA==")
    with pytest.raises(UsageError, match=r"^%smtp: the command holds a control character \(a tab"):
        ip.run_cell("%smtp VRFY\talice@example.com")


@pytest.mark.parametrize("line", [f"smtp.example.com {SECRET}", f"smtp.example.com:{SECRET}", f"[::1]:{SECRET}"])
def test_a_password_typed_as_an_argument_is_never_echoed(ip, line):
    with shown() as captured, pytest.raises(UsageError) as raised:
        ip.run_cell(f"%smtp_connect {line} --user ada")
    message = str(raised.value)
    assert "not shown" in message
    assert SECRET not in message + captured.stdout + captured.stderr
