"""Code written for aiosmtplib works here too: argument checks, timeouts, OAuth, TLS errors and message phrases.

Where a phrase is what such code matches on, the same check runs against aiosmtplib itself.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import tempfile
import threading

import aiosmtplib
import pytest
import trustme

from smtp_nb import (
    SMTP,
    SMTPConnectError,
    SMTPConnectTimeoutError,
    SMTPException,
    SMTPNotSupported,
    SMTPReadTimeoutError,
    SMTPServerDisconnected,
)
from tests.conftest import client_for
from tests.scripted import ScriptedServer, plain

NO_UTF8 = "250-scripted\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN"


def lines_from(srv: ScriptedServer, verb: str) -> list[str]:
    return [line for line in srv.lines if line.upper().startswith(verb)]


# -- arguments checked before anything is sent ---------------------------------------


@pytest.mark.parametrize("argument", ["a b", "x SIZE=1", "<postmaster>", "user>", "tab\there", ""])
@pytest.mark.parametrize("verb", ["vrfy", "expn"])
async def test_lookup_argument_with_spaces_or_brackets_is_refused_before_sending(verb, argument):
    with ScriptedServer(plain()) as srv:
        async with SMTP(**srv.options(timeout=5)) as client:
            with pytest.raises(ValueError, match=r"one word|control character"):
                await getattr(client, verb)(argument)
            assert (await getattr(client, verb)("team-list")).code == 250
    assert lines_from(srv, verb.upper()) == [f"{verb.upper()} team-list"]


@pytest.mark.parametrize("verb", ["vrfy", "expn"])
async def test_lookup_with_smtputf8_needs_the_server_to_offer_it(verb):
    with ScriptedServer(plain(ehlo=NO_UTF8)) as srv:
        async with SMTP(**srv.options(timeout=5)) as client:
            with pytest.raises(SMTPNotSupported, match="SMTPUTF8 is not supported"):
                await getattr(client, verb)("jürgen", options=["SMTPUTF8"])
            with pytest.raises(SMTPNotSupported, match="SMTPUTF8 is not supported"):
                await getattr(client, verb)("ada", options=["SMTPUTF8"])
    assert lines_from(srv, verb.upper()) == []


@pytest.mark.parametrize("verb", ["helo", "ehlo"])
async def test_empty_hello_name_is_refused_and_none_means_this_host(verb, server):
    async with client_for(server) as client:
        with pytest.raises(ValueError, match="must be one word"):
            await getattr(client, verb)("")
        assert (await getattr(client, verb)(None)).code == 250
        assert client.transcript[-2].text == f"{verb.upper()} {client.local_hostname}"


async def test_mail_and_rcpt_encode_the_address_with_encoding():
    with ScriptedServer(plain(ehlo="250-scripted\r\n250 SMTPUTF8")) as srv:
        async with SMTP(**srv.options(timeout=5)) as client:
            with pytest.raises(UnicodeEncodeError, match="encoding='utf-8'"):
                await client.mail("jürgen@example.com", ["SMTPUTF8"])
            await client.mail("ada@example.com")
            with pytest.raises(UnicodeEncodeError):
                await client.rcpt("jürgen@example.com")
            await client.rcpt("jürgen@example.com", encoding="utf-8")
            await client.rset()
            await client.mail("jürgen@example.com", ["SMTPUTF8"], encoding="utf-8")
    assert "MAIL FROM:<ada@example.com>\r\nRCPT TO:<jürgen@example.com>\r\n".encode() in srv.received
    assert "MAIL FROM:<jürgen@example.com> SMTPUTF8\r\n".encode() in srv.received
    assert srv.received.count(b"MAIL FROM") == 2


@pytest.mark.parametrize("where", [{"sock": "sock"}, {"socket_path": "/tmp/smtp.sock"}])
def test_use_tls_over_a_given_socket_needs_a_hostname_to_check(where):
    with socket.socket() as sock:
        given = {k: sock if v == "sock" else v for k, v in where.items()}
        with pytest.raises(ValueError, match="needs hostname="):
            SMTP(use_tls=True, **given)
        assert SMTP(use_tls=True, hostname="mx.example.com", **given).hostname == "mx.example.com"
        assert not SMTP(use_tls=True, validate_certs=False, **given).validate_certs
        relaxed = ssl.create_default_context()
        relaxed.check_hostname = False
        assert SMTP(use_tls=True, tls_context=relaxed, **given).tls_context is relaxed
        with pytest.raises(ValueError, match="needs hostname="):
            SMTP(**given).options.replace(use_tls=True)


# -- timeout=0 ---------------------------------------------------------------------------


async def test_timeout_zero_expires_at_once_and_leaves_the_client_disconnected(server):
    client = SMTP(**server.client_options(), timeout=0)
    assert client.timeout == 0
    with pytest.raises(SMTPConnectTimeoutError, match=f"Timed out connecting to 127.0.0.1 on port {server.port}"):
        await client.connect()
    assert not client.is_connected
    patient = SMTP(**server.client_options(), timeout=10)
    with pytest.raises(SMTPConnectTimeoutError, match="on port"):
        await patient.connect(timeout=0)
    assert not patient.is_connected
    async with patient:
        assert (await patient.noop(timeout=10)).code == 250
    for _ in range(20):  # a command with timeout=0 expires before any reply, as asyncio.wait_for(..., 0) does
        async with patient:
            with pytest.raises(SMTPReadTimeoutError):
                await patient.noop(timeout=0)
            assert not patient.is_connected


# -- OAuth -------------------------------------------------------------------------------


async def test_oauth_without_a_username_refuses_to_connect():
    asked = []

    async def token() -> str:
        asked.append(1)
        return "token"

    with ScriptedServer(plain()) as srv:
        client = SMTP(**srv.options(timeout=5), oauth_token_generator=token)
        with pytest.raises(SMTPException, match="username is required"):
            await client.connect()
        assert not client.is_connected
    assert srv.connections == 0 and not asked


async def test_oauth_against_a_server_without_xoauth2_asks_for_no_token():
    asked = []

    async def token() -> str:
        asked.append(1)
        return "token"

    with ScriptedServer(plain(ehlo=NO_UTF8)) as srv:
        client = SMTP(**srv.options(timeout=5), username="ada@example.com", oauth_token_generator=token)
        with pytest.raises(SMTPNotSupported, match="does not support XOAUTH2"):
            await client.connect()
        assert not client.is_connected
    assert not asked and lines_from(srv, "AUTH") == []


# -- TLS failures are SMTPConnectError and ssl.SSLError at once ----------------------------------


async def test_untrusted_certificate_is_a_connect_error_and_a_verification_error(tls_server):
    client = SMTP(hostname="127.0.0.1", port=tls_server.port, use_tls=True, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        await client.connect()
    assert isinstance(info.value, SMTPConnectError)
    assert "failed verification" in str(info.value) and "cert_bundle=" in str(info.value)
    assert info.value.verify_code != 0
    assert not client.is_connected


async def test_untrusted_certificate_after_starttls_is_both_too(starttls_server):
    client = SMTP(hostname="127.0.0.1", port=starttls_server.port, start_tls=True, timeout=10)
    with pytest.raises(SMTPConnectError) as info:
        await client.connect()
    assert isinstance(info.value, ssl.SSLCertVerificationError)


@pytest.fixture(params=["TLSv1_3", "TLSv1_2"])
def client_cert_server(request):
    """A TLS server (blocking ssl, so it sends its alert) that demands a client certificate."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    context.maximum_version = getattr(ssl.TLSVersion, request.param)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"220 only with a certificate\r\n")
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with tempfile.TemporaryDirectory() as folder:
        ca_path = os.path.join(folder, "ca.pem")
        ca.cert_pem.write_to_path(ca_path)
        yield listener.getsockname()[1], ca_path
    thread.join(10)
    listener.close()


async def test_refused_client_certificate_is_a_connect_error_and_an_ssl_error(client_cert_server):
    port, ca_path = client_cert_server
    client = SMTP(hostname="127.0.0.1", port=port, use_tls=True, cert_bundle=ca_path, timeout=10)
    with pytest.raises(ssl.SSLError) as info:
        await client.connect()
    assert isinstance(info.value, SMTPConnectError)
    assert "TLS handshake with 127.0.0.1 failed" in str(info.value) and "client_cert=" in str(info.value)
    assert not client.is_connected


# -- the spec's execute_command signature ---------------------------------------------------------


async def test_execute_command_takes_the_spec_parameter_names(server):
    async with client_for(server) as client:
        assert (await client.execute_command(command="NOOP", timeout=5)).code == 250
        assert (await client.execute_command(command=b"NOOP")).code == 250
        assert (await client.execute_command("NOOP", 5)).code == 250
        assert (await client.execute_command(b"HELP", b"DATA")).message.startswith("Syntax: DATA")


# -- the phrases aiosmtplib code matches on, checked on both clients -----------------------------

CLIENTS = [pytest.param(SMTP, id="smtp_nb"), pytest.param(aiosmtplib.SMTP, id="aiosmtplib")]


@pytest.mark.parametrize("cls", CLIENTS)
async def test_phrase_connection_already_using_tls(cls, tls_server):
    async with cls(**tls_server.client_options(), timeout=10) as client:
        with pytest.raises(Exception, match="Connection already using TLS"):
            await client.starttls()


@pytest.mark.parametrize("cls", CLIENTS)
async def test_phrase_starttls_extension_not_supported(cls, server):
    async with cls(**server.client_options(), timeout=10) as client:
        with pytest.raises(Exception, match="STARTTLS extension not supported"):
            await client.starttls()


@pytest.mark.parametrize("cls", CLIENTS)
async def test_phrase_try_connecting_via_tls(cls, server):
    async with cls(**server.client_options(), timeout=10) as client:
        with pytest.raises(Exception, match=r"Try connecting via TLS \(or STARTTLS\)"):
            await client.login("ada", "secret")


@pytest.mark.parametrize("cls", CLIENTS)
async def test_phrase_server_not_connected(cls):
    with pytest.raises(SMTPServerDisconnected if cls is SMTP else aiosmtplib.SMTPServerDisconnected) as info:
        await cls(hostname="127.0.0.1", port=9).execute_command(b"NOOP")
    assert "Server not connected" in str(info.value)


@pytest.mark.parametrize("cls", CLIENTS)
def test_phrase_mutually_exclusive(cls):
    async def token() -> str:
        return "token"

    with pytest.raises(ValueError, match="mutually exclusive"):
        cls(username="ada", password="secret", oauth_token_generator=token)


@pytest.mark.parametrize("cls", CLIENTS)
async def test_phrase_smtputf8_is_not_supported(cls):
    with ScriptedServer(plain(ehlo=NO_UTF8)) as srv:
        async with cls(**srv.options(timeout=5)) as client:
            with pytest.raises(Exception, match="SMTPUTF8 is not supported"):
                await client.sendmail("ada@example.com", ["bob@example.com"], "hi\r\n", mail_options=["SMTPUTF8"])
            if cls is SMTP:  # aiosmtplib sends a non-ASCII address as ASCII and fails with UnicodeEncodeError
                with pytest.raises(SMTPNotSupported, match="SMTPUTF8 is not supported"):
                    await client.sendmail("jürgen@example.com", ["bob@example.com"], "hi\r\n")
    assert lines_from(srv, "MAIL") == []


@pytest.mark.parametrize("cls", CLIENTS)
async def test_phrase_connect_failure_names_host_on_port(cls):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(Exception, match=f"127.0.0.1 on port {port}") as info:
        await cls(hostname="127.0.0.1", port=port, timeout=5).connect()
    assert isinstance(info.value, ConnectionError)


async def test_starttls_with_an_invalid_mix_leaves_the_options_untouched(starttls_server):
    client = client_for(starttls_server, start_tls=False)
    async with client:
        before = client.options
        with pytest.raises(ValueError, match="tls_context or client_cert"):
            await client.starttls(ssl.create_default_context(), client_cert="client.pem")
        assert client.options is before and client.client_cert is None and client.tls_context is None
        assert (await client.noop()).code == 250
    async with client:  # a later connect works
        assert client.is_connected


async def test_starttls_with_a_missing_certificate_file_keeps_no_option(starttls_server, tmp_path):
    """The context is built from the new options before any is kept: a failure leaves the client as it was."""
    client = client_for(starttls_server, start_tls=False)
    async with client:
        before = client.options
        with pytest.raises(FileNotFoundError):
            await client.starttls(client_cert=str(tmp_path / "missing.pem"))
        assert client.options is before and client.client_cert is None
    async with client:  # later sessions are not poisoned by the bad file
        assert client.is_connected


async def test_phrase_host_on_port_in_tls_and_greeting_failures(tls_server):
    """Every connect failure names HOST on port PORT: an untrusted certificate, a close before the greeting."""
    port = tls_server.port
    with pytest.raises(SMTPConnectError, match=f"127.0.0.1 on port {port}") as info:
        await SMTP(hostname="127.0.0.1", port=port, use_tls=True, timeout=5).connect()  # no CA given: untrusted
    assert isinstance(info.value, ssl.SSLCertVerificationError)

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    silent = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    quiet_port = silent.sockets[0].getsockname()[1]
    async with silent:
        with pytest.raises(SMTPConnectError, match=f"before greeting.*127.0.0.1 on port {quiet_port}"):
            await SMTP(hostname="127.0.0.1", port=quiet_port, timeout=5).connect()
