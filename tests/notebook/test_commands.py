"""Raw commands, the transcript, the embedded server and its inbox, restarts, interrupts, and cell code on the proxy."""

from __future__ import annotations

import email.message
import re
import signal
import threading

import pytest
from IPython.core.error import UsageError

from smtp_nb.notebook.errors import NotConnectedError
from smtp_nb.notebook.session import Call, reset_session
from smtp_nb.notebook.views import Inbox, Reply
from smtp_nb.server import LocalServer
from tests.notebook.conftest import run, scripted, shown
from tests.scripted import greet


def test_raw_command_shows_the_reply(ip, server):
    run(ip, "%smtp_server")
    run(ip, "%smtp_connect")
    reply, _ = run(ip, "%smtp VRFY alice@example.com")
    assert isinstance(reply, Reply)
    assert repr(reply) == "> VRFY alice@example.com\n< 250 <alice@example.com>"
    reply, _ = run(ip, "%smtp EXPN team@example.com")
    assert repr(reply) == "> EXPN team@example.com\n< 250-<alice@example.com>\n< 250 <bob@example.com>"
    reply, _ = run(ip, "%smtp VRFY nobody@example.com")
    assert reply.code == 252  # a reply, not a failure: raw commands show what the server said
    assert "&gt; VRFY nobody@example.com" in reply._repr_html_()


def test_raw_command_by_name_and_verbatim(ip, server):
    run(ip, f"%smtp_connect 127.0.0.1:{server.port} --name other")
    reply, _ = run(ip, "%smtp --name other HELP {not expanded}")
    assert reply.command == "HELP {not expanded}"
    assert reply.code in (214, 501)


@pytest.mark.parametrize("verb", ["AUTH PLAIN AGRlbW8AZGVtby1wYXNzd29yZA==", "STARTTLS", "DATA", "QUIT"])
def test_raw_commands_that_would_break_the_session_are_refused(ip, server, verb):
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    with pytest.raises(UsageError, match=f"{verb.split()[0]} cannot be sent raw: "):
        ip.run_cell(f"%smtp {verb}")


def test_raw_command_without_a_connection(ip):
    with pytest.raises(NotConnectedError):
        ip.run_cell("%smtp NOOP")


def test_log_shows_the_conversation_and_can_be_cleared(ip, server):
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    run(ip, "%smtp NOOP")
    log, _ = run(ip, "%smtp_log -n 2")
    assert log.lines() == ["> NOOP", "< 250 OK"]
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} > NOOP\n\d\d:\d\d:\d\d\.\d{3} < 250 OK", repr(log))
    full, _ = run(ip, "%smtp_log")
    assert full.lines()[0] == f"* connecting to 127.0.0.1:{server.port}"
    note, _ = run(ip, "%smtp_log --clear")
    assert repr(note) == "cleared the transcript of 'default'"
    log, _ = run(ip, "%smtp_log")
    assert repr(log) == "the transcript of 'default' is empty"


def test_server_is_idempotent_and_stops(ip, session):
    info, _ = run(ip, "%smtp_server --auth --auth-plaintext")
    server = session.server
    assert repr(info).splitlines()[1:] == [
        "features: AUTH for demo user demo, required before mail (password: smtp_nb.server.demo_password())",
        "inbox: 0 messages (%smtp_inbox); %smtp_connect with no host connects here",
    ]
    again, _ = run(ip, "%smtp_server --auth --auth-plaintext")
    assert session.server is server
    assert repr(again).startswith("the embedded SMTP server is already running\n")
    with pytest.raises(UsageError, match=r"already runs on port \d+ with other options"):
        ip.run_cell("%smtp_server --starttls")
    with pytest.raises(UsageError, match="choose --starttls or --tls"):
        ip.run_cell("%smtp_server --tls --starttls")
    stopped, _ = run(ip, "%smtp_server --stop")
    assert repr(stopped) == "the embedded SMTP server stopped (mail discarded: 0)"
    assert not server.running and session.server is None
    stopped, _ = run(ip, "%smtp_server --stop")
    assert repr(stopped) == "the embedded SMTP server was not running"


def test_inbox_lists_received_mail_as_email_messages(ip):
    run(ip, "%smtp_server")
    run(ip, "%smtp_connect")
    run(ip, "%%smtp_send --to b@example.com --to c@example.com --from a@example.com\nSubject: first\n\none")
    run(ip, "%%smtp_send --to d@example.com --from a@example.com\nSubject: second\n\ntwo")
    inbox, _ = run(ip, "%smtp_inbox")
    assert isinstance(inbox, Inbox) and len(inbox) == 2
    assert all(isinstance(m, email.message.EmailMessage) for m in inbox)
    assert [m["Subject"] for m in inbox] == ["first", "second"]
    assert inbox.received[0].rcpt_tos == ("b@example.com", "c@example.com")
    lines = repr(inbox).splitlines()
    assert lines[0] == "2 messages"
    assert re.fullmatch(
        r"0  \d\d:\d\d:\d\d  a@example\.com  b@example\.com, c@example\.com  first +\d+ bytes", lines[2]
    )
    assert '<td style="text-align:left">second</td>' in inbox._repr_html_()
    note, _ = run(ip, "%smtp_inbox --clear")
    assert repr(note) == "inbox cleared (removed: 2)"
    inbox, _ = run(ip, "%smtp_inbox")
    assert inbox == [] and repr(inbox) == "the inbox is empty"


def test_inbox_without_a_server(ip):
    with pytest.raises(NotConnectedError, match="the embedded server is not running: start it with %smtp_server"):
        ip.run_cell("%smtp_inbox")


def test_session_survives_a_server_restart(ip, monkeypatch):
    monkeypatch.setenv("SMTP_NB_TEST_PASSWORD", "demo-password")
    first = LocalServer(auth=True).start()
    port = first.port
    run(ip, f"%smtp_connect 127.0.0.1:{port} --user demo --password-env SMTP_NB_TEST_PASSWORD")
    first.stop()
    second = LocalServer(port=port, auth=True).start()
    try:
        result, captured = run(ip, "%%smtp_send --to b@example.com --from a@example.com\nSubject: after\n\nbody")
        assert captured.stdout.splitlines()[0] == f"connection 'default' had closed; reconnected to 127.0.0.1:{port}"
        assert result.status == "accepted"
        (received,) = second.messages
        assert received.subject == "after" and received.login == "demo"
    finally:
        reset_session()
        second.stop()


def test_password_variable_not_set(ip, auth_server):
    with pytest.raises(UsageError, match="the environment variable SMTP_NB_UNSET is not set"):
        ip.run_cell(f"%smtp_connect 127.0.0.1:{auth_server.port} --user demo --password-env SMTP_NB_UNSET")


def test_embedded_server_restart_on_a_new_port_is_followed(ip, session):
    run(ip, "%smtp_server --starttls")
    run(ip, "%smtp_connect")
    run(ip, "%smtp_server --stop")
    run(ip, "%smtp_server --starttls")
    new_port = session.server.port
    reply, captured = run(ip, "%smtp NOOP")
    assert captured.stdout.splitlines()[0] == f"connection 'default' had closed; reconnected to 127.0.0.1:{new_port}"
    assert reply.code == 250
    assert session.get().client.is_tls


def _silent_after(verb_count: int, received: threading.Event, closed: threading.Event):
    """A server that greets, answers EHLO, then reads ``verb_count`` more commands and never answers."""

    async def script(peer):
        await greet(peer)
        await peer.readline()
        await peer.reply("250 silent.example")
        for _ in range(verb_count):
            await peer.readline()
        received.set()
        await peer.wait_closed_by_client()
        closed.set()

    return script


def _interrupt_main_thread_when(event: threading.Event) -> threading.Thread:
    main = threading.main_thread().ident
    assert main is not None

    def interrupter() -> None:
        if event.wait(30):
            signal.pthread_kill(main, signal.SIGINT)

    thread = threading.Thread(target=interrupter, daemon=True)
    thread.start()
    return thread


def test_interrupt_cancels_a_command_waiting_on_a_silent_server(ip, session, server):
    received, closed = threading.Event(), threading.Event()
    with scripted(_silent_after(1, received, closed)) as srv:
        run(ip, f"%smtp_connect 127.0.0.1:{srv.port} --timeout 60")
        client = session.get().client
        interrupter = _interrupt_main_thread_when(received)
        with shown() as captured, pytest.raises(KeyboardInterrupt):
            ip.run_cell("%smtp NOOP")
        interrupter.join(10)
        assert srv.lines[-1] == "NOOP"
        assert captured.stderr == (
            "interrupted: the command was cancelled and connection 'default' closed (the next command opens it again)\n"
        )
        assert not client.is_connected
        assert closed.wait(10), "the server never saw the connection close"
        assert session.names() == ["default"]
        run(ip, f"%smtp_connect 127.0.0.1:{server.port}")  # the same name, a new connection
        reply, _ = run(ip, "%smtp NOOP")
        assert reply.code == 250
        assert session.loop.is_running()


def test_interrupt_during_connect_leaves_nothing_behind(ip, session, server):
    greeted = threading.Event()

    async def never_greets(peer):
        greeted.set()
        await peer.wait_closed_by_client()

    with scripted(never_greets) as srv:
        interrupter = _interrupt_main_thread_when(greeted)
        with pytest.raises(KeyboardInterrupt):
            ip.run_cell(f"%smtp_connect 127.0.0.1:{srv.port} --timeout 60")
        interrupter.join(10)
        assert session.names() == []
        run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
        assert session.get().is_connected


def test_cell_code_awaits_the_proxy_with_autoawait(ip, server):
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    ip.run_cell("import smtp_nb\nsmtp = smtp_nb.session().client()")
    reply, _ = run(ip, "await smtp.noop()")
    assert (reply.code, reply.message) == (250, "OK")
    run(ip, "refused, queued = await smtp.sendmail('a@example.com', ['b@example.com'], 'Subject: awaited\\n\\nx')")
    assert ip.user_ns["refused"] == {} and "queued as" in ip.user_ns["queued"]
    assert server.messages[-1].subject == "awaited"


def test_cell_code_calls_the_proxy_synchronously(ip, server):
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    ip.run_cell("import smtp_nb\nsmtp = smtp_nb.session().client()")
    reply, _ = run(ip, "smtp.noop().result()")
    assert reply.code == 250
    call, captured = run(ip, "smtp.vrfy('alice@example.com')")
    assert isinstance(call, Call)  # the cell's value is the Call, and its Out shows the reply once there is one
    # (the prompt's number depends on the IPython version: 8 on Python 3.10, 9 later)
    assert re.fullmatch(r"Out\[\d+\]: SMTPResponse\(code=250, message='<alice@example\.com>'\)\n", captured.stdout)
    assert repr(call) == "<Call default.vrfy(): SMTPResponse(code=250, message='<alice@example.com>')>"
