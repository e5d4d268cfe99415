"""The *_sync twins: from plain code, inside a running event loop, and on a connection owned by another thread."""

import asyncio
import signal
import threading
from email.message import EmailMessage

import pytest

from smtp_nb import SMTP, SMTPException, SMTPRecipientsRefused
from tests.conftest import client_for
from tests.scripted import ScriptedServer, greet


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    message["Subject"] = "sync"
    message.set_content("hello")
    return message


def test_sendmail_sync_without_a_loop(server):
    client = client_for(server)
    refused, reply = client.sendmail_sync("a@example.com", ["b@example.com"], "Subject: sync\n\nhi")
    assert refused == {} and reply.startswith("OK queued")
    assert not client.is_connected  # connect, send, quit
    assert client.send_message_sync(_message())[0] == {}
    assert [m.subject for m in server.messages] == ["sync", "sync"]


def test_sync_twins_inside_a_running_event_loop(server):
    """What Jupyter does: the call comes from inside a running loop and must not fail."""
    client = client_for(server)

    async def cell():
        first = client.sendmail_sync("a@example.com", "b@example.com", "Subject: in loop\n\nhi")
        second = client.send_message_sync(_message())
        return first, second

    first, second = asyncio.run(cell())
    assert first[0] == {} and second[0] == {}
    assert len(server.messages) == 2


def test_sync_errors_are_the_async_errors(rule_server):
    rule_server.rules["RCPT"] = {"x@example.com": "550 no"}
    with pytest.raises(SMTPRecipientsRefused):
        client_for(rule_server).sendmail_sync("a@example.com", ["x@example.com"], "x")


def test_sync_call_uses_a_connection_owned_by_another_thread(server):
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        client = client_for(server)
        asyncio.run_coroutine_threadsafe(client.connect(), loop).result(10)
        port = client.get_transport_info("sockname")[1]
        client.sendmail_sync("a@example.com", "b@example.com", "Subject: shared\n\nhi")
        client.send_message_sync(_message())
        assert client.is_connected  # the shared connection stays open
        assert [m.peer[1] for m in server.messages] == [port, port]
        asyncio.run_coroutine_threadsafe(client.quit(), loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def test_sync_call_on_this_threads_own_connection_explains(server):
    async with client_for(server) as client:
        with pytest.raises(SMTPException, match=r"await client.sendmail\(...\)"):
            client.sendmail_sync("a@example.com", "b@example.com", "x")
        assert client.is_connected


def test_interrupt_cancels_a_sync_call_inside_a_loop():
    """Ctrl-C (the notebook's stop button) while a server stalls: the call stops and the connection closes."""
    stalled, closed = threading.Event(), threading.Event()

    async def script(peer):
        await greet(peer)
        await peer.readline()
        await peer.reply("250 ok")
        await peer.readline()  # MAIL: never answered
        stalled.set()
        await peer.wait_closed_by_client()
        closed.set()

    def interrupt_when_stalled():
        if stalled.wait(10):  # a real SIGINT, as Ctrl-C or the kernel's interrupt sends
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    with ScriptedServer(script) as srv:
        client = SMTP(**srv.options(timeout=30))
        threading.Thread(target=interrupt_when_stalled, daemon=True).start()

        async def cell():
            client.sendmail_sync("a@example.com", "b@example.com", "x")

        with pytest.raises(KeyboardInterrupt):
            asyncio.run(cell())
        assert closed.wait(10), "the stalled connection was not closed"
        assert not client.is_connected
