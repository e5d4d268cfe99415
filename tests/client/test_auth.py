"""Authentication: each method, wrong passwords, method choice, and credentials kept out of sight."""

import base64
import logging

import pytest

from smtp_nb import (
    SMTP,
    SMTPAuthenticationError,
    SMTPNotSupported,
    SMTPSecurityError,
)
from smtp_nb.client.login import is_local_peer
from smtp_nb.server import DEMO_USERS
from tests.conftest import client_for
from tests.scripted import ScriptedServer, greet

PASSWORD = DEMO_USERS["demo"]
METHODS = ["auth_plain", "auth_login", "auth_crammd5", "auth_xoauth2"]


@pytest.mark.parametrize("method", METHODS)
async def test_each_method_logs_in(auth_server, method):
    async with client_for(auth_server) as client:
        response = await getattr(client, method)("demo", PASSWORD)
        assert response.code == 235
        assert client.authenticated_as == "demo"
        await client.sendmail("demo@example.com", "b@example.com", "Subject: authed\n\nhi")
    assert auth_server.messages[0].login == "demo"


@pytest.mark.parametrize("method", METHODS)
async def test_wrong_password_for_each_method(auth_server, method):
    async with client_for(auth_server) as client:
        with pytest.raises(SMTPAuthenticationError) as info:
            await getattr(client, method)("demo", "wrong-password")
        assert info.value.code == 535
        assert client.authenticated_as is None
        assert client.is_connected  # the session goes on: another try is possible
        assert (await client.auth_plain("demo", PASSWORD)).code == 235


async def test_login_prefers_cram_md5(auth_server):
    async with client_for(auth_server) as client:
        assert client.supported_auth_methods == ["cram-md5", "plain", "login"]
        await client.login("demo", PASSWORD)
    assert "AUTH CRAM-MD5" in [e.text for e in client.transcript]


@pytest.mark.parametrize("method", ["plain", "LOGIN", "cram-md5", "xoauth2"])
async def test_login_with_a_chosen_method(auth_server, method):
    async with client_for(auth_server) as client:
        assert (await client.login("demo", PASSWORD, method=method)).code == 235
    assert any(e.text.upper().startswith(f"AUTH {method.upper()}") for e in client.transcript)


async def test_login_wrong_password_tries_every_method_then_raises(auth_server):
    async with client_for(auth_server) as client:
        with pytest.raises(SMTPAuthenticationError):
            await client.login("demo", "nope")
    tried = [e.text.split()[1] for e in client.transcript if e.text.startswith("AUTH ")]
    assert tried == ["CRAM-MD5", "PLAIN", "LOGIN"]


async def test_credentials_in_constructor_log_in_on_connect(auth_server):
    async with client_for(auth_server, username="demo", password=PASSWORD) as client:
        assert client.authenticated_as == "demo"
    with pytest.raises(SMTPAuthenticationError):
        async with client_for(auth_server, username="demo", password="bad"):
            pass


async def test_oauth_token_generator(auth_server):
    async def token():
        return PASSWORD

    async with client_for(auth_server, username="demo", oauth_token_generator=token) as client:
        assert client.authenticated_as == "demo"
    assert any(e.text.startswith("AUTH XOAUTH2 ") for e in client.transcript)


async def test_unknown_or_unoffered_method(auth_server, server):
    async with client_for(auth_server) as client:
        with pytest.raises(ValueError, match="unknown AUTH method"):
            await client.login("demo", PASSWORD, method="kerberos")
    async with client_for(server) as client:
        with pytest.raises(SMTPNotSupported, match="does not offer AUTH"):
            await client.login("demo", PASSWORD)


async def test_auth_after_starttls_only(starttls_server):
    async with client_for(starttls_server, start_tls=False) as client:
        with pytest.raises(SMTPNotSupported, match="only after STARTTLS"):
            await client.login("demo", PASSWORD)
    async with client_for(starttls_server, username="demo", password=PASSWORD) as client:
        assert client.is_tls and client.authenticated_as == "demo"


async def test_login_method_that_ignores_the_initial_response_gets_the_username_first():
    """A server asking "Username:" after AUTH LOGIN <user> must not receive the password there."""

    async def script(peer):
        await greet(peer)
        await peer.readline()
        await peer.reply("250-picky\r\n250 AUTH LOGIN")
        await peer.readline()  # AUTH LOGIN <user>
        await peer.reply("334 " + base64.b64encode(b"Username:").decode())
        user = base64.b64decode(await peer.readline())
        await peer.reply("334 " + base64.b64encode(b"Password:").decode())
        password = base64.b64decode(await peer.readline())
        ok = (user, password) == (b"demo", PASSWORD.encode())
        await peer.reply("235 ok" if ok else "535 wrong")
        await peer.serve()

    with ScriptedServer(script) as srv:
        async with SMTP(**srv.options(timeout=5)) as client:
            assert (await client.auth_login("demo", PASSWORD)).code == 235


def test_local_peer_decision():
    assert is_local_peer(("127.0.0.1", 25))
    assert is_local_peer(("127.8.9.1", 25))
    assert is_local_peer(("::1", 25, 0, 0))
    assert is_local_peer(("::ffff:127.0.0.1", 25, 0, 0))
    assert is_local_peer("/run/smtp.sock")
    assert not is_local_peer(("192.0.2.10", 25))
    assert not is_local_peer(("2001:db8::1", 25, 0, 0))
    assert not is_local_peer(("mail.example.com", 25))


async def test_plaintext_auth_to_another_host_is_refused_unless_allowed(auth_server, monkeypatch):
    """The loopback server is made to look remote; credentials then need TLS or the explicit override."""
    monkeypatch.setattr("smtp_nb.client.login.is_local_peer", lambda peer: False)
    async with client_for(auth_server) as client:
        with pytest.raises(SMTPSecurityError, match="allow_plaintext_auth=True"):
            await client.login("demo", PASSWORD)
        for method in METHODS:
            with pytest.raises(SMTPSecurityError):
                await getattr(client, method)("demo", PASSWORD)
        assert not any(e.text.startswith("AUTH") for e in client.transcript)
    async with client_for(auth_server, allow_plaintext_auth=True) as client:
        assert (await client.login("demo", PASSWORD)).code == 235


async def test_password_never_shown(auth_server, caplog):
    caplog.set_level(logging.DEBUG, logger="smtp_nb.client")
    client = client_for(auth_server, username="demo", password=PASSWORD)
    assert PASSWORD not in repr(client) and PASSWORD not in repr(vars(client))
    assert PASSWORD not in repr(client.password) and client.password.reveal() == PASSWORD
    async with client:
        assert client.authenticated_as == "demo"
    seen = [*client.transcript.lines(), repr(client)]
    for method in METHODS:
        async with client_for(auth_server) as client:
            with pytest.raises(SMTPAuthenticationError) as info:
                await getattr(client, method)("demo", "not-" + PASSWORD)
            seen.append(str(info.value) + repr(info.value))
            assert (await getattr(client, method)("demo", PASSWORD)).code == 235
        seen += client.transcript.lines()
    text = "\n".join(seen) + caplog.text
    for form in (PASSWORD, base64.b64encode(PASSWORD.encode()).decode()):
        assert form not in text
    assert "AUTH PLAIN ********" in text and "> ********" in text and "smtp_nb.client" in caplog.text


async def test_server_echoing_the_credentials_is_scrubbed():
    async def script(peer):
        await greet(peer)
        await peer.readline()
        await peer.reply("250-echo\r\n250 AUTH PLAIN")
        line = await peer.readline()
        await peer.reply(f"535 bad credentials: {line} ({base64.b64decode(line.split()[-1])[6:].decode()})")
        await peer.serve()

    with ScriptedServer(script) as srv:
        async with SMTP(**srv.options(timeout=5)) as client:
            with pytest.raises(SMTPAuthenticationError) as info:
                await client.auth_plain("demo", PASSWORD)
    assert PASSWORD not in str(info.value) and "********" in info.value.message
    assert PASSWORD not in "\n".join(client.transcript.lines()).replace("\n", "")
