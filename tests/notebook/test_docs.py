"""The README's five-cell notebook session runs as written and delivers its message."""

from __future__ import annotations

import pathlib
import re

from tests.notebook.conftest import run

DOC = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def _session_cells() -> list[str]:
    text = DOC.read_text()
    section = text.split("<!-- notebook-session", 1)[1].split("### The magics", 1)[0]
    return re.findall(r"```ipython\n(.*?)\n```", section, re.S)


def test_the_documented_session_delivers_a_message(ip, session):
    cells = _session_cells()
    assert len(cells) == 6  # five cells to the delivered message, then the real-server example
    for source in cells[:5]:
        value, _ = run(ip, source)
    assert repr(value).startswith("1 message\n")
    (received,) = session.server.messages
    assert received.rcpt_tos == ("grace@example.com", "audit@example.com")
    assert received.subject == "Hello Grace" and received.tls and received.login == "demo"
    assert "Hi Grace, this went through a real SMTP conversation." in received.data.decode()


def test_the_documented_outputs_are_the_real_ones(ip, session):
    """The text under each of the first cells is what the magic shows (the port aside)."""
    text = DOC.read_text().split("<!-- notebook-session", 1)[1].split("### The magics", 1)[0]
    blocks = re.findall(r"```ipython\n([^`]*?)\n```\n```\n([^`]*?)\n```", text)
    assert [source for source, _ in blocks][:2] == ["%smtp_server --starttls --auth", 'name = "Grace"\n%smtp_connect']
    for source, shown in blocks[:2]:
        value, _ = run(ip, source)
        port = session.server.port
        assert repr(value) == re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", shown)


def test_links_in_the_readme_point_to_files_that_exist():
    root = DOC.parent
    prose = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", DOC.read_text(), flags=re.S))  # code is no link
    targets = re.findall(r"\]\(([^)#\s]+)\)", prose)
    local = [t for t in targets if "://" not in t]
    assert "docs/smtp-client-api.md" in local
    missing = [t for t in local if not (root / t).exists()]
    assert missing == []


def test_the_readme_writes_cell_magics_with_two_percent_signs(ip):
    text = DOC.read_text()
    cell_magics = [name for name in ip.magics_manager.magics["cell"] if name.startswith("smtp")]
    assert sorted(cell_magics) == ["smtp_merge", "smtp_send"]
    for name in cell_magics:
        assert f"%%{name}" in text
        assert not re.search(rf"(?<!%)%{name}\b", text), name


def test_a_failing_cell_shows_an_exception_the_readme_names(ip, server, monkeypatch):
    """Each one-line failure starts with a name the README's *Errors* sections list."""
    from IPython.core.error import UsageError

    from smtp_nb.notebook.errors import SMTPNotebookError

    errors = "\n".join(part.split("\n## ", 1)[0] for part in DOC.read_text().split("### Errors")[1:])
    shown = []
    for source in (
        "%smtp NOOP",  # no connection yet
        "%smtp_connect 127.0.0.1:1",  # nothing listens there
        f"%smtp_connect 127.0.0.1:{server.port}",
        "%%smtp_send --to b@example.com\nFrom: a@example.com\nSubject: {{ nowhere }}\n\nbody",
        "%smtp_connect 127.0.0.1:1 --name other --user demo --password-env SMTP_NB_TEST_NOPE",
    ):
        try:
            ip.run_cell(source)
        except SMTPNotebookError as exc:
            shown.append(exc._render_traceback_()[0].split(":", 1)[0])
        except UsageError as exc:
            assert str(exc).startswith("%smtp_connect: the environment variable SMTP_NB_TEST_NOPE is not set")
            shown.append("UsageError")
    assert shown == ["NotConnectedError", "SMTPConnectError", "MessageError", "UsageError"]
    for name in shown:
        assert f"`{name}`" in errors, name
