"""A known password, sent through every path, shows up nowhere.

Nowhere means: transcripts, logs, exceptions, reprs, widget state, notebooks.

The password is searched as written and in every encoding AUTH puts it in
(base64 of the password, of PLAIN's NUL-separated form, of XOAUTH2's form),
since any of those is as good as the password to whoever reads it.
"""

from __future__ import annotations

import base64
import getpass
import json
import logging
import re

import ipywidgets
import nbformat
import pytest
from nbclient import NotebookClient

from smtp_nb import SMTP, SMTPAuthenticationError
from smtp_nb.client.auth import plain_encode, xoauth2_encode
from smtp_nb.server import DEMO_USERS, LocalServer
from tests.notebook.conftest import ip, run  # noqa: F401 - the shell fixture
from tests.scripted import ScriptedServer, greet

USER = "ada"
PASSWORD = "Tr0ub4dor&3-correct-horse"
METHODS = ["auth_plain", "auth_login", "auth_crammd5", "auth_xoauth2"]


def secret_forms(user: str, password: str) -> set[str]:
    raw = password.encode()
    return {
        password,
        base64.b64encode(raw).decode(),
        plain_encode(user, password).decode(),
        xoauth2_encode(user, password).decode(),
    }


def _descendants(widget: ipywidgets.Widget) -> list[ipywidgets.Widget]:
    found = [widget]
    for child in getattr(widget, "children", ()):
        found += _descendants(child)
    return found


def assert_nowhere(texts: list[str], user: str = USER, password: str = PASSWORD) -> None:
    blob = "\n".join(texts)
    for form in secret_forms(user, password):
        assert form not in blob, f"a form of the password ({form[:6]}…) leaked"


@pytest.fixture
def servers():
    users = {USER: PASSWORD}
    with LocalServer(auth=True, users=users) as plain, LocalServer(starttls=True, auth=True, users=users) as tls:
        yield plain, tls


async def test_every_client_path(servers, caplog):
    plain, tls = servers
    caplog.set_level(logging.DEBUG)  # every logger: ours, asyncio's, aiosmtpd's (the server runs in this process)
    seen: list[str] = []

    constructor = SMTP(**tls.client_options(), username=USER, password=PASSWORD, timeout=10)
    seen += [repr(constructor), repr(vars(constructor)), str(constructor.password)]
    async with constructor:
        seen.append(repr(constructor))
    seen += constructor.transcript.lines()

    later = SMTP(**plain.client_options(), timeout=10)
    await later.connect(username=USER, password=PASSWORD)
    seen += [repr(later), repr(vars(later))]
    await later.quit()
    seen += later.transcript.lines()

    for method in ["cram-md5", "plain", "login", "xoauth2"]:
        async with SMTP(**plain.client_options(), timeout=10) as client:
            with pytest.raises(SMTPAuthenticationError) as wrong:
                await client.login(USER, PASSWORD + "!", method=method)
            seen += [str(wrong.value), repr(wrong.value), repr(wrong.value.args)]
            await client.login(USER, PASSWORD, method=method)
        seen += client.transcript.lines()

    for method in METHODS:
        async with SMTP(**plain.client_options(), timeout=10) as client:
            await getattr(client, method)(USER, PASSWORD)
        seen += client.transcript.lines()

    seen += [record.getMessage() for record in caplog.records]
    assert_nowhere(seen)
    assert any("AUTH PLAIN ********" in line for line in seen)  # the exchange is in the transcript, redacted


def test_notebook_password_options(ip, servers, monkeypatch, caplog):  # noqa: F811
    plain, tls = servers
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": PASSWORD)  # the person typing at the prompt
    seen: list[str] = []
    for line in (
        f"%smtp_connect 127.0.0.1:{plain.port} --user {USER} --password-env SMTP_PASSWORD --name env",
        f"%smtp_connect 127.0.0.1:{tls.port} --starttls --cafile {tls.ca_path} "
        f"--user {USER} --prompt-password --name typed",
    ):
        report, captured = run(ip, line)
        seen += [repr(report), report._repr_html_(), captured.stdout, captured.stderr]
        widget = report.widget()
        states = [json.dumps(w.get_state(), default=str) for w in _descendants(widget)]
        assert any("logged in as ada" in state for state in states)
        seen += states
    for line in ("%smtp_log -n 100 --name env", "%smtp_log -n 100 --name typed", "%smtp_connections", "%smtp_ehlo"):
        value, captured = run(ip, line)
        seen += [repr(value), getattr(value, "_repr_html_", lambda: "")(), captured.stdout]
    seen += [repr(ip.user_ns.get("_")), *(record.getMessage() for record in caplog.records)]
    assert "logged in as ada" in "\n".join(seen)
    assert_nowhere(seen)


def test_executed_notebook_holds_no_password(tmp_path, monkeypatch):
    """Run a notebook that logs in through the magics, then search the saved notebook's JSON."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    cells = [
        "%load_ext smtp_nb",
        "%smtp_server --starttls --auth",
        # the embedded server's password is random: the test reads it from a file the kernel writes, not the notebook
        "import os, pathlib, smtp_nb.server\nos.environ['SMTP_PASSWORD'] = smtp_nb.server.demo_password()\n"
        "pathlib.Path('password.txt').write_text(os.environ['SMTP_PASSWORD'])",
        "%smtp_connect --user demo --password-env SMTP_PASSWORD",
        "%%smtp_send --to grace@example.com\nFrom: demo@example.com\nSubject: hello\n\nhi",
        "%smtp_log -n 100",
        "%smtp_connections",
        "smtp = smtp_nb.session().client()\nsmtp",
        "vars(smtp_nb.session().get().client)",
        "%smtp_connect --user demo --password-env SMTP_PASSWORD",  # fails: already connected
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    client = NotebookClient(
        notebook,
        timeout=60,
        startup_timeout=60,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": tmp_path}},
    )
    client.execute()
    saved = nbformat.writes(notebook)
    assert ("logged in as demo" in saved and "AUTH PLAIN ********" in saved) or "AUTH CRAM-MD5" in saved
    password = (tmp_path / "password.txt").read_text()
    assert password != DEMO_USERS["demo"]
    assert_nowhere([saved], user="demo", password=password)


def _echoing(password_echo):
    """A server that answers AUTH with ``password_echo(password)`` as its (multi-line) refusal."""

    async def script(peer):
        await greet(peer)
        await peer.readline()
        await peer.reply("250-echo\r\n250 AUTH PLAIN LOGIN")
        line = await peer.readline()
        password = base64.b64decode(line.split()[-1]).split(b"\0")[2].decode()
        await peer.send(password_echo(password))
        await peer.serve()

    return script


def _flattened(texts: list[str]) -> str:
    """The texts with reply codes at line starts and line breaks removed, lower-cased: a split echo joins up."""
    return re.sub(r"\n(?:\d{3}[ -])?", "", "\n".join(texts)).lower()


@pytest.mark.parametrize(
    "echo",
    [
        pytest.param(lambda p: f"535 bad password {p.upper()}\r\n".encode(), id="upper-cased"),
        pytest.param(lambda p: f"535 bad password {p.swapcase()}!\r\n".encode(), id="swapped case"),
        *(
            pytest.param(
                lambda p, cut=cut: f"535-bad password {p[:cut]}\r\n535 {p[cut:]} refused\r\n".encode(),
                id=f"split at {cut}",
            )
            for cut in range(1, len(PASSWORD))
        ),
        pytest.param(
            lambda p: ("".join(f"535-{c}\r\n" for c in p.upper()) + "535 refused\r\n").encode(), id="one letter a line"
        ),
    ],
)
async def test_an_echoed_password_is_scrubbed_in_any_case_and_across_reply_lines(echo, caplog):
    caplog.set_level(logging.DEBUG, logger="smtp_nb.client")
    with ScriptedServer(_echoing(echo)) as srv:
        async with SMTP(**srv.options(timeout=5)) as client:
            with pytest.raises(SMTPAuthenticationError) as info:
                await client.auth_plain(USER, PASSWORD)
    seen = [str(info.value), repr(info.value), info.value.message, *client.transcript.lines()]
    seen += [record.getMessage() for record in caplog.records]
    flat = _flattened(seen)
    assert PASSWORD.lower() not in flat
    assert "********" in info.value.message
