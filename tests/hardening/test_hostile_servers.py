"""Small real servers that attack the client: each case ends in a clear error, on time, in bounded memory.

Every case runs against a ``ScriptedServer`` on loopback whose first
connection misbehaves and whose later connections behave. The case checks
that the client raises an exception of the spec's tree (``SMTPException``)
within its timeout, that the Python allocations made meanwhile stay under a
bound (tracemalloc), that ``is_connected`` is false afterwards, and that the
next ``connect()`` on the same client works. Each case records its figure
(time to the error, peak allocations), printed at the end of the run.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trustme

from smtp_nb import (
    SMTP,
    SMTPConnectError,
    SMTPConnectTimeoutError,
    SMTPException,
    SMTPProtocolError,
    SMTPReadTimeoutError,
    SMTPRecipientsRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from smtp_nb.client.protocol import MAX_LINE_LENGTH, MAX_REPLY_LENGTH
from tests.hardening.conftest import Figure, traced
from tests.scripted import Peer, Script, ScriptedServer, greet

#: Client allocations a hostile server may cause (the brief: "say, 1 MB").
MEMORY_BOUND = 1 << 20
#: How late after its timeout an error may come on a loaded 2-core machine.
SLACK = 1.5
#: Building a TLS context and running a handshake allocate more than plain text does.
TLS_MEMORY_BOUND = 2 << 20
#: The transcript keeps 2,000 entries of at most about 1 KB: what a flood can pin.
FLOOD_BOUND = 6 << 20

EHLO = "250-hostile.example\r\n250-PIPELINING\r\n250 8BITMIME"
RECOVERY_EHLO = "250-recovered.example\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN"

Step = Callable[[SMTP], Awaitable[Any]]


def first_connection(hostile: Script) -> Script:
    """``hostile`` for the first connection; a well-behaved server (with AUTH) for every later one."""
    numbers = itertools.count(1)

    async def script(peer: Peer) -> None:
        if next(numbers) == 1:
            await hostile(peer)
        else:
            await greet(peer, "220 recovered.example ready")
            await peer.serve({"AUTH": "235 2.7.0 accepted"}, ehlo=RECOVERY_EHLO)

    return script


async def connect(client: SMTP) -> None:
    await client.connect()


async def hostile_case(
    figures: list[Figure],
    case: str,
    hostile: Script,
    expected: type[SMTPException],
    *,
    timeout: float,
    step: Step = connect,
    prepare: Step | None = None,
    options: dict[str, Any] | None = None,
    recover: dict[str, Any] | None = None,
    bound: int = MEMORY_BOUND,
    note: Callable[[ScriptedServer], str] | None = None,
) -> tuple[SMTPException, ScriptedServer, SMTP]:
    """Run ``step`` against ``hostile``; check the error, its time and memory; then reconnect."""
    with ScriptedServer(first_connection(hostile)) as srv:
        client = SMTP(**srv.options(timeout=timeout, local_hostname="client.example", **(options or {})))
        if prepare is not None:
            await prepare(client)
        loop = asyncio.get_running_loop()
        with traced() as memory:
            started = loop.time()
            with pytest.raises(expected) as info:
                await step(client)
            elapsed = loop.time() - started
        error = info.value
        assert isinstance(error, SMTPException)
        assert elapsed < timeout + SLACK, f"{case}: the error took {elapsed:.2f} s with a {timeout} s timeout"
        assert memory.peak < bound, f"{case}: {memory.peak:,} bytes allocated (bound {bound:,})"
        assert not client.is_connected

        await client.connect(**(recover or {}))  # the same client connects again
        assert client.last_ehlo_response.message.startswith("recovered.example")
        assert (await client.noop()).code == 250
        await client.quit()
        assert not client.is_connected
        figures.append(Figure(case, type(error).__name__, elapsed, memory.peak, note(srv) if note else ""))
        return error, srv, client


async def after_ehlo(peer: Peer) -> None:
    """Greet and answer EHLO normally."""
    await greet(peer)
    await peer.readline()
    await peer.reply(EHLO)


# -- silence and trickles -----------------------------------------------------------------


async def test_greeting_never_sent(figures):
    async def silent(peer):
        await peer.wait_closed_by_client()

    error, _, _ = await hostile_case(figures, "greeting never sent", silent, SMTPConnectTimeoutError, timeout=1.0)
    assert "sent no greeting within 1 second" in str(error)
    assert isinstance(error, TimeoutError)


TRICKLE_INTERVAL = 1.0  # one byte per second
TRICKLE_TIMEOUT = 2.5  # long enough for two or three bytes to arrive before the deadline


def trickled_note(srv: ScriptedServer) -> str:
    return f"{srv.trickled} bytes arrived, 1 per second, without moving the deadline"


async def test_greeting_trickled_one_byte_per_second(figures):
    """The read timeout is a deadline for the whole reply, not an idle timer that each byte restarts."""
    text = b"220 this greeting arrives one byte per second, far slower than the timeout allows\r\n"

    async def trickle(peer):
        await peer.trickle(text, TRICKLE_INTERVAL)

    error, srv, _ = await hostile_case(
        figures,
        "greeting trickled, 1 byte/s",
        trickle,
        SMTPConnectTimeoutError,
        timeout=TRICKLE_TIMEOUT,
        note=trickled_note,
    )
    assert srv.trickled >= 2  # bytes kept arriving, and the deadline held
    assert "no greeting within 2.5 seconds" in str(error)


async def test_reply_trickled_one_byte_per_second(figures):
    text = b"250 this reply to NOOP arrives one byte per second, far slower than the timeout allows\r\n"

    async def trickle(peer):
        await after_ehlo(peer)
        await peer.readline()  # NOOP
        await peer.trickle(text, TRICKLE_INTERVAL)

    error, srv, _ = await hostile_case(
        figures,
        "reply to NOOP trickled, 1 byte/s",
        trickle,
        SMTPReadTimeoutError,
        timeout=TRICKLE_TIMEOUT,
        prepare=connect,
        step=lambda client: client.noop(),
        note=trickled_note,
    )
    assert srv.trickled >= 2
    assert "did not reply within 2.5 seconds" in str(error)
    assert isinstance(error, SMTPTimeoutError) and isinstance(error, TimeoutError)


# -- too much ----------------------------------------------------------------------------------

CHUNK = 1 << 16


async def test_reply_line_of_10_mb(figures):
    chunk = b"x" * CHUNK  # made before the measurement: the server's sending costs no allocations
    sent = [0]

    async def huge_line(peer):
        await after_ehlo(peer)
        await peer.readline()  # NOOP
        await peer.send(b"250 ")
        for _ in range(10 * (1 << 20) // CHUNK):  # 10 MiB, then the line ending
            await peer.send(chunk)
            sent[0] += CHUNK
        await peer.send(b"\r\n")

    error, _, _ = await hostile_case(
        figures,
        "reply line of 10 MB",
        huge_line,
        SMTPProtocolError,
        timeout=5.0,
        prepare=connect,
        step=lambda client: client.noop(),
        note=lambda srv: f"the server got {sent[0] / 1024:,.0f} KiB out before the client hung up",
    )
    assert f"longer than {MAX_LINE_LENGTH} bytes" in str(error)
    assert sent[0] < 10 * (1 << 20)  # the client hung up long before the end


async def test_endless_multiline_reply(figures):
    line = b"250-this continuation line never ends the reply\r\n"
    block = line * (CHUNK // len(line))
    sent = [0]

    async def endless(peer):
        await greet(peer)
        await peer.readline()  # EHLO
        while True:
            await peer.send(block)
            sent[0] += len(block)

    error, _, _ = await hostile_case(
        figures,
        "endless multi-line reply (250- forever)",
        endless,
        SMTPProtocolError,
        timeout=5.0,
        note=lambda srv: f"the server got {sent[0] / 1024:,.0f} KiB out before the client hung up",
    )
    assert f"multi-line reply longer than {MAX_REPLY_LENGTH} bytes" in str(error)


async def test_flood_of_unsolicited_replies_to_an_idle_client(figures):
    """A server that streams complete replies nobody asked for, while the client waits for nothing.

    The client ignores them (noting each in its bounded transcript); the
    memory they can pin must stay bounded however long the flood lasts.
    """
    reply = b"250-" + b"u" * 200 + b"\r\n"
    big = reply * (16000 // len(reply)) + b"250 end of an unsolicited reply\r\n"  # one reply of 16 KB
    total = 2200  # more than the transcript keeps (2,000 lines)
    loop = asyncio.get_running_loop()
    all_ignored = asyncio.Event()
    ignored = [0]

    def count(entry):
        if entry.text.startswith("ignored a reply nobody asked for"):
            ignored[0] += 1
            if ignored[0] == total:
                all_ignored.set()

    async def flood(peer):
        await after_ehlo(peer)
        for _ in range(total):
            await peer.send(big)
        await peer.serve(ehlo=EHLO)

    with ScriptedServer(flood) as srv:
        client = SMTP(**srv.options(timeout=10, local_hostname="client.example"), on_transcript=count)
        with traced() as memory:
            started = loop.time()
            await client.connect()
            await asyncio.wait_for(all_ignored.wait(), 60)
            elapsed = loop.time() - started
            assert (await client.noop()).code == 250
        await client.quit()
    figures.append(
        Figure(
            f"{total:,} unsolicited 16 KB replies to an idle client",
            "ignored (connection kept)",
            elapsed,
            memory.peak,
            f"{total * len(big) / 2**20:,.0f} MiB received",
        )
    )
    assert memory.peak < FLOOD_BOUND, f"{memory.peak:,} bytes pinned by ignored replies"


# -- not SMTP ----------------------------------------------------------------------------------

_rng = random.Random(20240607)
GARBAGE = {
    "reply code 600": b"600 there is no such class of reply\r\n",
    "letter in the code": b"2S0 almost a code\r\n",
    "two-digit code": b"25 two digits\r\n",
    "wrong separator": b"250_wrong separator\r\n",
    "binary garbage": b"\x00\x01\x02\xff\xfe\x80 binary\r\n",
    "4 KiB of random bytes": bytes(_rng.randrange(256) for _ in range(4096)) + b"\n",
    "TLS record instead of text": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)) + b"\n",
}


@pytest.mark.parametrize("name", list(GARBAGE))
async def test_invalid_reply_codes_and_garbage(figures, name):
    async def garbage(peer):
        await greet(peer)
        await peer.readline()  # EHLO
        await peer.send(GARBAGE[name])
        await peer.wait_closed_by_client()

    error, _, _ = await hostile_case(figures, f"garbage: {name}", garbage, SMTPProtocolError, timeout=5.0)
    assert error.code == -1
    assert "not an SMTP reply" in str(error) or "longer than" in str(error)


async def test_non_utf8_replies_are_readable_text_not_errors(figures):
    async def latin1(peer):
        await peer.send(b"220 caf\xe9-server \xff\xfe pr\xeat\r\n")
        while line := await peer.readline():
            verb = line.split(" ")[0].upper()
            if verb == "EHLO":
                await peer.send(b"250-h\xf4te.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb == "NOOP":
                await peer.send(b"250 \x80\x81 d\xe9j\xe0 vu, und f\xc3\xbcr Sie\r\n")
            elif verb == "RCPT" and "nobody" in line:
                await peer.send(b"550 5.1.1 Empf\xe4nger unbekannt\r\n")
            elif verb == "DATA":
                await peer.reply("354 go")
                await peer.read_data()
                await peer.send(b"250 2.0.0 re\xe7u, queued as \xa7\xa7\r\n")
            elif verb == "QUIT":
                await peer.reply("221 bye")
                return
            else:
                await peer.reply("250 ok")

    with ScriptedServer(latin1) as srv:
        loop = asyncio.get_running_loop()
        started = loop.time()
        client = SMTP(**srv.options(timeout=5, local_hostname="client.example"))
        greeting = await client.connect()
        assert greeting.message == "caf\\xe9-server \\xff\\xfe pr\\xeat"
        assert client.supports_extension("pipelining") and client.supports_extension("8bitmime")
        assert (await client.noop()).message == "\\x80\\x81 d\\xe9j\\xe0 vu, und für Sie"  # valid UTF-8 stays text
        refused, reply = await client.sendmail("a@example.com", ["b@example.com", "nobody@example.com"], "x")
        assert reply == "2.0.0 re\\xe7u, queued as \\xa7\\xa7"
        assert refused["nobody@example.com"].message == "5.1.1 Empf\\xe4nger unbekannt"
        with pytest.raises(SMTPRecipientsRefused, match=r"Empf\\xe4nger"):
            await client.sendmail("a@example.com", ["nobody@example.com"], "x")
        await client.quit()
        elapsed = loop.time() - started
    assert all(isinstance(line, str) for line in client.transcript.lines())
    assert "< 250 \\x80\\x81 d\\xe9j\\xe0 vu, und für Sie" in client.transcript.lines()
    figures.append(Figure("non-UTF-8 replies (Latin-1, stray bytes)", "no error: readable text", elapsed))


# -- closing at the worst moments ---------------------------------------------------------------

STARTTLS_EHLO = "250-hostile.example\r\n250-PIPELINING\r\n250 STARTTLS"


def starttls_then(after_220: Callable[[Peer], Awaitable[None]]) -> Script:
    async def script(peer):
        await greet(peer)
        await peer.readline()  # EHLO
        await peer.reply(STARTTLS_EHLO)
        await peer.readline()  # STARTTLS
        await peer.reply("220 2.0.0 go ahead")
        await after_220(peer)

    return script


async def close_after_client_hello(peer):
    await peer.reader.read(1)  # the ClientHello is arriving: hang up


async def not_tls(peer):
    await peer.reader.read(1)
    await peer.send(b"554 this is not a TLS server\r\n")
    await peer.wait_closed_by_client()


async def hello_then_silence(peer):
    await peer.reader.read(1)
    await peer.wait_closed_by_client()


async def test_closes_during_the_starttls_handshake(figures):
    error, _, _ = await hostile_case(
        figures,
        "closes during the STARTTLS handshake",
        starttls_then(close_after_client_hello),
        SMTPServerDisconnected,
        timeout=5,
        bound=TLS_MEMORY_BOUND,
    )
    assert "lost during the TLS handshake" in str(error)


async def test_answers_the_handshake_with_plaintext(figures):
    error, _, _ = await hostile_case(
        figures,
        "answers the TLS handshake with plaintext",
        starttls_then(not_tls),
        SMTPConnectError,
        timeout=5,
        bound=TLS_MEMORY_BOUND,
    )
    assert "TLS handshake" in str(error)


async def test_never_finishes_the_handshake(figures):
    error, _, _ = await hostile_case(
        figures,
        "never finishes the STARTTLS handshake",
        starttls_then(hello_then_silence),
        SMTPTimeoutError,
        timeout=1.0,
        bound=TLS_MEMORY_BOUND,
    )
    assert "did not finish within 1 second" in str(error)


async def test_closes_during_the_implicit_tls_handshake(figures):
    error, _, _ = await hostile_case(
        figures,
        "closes during the TLS handshake (use_tls)",
        close_after_client_hello,
        SMTPConnectError,
        timeout=5,
        options={"use_tls": True},
        recover={"use_tls": False},
        bound=TLS_MEMORY_BOUND,
    )
    assert "the server closed the connection during the TLS handshake" in str(error)


AUTH_EHLO = "250-hostile.example\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN"
PASSWORD = "secret-password-1234"


async def test_closes_after_the_auth_command(figures):
    async def close_on_auth(peer):
        await greet(peer)
        await peer.readline()
        await peer.reply(AUTH_EHLO)
        await peer.readline()  # AUTH PLAIN ...: hang up

    error, _, client = await hostile_case(
        figures,
        "closes during AUTH (after AUTH PLAIN)",
        close_on_auth,
        SMTPServerDisconnected,
        timeout=5,
        options={"username": "ada", "password": PASSWORD},
    )
    assert PASSWORD not in str(error)
    assert client.authenticated_as == "ada" or client.authenticated_as is None


async def test_closes_in_the_middle_of_an_auth_exchange(figures):
    async def close_mid_login(peer):
        await greet(peer)
        await peer.readline()
        await peer.reply("250-hostile.example\r\n250 AUTH LOGIN")
        await peer.readline()  # AUTH LOGIN <username>
        await peer.reply("334 UGFzc3dvcmQ6")  # "Password:"
        await peer.readline()  # the password: hang up before answering

    error, _, client = await hostile_case(
        figures,
        "closes during AUTH (after the password)",
        close_mid_login,
        SMTPServerDisconnected,
        timeout=5,
        options={"username": "ada", "password": PASSWORD},
    )
    assert PASSWORD not in str(error)
    assert not any(PASSWORD in line for line in client.transcript.lines())


BODY = b"Subject: big\r\n\r\n" + b"a line of the message body, repeated\r\n" * 2500  # about 95 KB


def closes_in_data(after_dot: bool) -> Script:
    async def script(peer):
        await greet(peer)
        while line := await peer.readline():
            verb = line.split(" ")[0].upper()
            if verb == "EHLO":
                await peer.reply(EHLO)
            elif verb == "DATA":
                await peer.reply("354 go ahead")
                if after_dot:
                    await peer.read_data()  # everything up to the final dot: hang up before the verdict
                else:
                    await peer.reader.readline()  # the first line of the data: hang up
                return
            else:
                await peer.reply("250 ok")

    return script


@pytest.mark.parametrize("after_dot", [False, True], ids=["mid-data", "after-the-dot"])
async def test_closes_during_data(figures, after_dot):
    where = "after the final dot, before the reply" if after_dot else "in the middle of the data"
    error, srv, _ = await hostile_case(
        figures,
        f"closes {where}",
        closes_in_data(after_dot),
        SMTPServerDisconnected,
        timeout=5,
        prepare=connect,
        step=lambda client: client.sendmail("a@example.com", "b@example.com", BODY),
    )
    assert "closed the connection" in str(error)
    if after_dot:
        assert srv.data[0] == BODY  # the whole message went out; only the verdict is missing


async def test_closes_after_the_dot_send_many_says_unknown(figures):
    """Data sent, no verdict: the delivery is 'unknown' (maybe delivered), never 'failed' or retried silently."""
    with ScriptedServer(closes_in_data(after_dot=True)) as srv:
        loop = asyncio.get_running_loop()
        messages = [("a@example.com", ["b@example.com"], BODY, "first"), ("a@example.com", ["c@example.com"], BODY)]
        async with SMTP(**srv.options(timeout=5, local_hostname="client.example")) as client:
            with traced() as memory:
                started = loop.time()
                deliveries = [d async for d in client.send_many(messages)]
                elapsed = loop.time() - started
            assert not client.is_connected
    first, second = deliveries  # the second envelope was in flight with the first message's data
    assert first.tag == "first" and first.status == "unknown" and first.data_sent and first.data is None
    assert isinstance(first.error, SMTPServerDisconnected)
    assert not first.transient  # maybe delivered: not to be retried blindly
    assert second.status == "failed" and not second.data_sent and second.transient  # surely not delivered
    assert elapsed < 5 + SLACK and memory.peak < MEMORY_BOUND
    figures.append(Figure("closes after the dot (send_many)", "status unknown", elapsed, memory.peak))


# -- STARTTLS: injection and stripping ------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, str]:
    """A server context for 127.0.0.1 and the path of the CA that issued it."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return context, str(path)


INJECTIONS = {
    # What a plaintext attacker appends to the 220: read after the handshake, it would answer the
    # client's next command (the EHLO over TLS) and change what the client believes.
    "a fake EHLO reply without PIPELINING": b"250-injected.example\r\n250 SIZE 10\r\n",
    "a refusal of the next command": b"554 5.7.0 injected refusal\r\n",
    "a partial line": b"250-injected.example\r\n250 SIZE",
}


@pytest.mark.parametrize("name", list(INJECTIONS))
async def test_starttls_response_injection_is_discarded(figures, tls_material, name):
    context, ca_path = tls_material
    injected = INJECTIONS[name]

    async def injecting(peer):
        await greet(peer)
        await peer.readline()  # EHLO
        await peer.reply(STARTTLS_EHLO)
        await peer.readline()  # STARTTLS
        await peer.send(b"220 2.0.0 go ahead\r\n" + injected)  # one write: before the handshake
        await peer.start_tls(context)
        await peer.serve(ehlo="250-real.example\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250 8BITMIME")

    with ScriptedServer(injecting) as srv:
        loop = asyncio.get_running_loop()
        started = loop.time()
        client = SMTP(**srv.options(timeout=5, start_tls=True, cert_bundle=ca_path, local_hostname="client.example"))
        await client.connect()
        assert client.is_tls
        # The EHLO over TLS got the real server's answer, not the injected one.
        assert client.last_ehlo_response.message.startswith("real.example")
        assert client.supports_extension("pipelining") and client.max_message_size == 1000000
        assert (await client.noop()).code == 250
        await client.sendmail("a@example.com", "b@example.com", "Subject: x\n\nafter STARTTLS")
        await client.quit()
        elapsed = loop.time() - started
    assert srv.data == [b"Subject: x\r\n\r\nafter STARTTLS\r\n"]
    lines = client.transcript.lines()
    tls_started = next(i for i, line in enumerate(lines) if line.startswith("* TLS started"))
    assert not any("injected" in line for line in lines[tls_started:])
    assert not any(line.startswith("< ") and "injected" in line for line in lines)
    figures.append(Figure(f"STARTTLS injection: {name}", "discarded", elapsed))


async def test_server_that_stops_advertising_starttls(figures, tls_material):
    """An attacker strips STARTTLS from the EHLO reply: start_tls=True refuses, the default goes on in plaintext."""
    context, ca_path = tls_material
    strip = [False]

    async def sometimes_stripped(peer):
        await greet(peer)
        extensions = "250-PIPELINING\r\n250 AUTH PLAIN" if strip[0] else "250-PIPELINING\r\n250 STARTTLS"
        while line := await peer.readline():
            verb = line.split(" ")[0].upper()
            if verb == "EHLO":
                await peer.reply("250-mx.example\r\n" + extensions)
            elif verb == "STARTTLS":
                await peer.reply("220 go ahead")
                await peer.start_tls(context)
                extensions = "250-PIPELINING\r\n250 AUTH PLAIN"
            elif verb == "QUIT":
                await peer.reply("221 bye")
                return
            else:
                await peer.reply("235 accepted" if verb == "AUTH" else "250 ok")

    with ScriptedServer(sometimes_stripped) as srv:
        options = srv.options(timeout=5, cert_bundle=ca_path, local_hostname="client.example")
        required = SMTP(**options, start_tls=True, username="ada", password=PASSWORD)
        await required.connect()  # offered: TLS
        assert required.is_tls and required.authenticated_as == "ada"
        await required.quit()

        strip[0] = True
        received = len(srv.received)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(SMTPException) as info:
            await required.connect()
        elapsed = loop.time() - started
        assert type(info.value).__name__ == "SMTPNotSupported"
        assert "does not offer STARTTLS" in str(info.value)
        assert not required.is_connected
        # Nothing after the EHLO: no AUTH, no credentials.
        assert srv.received[received:].startswith(b"EHLO client.example\r\n")
        assert b"AUTH" not in srv.received[received:]

        opportunistic = SMTP(**options)  # start_tls=None: use TLS when offered, else go on
        await opportunistic.connect()
        assert opportunistic.is_connected and not opportunistic.is_tls
        assert (await opportunistic.noop()).code == 250
        await opportunistic.quit()

        strip[0] = False
        await required.connect()  # offered again: TLS again
        assert required.is_tls
        await required.quit()
    figures.append(Figure("STARTTLS stripped, start_tls=True", "SMTPNotSupported", elapsed))
    figures.append(Figure("STARTTLS stripped, start_tls=None", "plaintext, is_tls False"))


async def test_long_solicited_reply_is_whole_for_the_caller_and_cut_in_the_transcript():
    """A 60 KB answer reaches the caller whole; the transcript (2,000 entries) keeps its first 1,000 characters."""
    long_reply = "250-" + "\r\n250-".join(f"line {i:05d} " + "v" * 100 for i in range(500)) + "\r\n250 last"

    with ScriptedServer(lambda peer: greet_and_serve(peer, {"NOOP": long_reply})) as srv:
        async with SMTP(**srv.options(timeout=5, local_hostname="client.example")) as client:
            reply = await client.noop()
            assert reply.message.count("\n") == 500 and reply.message.endswith("last")
            shown = [line for line in client.transcript.lines() if line.startswith("< 250-line 00000")]
    (kept,) = shown
    assert len(kept) < 1100 and kept.endswith("more characters not kept]")


async def greet_and_serve(peer: Peer, replies: dict[str, str]) -> None:
    await greet(peer)
    await peer.serve(replies, ehlo=EHLO)
