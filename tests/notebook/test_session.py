"""The session: connections on one background loop, reached synchronously and with ``await`` from any loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest
from IPython.lib.pretty import pretty

import smtp_nb
from smtp_nb import SMTPResponse, SMTPResponseException, SMTPServerDisconnected
from smtp_nb.client.sync import ThreadsafeJob as _Job
from smtp_nb.notebook.errors import NotConnectedError, SMTPNotebookError
from smtp_nb.notebook.session import Call, get_session, reset_session
from smtp_nb.server import LocalServer
from tests.scripted import ScriptedServer, greet


def test_importing_the_package_imports_no_notebook_dependency():
    code = (
        "import sys, smtp_nb, smtp_nb.notebook.session\n"
        "smtp_nb.session()\n"
        "heavy = [m for m in ('IPython', 'ipywidgets', 'aiosmtpd', 'pandas', 'jinja2') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""


def test_package_entry_point_returns_the_one_session():
    assert smtp_nb.session() is get_session() is smtp_nb.session()


def test_connections_live_on_one_loop_thread(server, session):
    first = session.connect("one", **server.client_options(), timeout=10)
    second = session.connect("two", **server.client_options(), timeout=10)
    loops = {c.client._loop for c in (first, second)}
    assert loops == {session.loop}
    assert session.names() == ["one", "two"]
    assert session.current == "two"
    assert threading.current_thread() is not session._thread


def test_proxy_call_is_awaitable_from_another_loop(server, session):
    session.connect(**server.client_options(), timeout=10)
    smtp = session.client()

    async def cell() -> SMTPResponse:
        return await smtp.noop()

    reply = asyncio.run(cell())
    assert (reply.code, reply.message) == (250, "OK")


def test_proxy_call_result_blocks_for_the_reply(server, session):
    session.connect(**server.client_options(), timeout=10)
    call = session.client().noop()
    assert isinstance(call, Call)
    assert call.result(timeout=10).code == 250
    assert call.done()
    assert repr(call) == "<Call default.noop(): SMTPResponse(code=250, message='OK')>"


def test_proxy_sends_and_collects_send_many(server, session):
    session.connect(**server.client_options(), timeout=10)
    smtp = session.client()
    (delivery,) = smtp.send_many([("a@example.com", ["b@example.com"], b"Subject: s\r\n\r\nbody\r\n")]).result(10)
    assert delivery.status == "accepted"
    assert server.messages[0].subject == "s"


def test_proxy_failure_raises_from_result_and_await_and_shows_as_one_line(session):
    async def script(peer):
        await greet(peer)
        await peer.serve({"NOOP": "421 4.3.2 going down"})

    with ScriptedServer(script) as srv:
        session.connect(**srv.options(timeout=10))
        call = session.client().noop()
        with pytest.raises(SMTPResponseException, match="going down"):
            call.result(10)
        assert repr(call) == "<Call default.noop(): failed: SMTPResponseException: 421 4.3.2 going down>"
        assert pretty(call) == "SMTPResponseException: 421 4.3.2 going down"  # as a cell's value: one line
        assert call._repr_html_() is None
        assert not session.get().is_connected

        async def again():
            return await session.client().noop()

        with pytest.raises(SMTPServerDisconnected):
            asyncio.run(again())


def test_proxy_follows_the_name_not_the_client(server, session):
    smtp = session.client("later")
    assert "no such connection yet" in repr(smtp)
    with pytest.raises(NotConnectedError, match="no connection named 'later'"):
        smtp.noop()
    session.connect("later", **server.client_options(), timeout=10)
    assert smtp.noop().result(10).code == 250
    assert smtp.is_connected and smtp.name == "later"


def test_waiting_on_the_session_loop_itself_is_refused(server, session):
    session.connect(**server.client_options(), timeout=10)

    async def inside():
        coro = asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="session loop itself"):
            session.run(coro)
        return True

    assert session.run(inside())


def test_connect_twice_under_one_name_is_refused(server, session):
    session.connect(**server.client_options(), timeout=10)
    with pytest.raises(SMTPNotebookError, match="already open"):
        session.connect(**server.client_options(), timeout=10)


def test_closed_connection_reconnects_with_a_note(session):
    srv = LocalServer().start()
    port = srv.port
    try:
        session.connect(**srv.client_options(), timeout=10)
        srv.stop()
        srv = LocalServer(port=port).start()
        reply, notes = session.call(lambda client: client.noop())
        assert reply.code == 250
        assert notes == [f"connection 'default' had closed; reconnected to 127.0.0.1:{port}"]
    finally:
        srv.stop()


def test_reconnect_failure_says_what_happened(session):
    srv = LocalServer().start()
    session.connect(**srv.client_options(), timeout=10)
    srv.stop()
    with pytest.raises(SMTPNotebookError, match="had closed, and opening it again failed: cannot connect"):
        session.call(lambda client: client.noop())


def test_quit_forgets_and_moves_current(server, session):
    session.connect("a", **server.client_options(), timeout=10)
    session.connect("b", **server.client_options(), timeout=10)
    client = session.get("b").client
    session.quit()
    assert not client.is_connected
    assert session.names() == ["a"] and session.current == "a"


def test_close_quits_everything_and_the_session_works_again(server, session):
    session.connect(**server.client_options(), timeout=10)
    embedded = session.start_server()
    thread = session._thread
    session.close()
    assert not thread.is_alive()
    assert not embedded.running and session.server is None
    assert session.names() == []
    session.connect(**server.client_options(), timeout=10)
    assert session.client().noop().result(10).code == 250


def test_reset_session_gives_a_new_one(server):
    first = get_session()
    first.connect(**server.client_options(), timeout=10)
    reset_session()
    assert get_session() is not first
    assert first.names() == []


def _forever(started: threading.Event, cancelled: threading.Event):
    async def wait_forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    return wait_forever()


def test_interrupt_right_after_the_start_still_cancels(session, monkeypatch):
    started, cancelled = threading.Event(), threading.Event()
    original = _Job.start

    def start_then_interrupt(job):
        original(job)
        assert started.wait(10)
        raise KeyboardInterrupt  # lands after the command went out, before the wait began

    monkeypatch.setattr(_Job, "start", start_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        session.run(_forever(started, cancelled))
    assert cancelled.is_set()  # and run() returned only once the cancellation had run


def test_interrupt_before_the_start_closes_the_coroutine(session, monkeypatch):
    started, cancelled = threading.Event(), threading.Event()

    def interrupted(job):
        raise KeyboardInterrupt

    monkeypatch.setattr(_Job, "start", interrupted)
    coro = _forever(started, cancelled)
    with pytest.raises(KeyboardInterrupt):
        session.run(coro)
    assert coro.cr_frame is None  # closed: no "never awaited" warning, nothing left to run
    assert not started.is_set()
