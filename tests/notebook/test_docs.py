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
