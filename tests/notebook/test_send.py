"""``%%smtp_send`` in a real shell: the mail arrives as written, the table lists every reply, bad cells send nothing."""

from __future__ import annotations

import re

import pytest
from IPython.core.error import UsageError

from smtp_nb import SMTPRecipientsRefused, SMTPSenderRefused
from smtp_nb.notebook.errors import MessageError, NotConnectedError, SMTPNotebookError
from smtp_nb.notebook.views import SendResult
from tests.notebook.conftest import run, shown

CELL = """%%smtp_send --to grace@example.com --bcc audit@example.com
From: Ada <ada@example.com>
Subject: Results for week {{ week }}

Hello {{ name }},
the dict {"a": 1} and {name} stay as written.
.a line starting with a dot
"""


def test_mail_arrives_with_headers_and_body(ip, server):
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    ip.user_ns.update(week=7, name="Grace")
    result, _ = run(ip, CELL)
    assert isinstance(result, SendResult) and result.status == "accepted"
    (received,) = server.messages
    assert received.mail_from == "ada@example.com"
    assert received.rcpt_tos == ("grace@example.com", "audit@example.com")
    message = received.message
    assert message["From"] == "Ada <ada@example.com>"
    assert message["To"] == "grace@example.com"
    assert message["Subject"] == "Results for week 7"
    assert message["Bcc"] is None and b"audit@example.com" not in received.data
    assert message["Message-ID"] == result.message["Message-ID"]
    assert message.get_content().replace("\r\n", "\n") == (
        'Hello Grace,\nthe dict {"a": 1} and {name} stay as written.\n.a line starting with a dot\n'
    )


def test_table_lists_each_recipient_and_the_queue_id(ip, server):
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    ip.user_ns.update(week=7, name="Grace")
    result, _ = run(ip, CELL)
    rows = result.rows()
    # aiosmtpd gives no enhanced status codes: the status column says the reply's class instead
    assert rows[:2] == [
        ("grace@example.com", "250", "success", "OK", "accepted"),
        ("audit@example.com", "250", "success", "OK", "accepted"),
    ]
    data = rows[2]
    assert data[:2] == ("DATA", "250") and re.fullmatch(r"queue id [0-9A-F]{10}", data[4])
    assert result.queue_id == data[4].removeprefix("queue id ")
    text = repr(result)
    assert text.startswith("sent via 'default': 2 of 2 recipients accepted\n")
    assert re.search(r"\n  grace@example\.com +250 +success +OK +accepted\n", text)
    html = result._repr_html_()
    assert '<td style="text-align:left">grace@example.com</td>' in html and "id=" not in html


def test_refused_recipient_is_shown_and_the_rest_delivered(ip, rule_server):
    rule_server.rules["RCPT"] = {"nobody@example.com": "550 5.1.1 no such user"}
    run(ip, f"%smtp_connect 127.0.0.1:{rule_server.port}")
    result, _ = run(
        ip, "%%smtp_send --to grace@example.com --to nobody@example.com --from ada@example.com\nSubject: hi\n\nbody"
    )
    assert result.status == "accepted"
    assert result.rows()[1] == ("nobody@example.com", "550", "5.1.1", "5.1.1 no such user", "refused")
    assert repr(result).startswith(
        "sent via 'default': 1 of 2 recipients accepted; refused: nobody@example.com (550)\n"
    )
    assert 'style="color:#a40000"' in result._repr_html_()
    assert rule_server.messages[0].rcpt_tos == ("grace@example.com",)


def test_all_refused_fails_the_cell_in_one_line_and_keeps_the_result(ip, rule_server):
    rule_server.rules["RCPT"] = {"nobody@example.com": "550 5.1.1 no such user"}
    run(ip, f"%smtp_connect 127.0.0.1:{rule_server.port}")
    with shown() as captured, pytest.raises(SMTPNotebookError) as raised:
        ip.run_cell("%%smtp_send -o outcome --to nobody@example.com --from ada@example.com\nSubject: hi\n\nbody")
    error = raised.value
    assert isinstance(error.error, SMTPRecipientsRefused)
    assert error._render_traceback_() == [
        "SMTPRecipientsRefused: not sent via 'default': all recipients were refused: "
        "nobody@example.com (550 5.1.1 no such user)"
    ]
    assert ip.user_ns["outcome"] is error.result
    assert error.result.error is error.error and error.result.status == "refused"
    shown_table = captured.outputs[0].data["text/plain"]
    assert "nobody@example.com  550   5.1.1   5.1.1 no such user  refused" in shown_table
    assert captured.stdout.strip().endswith(error._render_traceback_()[0])
    assert rule_server.messages == []


def test_refused_sender_fails_the_cell(ip, rule_server):
    rule_server.rules["MAIL"] = {"ada@example.com": "553 5.7.1 not allowed to send"}
    run(ip, f"%smtp_connect 127.0.0.1:{rule_server.port}")
    with pytest.raises(SMTPNotebookError) as raised:
        ip.run_cell("%%smtp_send --to grace@example.com --from ada@example.com\n\nbody")
    assert isinstance(raised.value.error, SMTPSenderRefused)
    assert raised.value.result.rows()[0][:2] == ("MAIL FROM:<ada@example.com>", "553")


def test_dry_run_shows_the_message_and_sends_nothing(ip, server):
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    ip.user_ns.update(week=8, name="Linus")
    result, _ = run(ip, CELL.replace("%%smtp_send", "%%smtp_send --dry-run -o draft"))
    assert result.dry_run and result.status == "dry run" and result.delivery is None
    assert ip.user_ns["draft"] is result
    assert server.messages == []
    text = repr(result)
    assert text.startswith(
        "dry run: nothing was sent; envelope from ada@example.com to grace@example.com, audit@example.com\n---\n"
    )
    assert "Subject: Results for week 8\n" in text and "Hello Linus," in text
    assert "Bcc" not in text  # shown as it goes on the wire


def test_dry_run_needs_no_connection(ip):
    result, _ = run(ip, "%%smtp_send --dry-run --to b@example.com --from a@example.com\nSubject: s\n\nbody")
    assert result.recipients == ["b@example.com"]


def test_attachment_and_html_arrive(ip, server, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("attached text\n")
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    run(ip, f"%%smtp_send --html --attach {path} --to b@example.com --from a@example.com\n\n<p>Hi</p>")
    message = server.messages[0].message
    assert message.get_body(("html",)).get_content() == "<p>Hi</p>\r\n"
    (attachment,) = message.iter_attachments()
    assert (attachment.get_filename(), attachment.get_content()) == ("notes.txt", "attached text\n")


@pytest.mark.parametrize(
    ("cell", "match"),
    [
        ("%%smtp_send --from a@example.com\nSubject: s\n\nbody", "no recipients"),
        ("%%smtp_send --to b@example.com\nFrom: a@example.com\nnot a header\n\nbody", "line 2 is not a header"),
        (
            "%%smtp_send --to b@example.com\nFrom: a@example.com\n\nHello {{ nobody_defined_this }}",
            "nobody_defined_this",
        ),
        ("%%smtp_send --attach /no/such/file.pdf --to b@example.com\nFrom: a@example.com\n\nx", "not found"),
        ("%%smtp_send --to b@example.com\nFrom: a@example.com\nSubject: {{ evil }}\n\nx", "holds a line break"),
    ],
    ids=["no-recipients", "no-colon", "undefined-field", "missing-attachment", "header-injection"],
)
def test_bad_cells_fail_visibly_and_send_nothing(ip, server, cell, match):
    ip.user_ns["evil"] = "hi\r\nBcc: everyone@example.com"
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    with shown() as captured, pytest.raises(MessageError, match=match) as raised:
        ip.run_cell(cell)
    (line,) = raised.value._render_traceback_()
    assert line.startswith("MessageError: ") and line.endswith("nothing was sent")
    assert captured.stdout.strip() == line
    assert server.messages == []


def test_send_without_a_connection_is_one_line(ip):
    with pytest.raises(NotConnectedError) as raised:
        ip.run_cell("%%smtp_send --to b@example.com --from a@example.com\n\nbody")
    assert raised.value._render_traceback_() == [
        "NotConnectedError: no SMTP connection: open one with %smtp_connect (or session.connect())"
    ]


def test_send_by_name_uses_that_connection(ip, server, auth_server):
    run(ip, f"%smtp_connect 127.0.0.1:{server.port} --name first")
    run(ip, f"%smtp_connect 127.0.0.1:{auth_server.port} --name second")
    result, _ = run(ip, "%%smtp_send --name first --to b@example.com --from a@example.com\n\nbody")
    assert result.connection == "first"
    assert len(server.messages) == 1 and auth_server.messages == []


def test_bad_output_variable_is_refused_before_sending(ip, server):
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    with pytest.raises(UsageError, match="-o needs a variable name, not 'not-a-name'"):
        ip.run_cell("%%smtp_send -o not-a-name --to b@example.com --from a@example.com\n\nbody")
    assert server.messages == []


def test_send_over_starttls_with_auth(ip, starttls_server, monkeypatch):
    monkeypatch.setenv("SMTP_NB_TEST_PASSWORD", "demo-password")
    run(
        ip,
        f"%smtp_connect localhost:{starttls_server.port} --starttls --cafile {starttls_server.ca_path} "
        "--user demo --password-env SMTP_NB_TEST_PASSWORD",
    )
    result, captured = run(ip, "%%smtp_send --to grace@example.com --from ada@example.com\nSubject: secure\n\nbody")
    assert result.status == "accepted"
    (received,) = starttls_server.messages
    assert (received.tls, received.login, received.subject) == (True, "demo", "secure")
    log, _ = run(ip, "%smtp_log")
    assert "> STARTTLS" in log.lines() and "demo-password" not in "\n".join(log.lines()) + captured.stdout
