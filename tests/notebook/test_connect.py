"""``%smtp_connect`` and friends in a real shell: the embedded server, STARTTLS, TLS and AUTH servers, bad input."""

from __future__ import annotations

import re

import pytest
from IPython.core.error import UsageError

from smtp_nb.notebook.errors import SMTPNotebookError
from smtp_nb.notebook.magics import SMTPMagics
from smtp_nb.notebook.views import CapabilityReport
from tests.notebook.conftest import run, scripted, shown
from tests.scripted import ScriptedServer, greet

PASSWORD = "hunter2-correct-horse"


def _everything_shown(captured, *objects) -> str:
    parts = [captured.stdout, captured.stderr]
    for output in captured.outputs:
        parts.extend(str(v) for v in output.data.values())
    for obj in objects:
        parts.extend([repr(obj), getattr(obj, "_repr_html_", lambda: "")()])
    return "\n".join(parts)


def test_connect_with_no_host_uses_the_embedded_server(ip, session):
    run(ip, "%smtp_server")
    report, _ = run(ip, "%smtp_connect")
    assert isinstance(report, CapabilityReport)
    port = session.server.port
    assert report.where == f"127.0.0.1:{port}"
    assert repr(report).splitlines()[:3] == [
        f"SMTP connection 'default' to 127.0.0.1:{port} (server localhost)",
        "TLS: none - the connection is not encrypted",
        "login: not logged in",
    ]
    size = report.capabilities.extension("SIZE")
    assert size.meaning.startswith("messages up to 33.6 MB (33,554,432 bytes)")
    assert report.capabilities.extension("PIPELINING").known
    assert "<table" in report._repr_html_() and "SIZE 33554432" in report._repr_html_()


def test_connect_to_embedded_starttls_server_with_auth_logs_in_as_demo(ip, session):
    run(ip, "%smtp_server --starttls --auth")
    report, _ = run(ip, "%smtp_connect")
    tls = report.capabilities.tls
    assert tls is not None and tls.verified and tls.protocol.startswith("TLS")
    assert "issuer O=smtp_nb embedded server" in repr(report)
    assert report.capabilities.user == "demo"
    assert "login: logged in as demo" in repr(report)
    assert "WARNING" not in repr(report)


def test_starttls_server_with_password_from_environment(ip, starttls_server, monkeypatch):
    monkeypatch.setenv("SMTP_TEST_PASSWORD", "demo-password")
    source = (
        f"%smtp_connect localhost:{starttls_server.port} --starttls --cafile {starttls_server.ca_path} "
        "--user demo --password-env SMTP_TEST_PASSWORD"
    )
    report, captured = run(ip, source)
    assert report.capabilities.tls.verified
    assert report.capabilities.user == "demo"
    assert report.capabilities.extension("STARTTLS") is None  # not offered again once encrypted
    assert "demo-password" not in _everything_shown(captured, report)
    log, _ = run(ip, "%smtp_log")
    assert "demo-password" not in repr(log) + log._repr_html_()
    assert any(line.startswith("> AUTH ") for line in log.lines())


def test_implicit_tls_server_with_prompted_password(ip, tls_server, monkeypatch):
    prompts = []

    def fake_getpass(prompt: str) -> str:
        prompts.append(prompt)
        return "demo-password"

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    report, captured = run(
        ip,
        f"%smtp_connect 127.0.0.1:{tls_server.port} --tls --cafile {tls_server.ca_path} --user demo --prompt-password",
    )
    assert prompts == [f"SMTP password for demo at 127.0.0.1:{tls_server.port}: "]
    assert report.capabilities.user == "demo"
    assert report.capabilities.tls.verified
    assert "demo-password" not in _everything_shown(captured, report)


def test_no_verify_shows_a_warning_and_the_certificate(ip, tls_server):
    report, _ = run(ip, f"%smtp_connect 127.0.0.1:{tls_server.port} --tls --no-verify")
    assert not report.capabilities.tls.verified
    assert "WARNING: the certificate was NOT verified (--no-verify)" in repr(report)
    assert "issuer O=smtp_nb embedded server" in repr(report).replace(
        "O=smtp_nb embedded server,OU", "O=smtp_nb embedded server, OU"
    ) or "smtp_nb embedded server" in repr(report)
    assert "color:#a40000" in report._repr_html_()


def test_wrong_password_is_one_line_without_the_password(ip, auth_server, monkeypatch, session):
    monkeypatch.setenv("SMTP_TEST_PASSWORD", PASSWORD)
    with shown() as captured, pytest.raises(SMTPNotebookError) as raised:
        ip.run_cell(f"%smtp_connect 127.0.0.1:{auth_server.port} --user demo --password-env SMTP_TEST_PASSWORD")
    error = raised.value
    assert error._render_traceback_() == [
        f"SMTPAuthenticationError: logging in as demo failed: {error.error.code} {error.error.message}"
    ]
    assert error.error.code == 535
    assert captured.stdout.strip() == error._render_traceback_()[0]
    assert PASSWORD not in _everything_shown(captured) + str(error) + repr(error.error)
    assert session.names() == []


def test_password_literal_is_refused_without_echoing_it(ip):
    for line in (f"--password {PASSWORD}", f"--password={PASSWORD}", f"--pass {PASSWORD}"):
        with shown() as captured, pytest.raises(UsageError) as raised:
            ip.run_cell(f"%smtp_connect smtp.example.com {line}")
        assert "use --password-env VAR" in str(raised.value) and "--prompt-password" in str(raised.value)
        assert PASSWORD not in str(raised.value) + captured.stdout + captured.stderr


def test_password_typed_as_the_variable_name_is_not_repeated(ip, auth_server):
    with shown() as captured, pytest.raises(UsageError, match="no variable of the name given is set") as raised:
        ip.run_cell(f"%smtp_connect 127.0.0.1:{auth_server.port} --user demo --password-env {PASSWORD}")
    assert PASSWORD not in str(raised.value) + captured.stdout + captured.stderr


def test_unknown_option_is_named_without_its_value(ip):
    with (
        shown() as captured,
        pytest.raises(
            UsageError, match=r"unknown option --pasword \(the values given are not shown: one may be a password"
        ),
    ):
        ip.run_cell(f"%smtp_connect smtp.example.com --pasword {PASSWORD}")
    assert PASSWORD not in captured.stderr


def test_unknown_option_of_another_magic(ip):
    with pytest.raises(UsageError, match=r"%smtp_server: unrecognized arguments: --fast"):
        ip.run_cell("%smtp_server --fast")


def test_no_host_and_no_embedded_server(ip):
    with pytest.raises(UsageError, match="no host given, and the embedded server is not running"):
        ip.run_cell("%smtp_connect")


def test_connect_while_connected_under_the_same_name(ip, server, session):
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    with pytest.raises(
        UsageError, match=r"connection 'default' is already open to 127\.0\.0\.1:\d+; .*--name NAME.*%smtp_quit"
    ):
        ip.run_cell(f"%smtp_connect 127.0.0.1:{server.port}")
    run(ip, f"%smtp_connect 127.0.0.1:{server.port} --name second")
    assert session.names() == ["default", "second"]


def test_connection_refused_is_one_line(ip):
    with ScriptedServer(greet) as srv:
        port = srv.port
    with pytest.raises(SMTPNotebookError) as raised:
        ip.run_cell(f"%smtp_connect 127.0.0.1:{port} --timeout 5")
    (line,) = raised.value._render_traceback_()
    assert line.startswith(f"SMTPConnectError: nothing is listening on 127.0.0.1:{port} (connection refused)")
    assert "%smtp_server" in line and "--profile NAME" in line


def test_timeout_is_one_line_and_closes_the_connection(ip, session):
    async def silent_after_ehlo(peer):
        await greet(peer)
        await peer.readline()
        await peer.reply("250 quiet")
        await peer.wait_closed_by_client()

    with scripted(silent_after_ehlo) as srv:
        run(ip, f"%smtp_connect 127.0.0.1:{srv.port} --timeout 0.3")
        with pytest.raises(SMTPNotebookError) as raised:
            ip.run_cell("%smtp NOOP")
        (line,) = raised.value._render_traceback_()
        assert line.startswith("SMTPReadTimeoutError: ")
        assert line.endswith("the connection is closed (the next command opens it again)")
        assert not session.get().is_connected


def test_several_connections_use_and_list(ip, server, auth_server, session):
    run(ip, f"%smtp_connect 127.0.0.1:{server.port} --name plain")
    run(ip, f"%smtp_connect 127.0.0.1:{auth_server.port} --name auth")
    assert session.current == "auth"
    note, _ = run(ip, "%smtp_use plain")
    assert repr(note) == f"current connection: 'plain' (127.0.0.1:{server.port})"
    table, _ = run(ip, "%smtp_connections")
    assert [row[0] for row in table.rows] == ["plain", "auth"]
    assert [row[6] for row in table.rows] == ["*", ""]
    assert table.rows[0][1:6] == (f"127.0.0.1:{server.port}", "", "open", "no", "")
    with pytest.raises(UsageError, match=r"no connection named 'nope' \(open connections: plain, auth\)"):
        ip.run_cell("%smtp_use nope")


def test_quit_one_and_all(ip, server, session):
    run(ip, f"%smtp_connect 127.0.0.1:{server.port} --name a")
    run(ip, f"%smtp_connect 127.0.0.1:{server.port} --name b")
    client_b = session.get("b").client
    note, _ = run(ip, "%smtp_quit")
    assert repr(note) == f"closed connection 'b' (127.0.0.1:{server.port})"
    assert note._repr_html_() == f"<div>closed connection &#x27;b&#x27; (127.0.0.1:{server.port})</div>"
    assert not client_b.is_connected and session.current == "a"
    run(ip, "%smtp_quit --all")
    assert session.names() == []
    note, _ = run(ip, "%smtp_quit --all")
    assert repr(note) == "no open connection to close"
    table, _ = run(ip, "%smtp_connections")
    assert repr(table) == "no SMTP connections (open one with %smtp_connect)"


def test_ehlo_shows_unknown_extensions_as_such(ip):
    async def script(peer):
        await greet(peer)
        await peer.serve(ehlo="250-odd.example\r\n250-XFANCY 1 2\r\n250-SIZE 1000000\r\n250 ENHANCEDSTATUSCODES")

    with scripted(script) as srv:
        run(ip, f"%smtp_connect 127.0.0.1:{srv.port}")
        report, _ = run(ip, "%smtp_ehlo")
        assert report.server_name == "odd.example"
        fancy = report.capabilities.extension("XFANCY")
        assert (fancy.params, fancy.known) == ("1 2", False)
        assert re.search(r"\n  XFANCY 1 2 +not known to smtp_nb", repr(report))
        assert report.capabilities.max_message_size == 1_000_000


def test_capability_widget_holds_the_parsed_capabilities(ip, session):
    run(ip, "%smtp_server --starttls --auth")
    report, _ = run(ip, "%smtp_connect")
    explorer = report.widget()
    labels = explorer.extensions.get_state()["_options_labels"]
    assert "SIZE 33554432" in labels and "AUTH CRAM-MD5 LOGIN PLAIN XOAUTH2" in labels
    explorer.extensions.value = "AUTH"
    assert "login methods: CRAM-MD5, LOGIN, PLAIN, XOAUTH2" in explorer.detail.get_state()["value"]
    assert "logged in as demo" in explorer.summary.get_state()["value"]
    assert explorer._repr_mimebundle_()["text/plain"] == repr(report) == repr(explorer)
    assert session.server.users["demo"] not in str(explorer.get_state()) + str(explorer.extensions.get_state())


def test_capability_view_is_html_and_text_only_even_in_a_kernel(ip, session):
    """No widget view in a cell's output: a saved notebook must read the same without a kernel."""
    run(ip, "%smtp_server --starttls --auth")
    ip.kernel = object()  # what ipykernel's shell has
    try:
        for line in ("%smtp_connect", "%smtp_ehlo"):
            report, _ = run(ip, line)
            data, _ = ip.display_formatter.format(report)
            assert set(data) == {"text/plain", "text/html"}
            assert data["text/plain"] == repr(report)
    finally:
        del ip.kernel
    html = report._repr_html_()
    assert html.count("<details>") == len(report.capabilities.extensions) == 7
    assert "<summary>login methods: CRAM-MD5, LOGIN, PLAIN, XOAUTH2</summary>" in html
    assert "EHLO line: <code>250-AUTH CRAM-MD5 LOGIN PLAIN XOAUTH2</code>" in html
    assert "<summary>" in html and "<script" not in html and "widget" not in html


def test_config_sets_timeout_and_validates(ip, server, session, caplog):
    run(ip, "%config SMTPMagics.timeout = 7.5")
    magics = next(c for c in ip.configurables if isinstance(c, SMTPMagics))
    assert magics.timeout == 7.5
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    assert session.get().client.timeout == 7.5
    ip.run_cell("%config SMTPMagics.timeout = -1")
    assert "SMTPMagics.timeout must be a positive number of seconds or None, not -1" in caplog.text
    assert magics.timeout == 7.5


def test_config_connect_options_apply_and_refuse_credentials(ip, server, session, caplog):
    run(ip, f"%config SMTPMagics.connect_options = {{'local_hostname': 'notebook.example', 'port': {server.port}}}")
    run(ip, "%smtp_connect 127.0.0.1")
    assert session.get().client.local_hostname == "notebook.example"
    assert session.get().where == f"127.0.0.1:{server.port}"
    ip.run_cell("%config SMTPMagics.connect_options = {'password': 'x'}")
    assert "cannot set password (credentials never go in configuration" in caplog.text


def test_help_is_written_for_a_person(ip):
    text, captured = run(ip, "%smtp_connect --help")
    assert repr(text).startswith("%smtp_connect [--profile NAME] [--port PORT]") and "Out[" in captured.stdout
    assert "--password-env VAR    read the password from environment variable VAR" in repr(text)
    assert text._repr_html_().startswith("<pre>%smtp_connect")
    for magic in ("smtp_server", "smtp_inbox", "smtp_use", "smtp_connections", "smtp_quit", "smtp_ehlo", "smtp_log"):
        text, _ = run(ip, f"%{magic} --help")
        assert repr(text).startswith(f"%{magic}")


@pytest.mark.parametrize("magic", ["smtp_send", "smtp_merge"])
def test_cell_magics_help_says_two_percent_signs(ip, magic):
    with shown() as captured:
        ip.run_cell(f"%%{magic}?\n")
    assert f"%%{magic} [" in captured.stdout and "options:" in captured.stdout
    text, _ = run(ip, f"%%{magic} --help\nbody")
    if magic == "smtp_send":
        assert repr(text).startswith("%%smtp_send [--from ADDRESS]")
    with pytest.raises(UsageError, match=f"^%%{magic}: unrecognized arguments: .*--nope"):
        ip.run_cell(f"%%{magic} rows --nope\nSubject: x\n\nbody")


def test_certificate_failure_names_the_magics_options(ip, tls_server):
    with pytest.raises(SMTPNotebookError) as info:
        ip.run_cell(f"%smtp_connect 127.0.0.1:{tls_server.port} --tls")
    message = info.value.message
    assert "failed verification" in message
    assert "give --cafile ca.pem to trust its issuer, or --no-verify" in message
    assert "cert_bundle" not in message and "validate_certs" not in message


def test_certificate_reads_the_same_verified_or_not(ip, tls_server):
    verified, _ = run(ip, f"%smtp_connect 127.0.0.1:{tls_server.port} --tls --cafile {tls_server.ca_path} --name a")
    unverified, _ = run(ip, f"%smtp_connect 127.0.0.1:{tls_server.port} --tls --no-verify --name b")
    line = [x for x in repr(verified).splitlines() if x.startswith("certificate:")]
    assert line == [x for x in repr(unverified).splitlines() if x.startswith("certificate:")]
    assert line[0].startswith("certificate: subject O=smtp_nb embedded server, OU=demo certificate;")
