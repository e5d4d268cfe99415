"""Connecting: transports, TLS, options, and every way a connection can fail."""

import asyncio
import socket
import ssl

import pytest
import trustme

from smtp_nb import (
    SMTP,
    SMTP_PORT,
    SMTP_STARTTLS_PORT,
    SMTP_TLS_PORT,
    ConnectOptions,
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPConnectTimeoutError,
    SMTPException,
    SMTPNotSupported,
    SMTPServerDisconnected,
    SMTPTimeoutError,
    send,
)
from smtp_nb.server import LocalServer
from tests.conftest import client_for
from tests.scripted import ScriptedServer, greet, plain


async def test_connect_greets_and_learns_extensions(server):
    client = client_for(server)
    greeting = await client.connect()
    try:
        assert greeting.code == 220
        assert "smtp_nb embedded server" in greeting.message
        assert client.is_connected
        assert not client.is_ehlo_or_helo_needed
        assert client.last_ehlo_response.code == 250
        assert client.supports_extension("PIPELINING") and client.supports_extension("size")
        assert not client.supports_extension("STARTTLS")
        assert client.max_message_size == server.data_size_limit
        assert client.get_transport_info("peername")[:2] == (server.host, server.port)
        assert client.get_transport_info("sockname")[0] == "127.0.0.1"
        assert client.get_transport_info("socket").getpeername() == (server.host, server.port)
        assert client.get_transport_info("sslcontext") is None
        assert not client.is_tls
    finally:
        client.close()
    assert not client.is_connected
    with pytest.raises(SMTPServerDisconnected, match="not connected"):
        client.get_transport_info("peername")


async def test_context_manager_connects_and_quits(server):
    async with client_for(server) as client:
        assert client.is_connected
        assert (await client.noop()).code == 250
    assert not client.is_connected
    assert client.transcript[-2].text.startswith("221")


def test_default_ports_follow_the_tls_mode():
    assert SMTP().options.effective_port == SMTP_PORT == 25
    assert SMTP(use_tls=True).options.effective_port == SMTP_TLS_PORT == 465
    assert SMTP(start_tls=True).options.effective_port == SMTP_STARTTLS_PORT == 587
    assert repr(SMTP(hostname="mx.example.com", start_tls=True)) == "<smtp_nb.SMTP mx.example.com:587 not connected>"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"use_tls": True, "start_tls": True}, "exclude each other"),
        ({"sock": socket.socket(), "socket_path": "/tmp/x"}, "not both"),
        ({"socket_path": "/tmp/x", "port": 25}, "no meaning"),
        ({"tls_context": ssl.create_default_context(), "client_cert": "c.pem"}, "not both"),
        ({"port": 70000}, "1 to 65535"),
        ({"timeout": -1}, "0 or more"),
        ({"local_hostname": "my host"}, "one word"),
        ({"local_hostname": "host\r\nRSET"}, "control character"),
        ({"hostname": "mx\n.example.com"}, "control character"),
    ],
)
def test_conflicting_or_bad_options_are_refused(options, message):
    sock = options.get("sock")
    try:
        with pytest.raises(ValueError, match=message):
            SMTP(**options)
    finally:
        if sock is not None:
            sock.close()


async def test_connect_options_replace_constructor_options_except_timeout(server):
    client = SMTP(hostname="mx.invalid", port=1, timeout=7)
    await client.connect(hostname=server.host, port=server.port, timeout=3, local_hostname="client.example")
    try:
        assert (client.hostname, client.port, client.local_hostname) == (server.host, server.port, "client.example")
        assert client.timeout == 7
        assert "EHLO client.example" in [e.text for e in client.transcript]
    finally:
        client.close()


async def test_connect_refuses_bad_connect_options_and_keeps_the_old_ones(server):
    client = client_for(server)
    with pytest.raises(ValueError, match="exclude each other"):
        await client.connect(use_tls=True, start_tls=True)
    assert client.use_tls is False and client.start_tls is None


async def test_connecting_twice_is_an_error(server):
    async with client_for(server) as client:
        with pytest.raises(SMTPException, match="already connected"):
            await client.connect()
        assert client.is_connected


async def test_command_before_connect_says_what_to_do():
    client = SMTP(hostname="127.0.0.1", port=9)
    for call in (client.noop(), client.ehlo(), client.sendmail("a@example.com", "b@example.com", "x")):
        with pytest.raises(SMTPServerDisconnected, match="call connect"):
            await call


async def test_reconnect_after_close(server):
    client = client_for(server)
    await client.connect()
    client.close()
    await client.connect()
    assert (await client.noop()).code == 250
    await client.quit()


async def test_ipv6_loopback():
    with LocalServer(host="::1") as srv:
        async with client_for(srv) as client:
            assert client.get_transport_info("peername")[0] == "::1"
            await client.sendmail("a@example.com", "b@example.com", "Subject: v6\n\nhi")
        assert srv.messages[0].rcpt_tos == ("b@example.com",)


async def test_unix_socket(tmp_path):
    path = str(tmp_path / "smtp.sock")
    with LocalServer(socket_path=path) as srv:
        async with SMTP(socket_path=path, timeout=10) as client:
            await client.sendmail("a@example.com", "b@example.com", "Subject: unix\n\nhi")
            assert client.get_transport_info("peername") == path
        assert srv.messages[0].subject == "unix"


async def test_existing_socket(server):
    sock = socket.create_connection((server.host, server.port))
    async with SMTP(sock=sock, timeout=10) as client:
        assert (await client.noop()).code == 250
    assert sock.fileno() == -1  # the client owned and closed it


async def test_source_address_is_used(server):
    async with client_for(server, source_address=("127.0.0.2", 0)) as client:
        assert client.get_transport_info("sockname")[0] == "127.0.0.2"
        await client.sendmail("a@example.com", "b@example.com", "x")
    assert server.messages[0].peer[0] == "127.0.0.2"


async def test_implicit_tls(tls_server):
    async with client_for(tls_server) as client:
        assert client.is_tls
        assert isinstance(client.get_transport_info("sslcontext"), ssl.SSLContext)
        assert isinstance(client.get_transport_info("ssl_object"), ssl.SSLObject)
        assert client.get_transport_info("cipher")[1].startswith("TLSv1")
        peercert = client.get_transport_info("peercert")
        assert dict(x[0] for x in peercert["issuer"])["organizationName"] == "smtp_nb embedded server"
        assert ("IP Address", "127.0.0.1") in peercert["subjectAltName"]
        await client.sendmail("a@example.com", "b@example.com", "Subject: tls\n\nhi")
    assert tls_server.messages[0].tls


async def test_starttls_happens_by_default_when_offered(starttls_server):
    options = starttls_server.client_options()
    del options["start_tls"]
    async with SMTP(**options, timeout=10) as client:
        assert client.is_tls
        assert client.supports_extension("auth")  # offered only after TLS: the EHLO was repeated
        assert not client.supports_extension("starttls")
        await client.sendmail("a@example.com", "b@example.com", "x")
    assert starttls_server.messages[0].tls


async def test_start_tls_false_stays_plaintext(starttls_server):
    async with client_for(starttls_server, start_tls=False) as client:
        assert not client.is_tls
        assert client.supports_extension("starttls")


async def test_explicit_starttls_call(starttls_server):
    client = client_for(starttls_server, start_tls=False)
    await client.connect()
    response = await client.starttls(validate_certs=True, cert_bundle=starttls_server.ca_path)
    assert response.code == 220
    assert client.is_tls and client.is_ehlo_or_helo_needed
    assert (await client.noop()).code == 250
    with pytest.raises(SMTPException, match="already uses TLS"):
        await client.starttls()
    await client.quit()


async def test_starttls_required_but_not_offered_refuses(server):
    client = client_for(server, start_tls=True)
    with pytest.raises(SMTPNotSupported, match="does not offer STARTTLS"):
        await client.connect()
    assert not client.is_connected
    assert not server.messages
    await client.connect(start_tls=None)  # opportunistic: plaintext is allowed
    assert client.is_connected and not client.is_tls
    client.close()


async def test_starttls_method_on_server_without_it(server):
    async with client_for(server) as client:
        with pytest.raises(SMTPNotSupported, match="does not offer STARTTLS"):
            await client.starttls()


@pytest.mark.parametrize("fixture", ["tls_server", "starttls_server"])
async def test_certificate_that_fails_validation(fixture, request):
    srv = request.getfixturevalue(fixture)
    options = srv.client_options()
    del options["cert_bundle"]
    client = SMTP(**options, timeout=10)
    with pytest.raises(SMTPConnectError, match="failed verification") as info:
        await client.connect()
    assert "cert_bundle" in str(info.value)
    assert not client.is_connected
    await client.connect(cert_bundle=srv.ca_path)  # the next connect works
    assert client.is_tls
    await client.quit()


async def test_certificate_for_another_name_fails_validation(tls_server):
    sock = socket.create_connection((tls_server.host, tls_server.port))
    client = SMTP(sock=sock, hostname="mail.example.com", use_tls=True, cert_bundle=tls_server.ca_path, timeout=10)
    with pytest.raises(SMTPConnectError, match=r"mail\.example\.com failed verification .*Hostname mismatch"):
        await client.connect()
    assert sock.fileno() == -1


async def test_validation_off_and_custom_context(tls_server):
    async with SMTP(
        hostname=tls_server.host, port=tls_server.port, use_tls=True, validate_certs=False, timeout=10
    ) as c:
        assert c.is_tls
    context = ssl.create_default_context(cafile=tls_server.ca_path)
    async with SMTP(hostname=tls_server.host, port=tls_server.port, use_tls=True, tls_context=context, timeout=10) as c:
        assert c.get_transport_info("sslcontext") is context


async def test_client_certificate(tmp_path):
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca.configure_trust(server_context)
    server_context.verify_mode = ssl.CERT_REQUIRED
    ca_path, cert_path = tmp_path / "ca.pem", tmp_path / "client.pem"
    ca.cert_pem.write_to_path(ca_path)
    ca.issue_cert("client@example.com").private_key_and_cert_chain_pem.write_to_path(cert_path)

    async def script(peer):
        peercert = peer.writer.get_extra_info("peercert")
        await greet(peer, f"220 hello {dict(x[0] for x in peercert['subject']).get('commonName', '?')}")
        await peer.serve()

    with ScriptedServer(script, ssl_context=server_context) as srv:
        options = srv.options(use_tls=True, cert_bundle=str(ca_path), timeout=10)
        async with SMTP(**options, client_cert=str(cert_path)) as client:
            assert client.is_tls
        with pytest.raises((SMTPConnectError, SMTPServerDisconnected)):
            async with SMTP(**options):
                pass


async def test_refused_greeting():
    with ScriptedServer(lambda peer: greet(peer, "554 5.7.1 no service for you")) as srv:
        client = SMTP(**srv.options(timeout=5))
        with pytest.raises(SMTPConnectResponseError) as info:
            await client.connect()
        assert (info.value.code, info.value.message) == (554, "5.7.1 no service for you")
        assert isinstance(info.value, SMTPConnectError)
        assert not client.is_connected


async def test_silent_server_times_out_on_the_greeting():
    async def silent(peer):
        await peer.wait_closed_by_client()

    with ScriptedServer(silent) as srv:
        client = SMTP(**srv.options(timeout=0.3))
        with pytest.raises(SMTPConnectTimeoutError, match=r"no greeting within 0\.3 seconds") as info:
            await client.connect()
        assert isinstance(info.value, TimeoutError) and isinstance(info.value, SMTPTimeoutError)
        assert not client.is_connected


async def test_tcp_connect_timeout():
    """A listener whose accept queue is full drops new SYNs: the connect itself hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        port = listener.getsockname()[1]
        for _ in range(3):  # fill the accept queue (its size is backlog + 1)
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        client = SMTP(hostname="127.0.0.1", port=port, timeout=0.5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(SMTPConnectTimeoutError, match=r"took longer than 0\.5 seconds"):
            await client.connect()
        assert loop.time() - started < 5
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_connection_refused():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(SMTPConnectError, match=f"cannot connect to 127.0.0.1:{port}"):
        await SMTP(hostname="127.0.0.1", port=port, timeout=5).connect()


async def test_ehlo_refused_falls_back_to_helo():
    with ScriptedServer(plain({"EHLO": "502 5.5.1 EHLO not implemented"})) as srv:
        async with SMTP(**srv.options(timeout=5)) as client:
            assert client.last_ehlo_response is None
            assert client.last_helo_response.code == 250
            assert not client.supports_esmtp and not client.supports_extension("pipelining")
            await client.sendmail("a@example.com", "b@example.com", "Subject: helo\n\nhi")
        assert [line.split(" ")[0] for line in srv.lines[:3]] == ["EHLO", "HELO", "MAIL"]


async def test_one_options_object_for_constructor_connect_and_send(server):
    client = SMTP(timeout=10)
    assert client.options == ConnectOptions(timeout=10)
    with pytest.raises(TypeError, match="unknown connection option 'bogus'"):
        await client.connect(bogus=1)
    with pytest.raises(ValueError, match="exclude each other"):
        await client.connect(options=client.options.replace(use_tls=True), start_tls=True)
    assert client.options == ConnectOptions(timeout=10)  # a refused change leaves the options as they were
    await client.connect(options=client.options.replace(**server.client_options()))
    assert client.port == server.port and client.is_connected
    await client.quit()
    with pytest.raises(TypeError, match="bogus"):
        await send("Subject: hi\r\n\r\nhi\r\n", sender="a@example.com", recipients=["b@example.com"], bogus=1)
    await send(
        "Subject: hi\r\n\r\nhi\r\n", sender="a@example.com", recipients=["b@example.com"], **server.client_options()
    )
    assert len(server.messages) == 1
