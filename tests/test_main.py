"""The main job: ``python -m smtp_nb`` on the embedded server, and the README's commands."""

import pathlib
import re

import pytest

from smtp_nb.__main__ import main

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("argv", [[], ["--tls"], ["--plain", "--no-auth"]])
def test_demo_sends_and_shows_the_conversation(argv, capsys):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("embedded SMTP server on 127.0.0.1:")
    assert "sent: OK queued as" in out
    assert "> RCPT TO:<audit@example.com>" in out  # Bcc is a recipient...
    received = out.split("--- what the server received ---")[1]
    assert "audit@example.com" not in received.split("\n\n", 1)[1]  # ...but never a header
    assert "\n.A line starting with a dot survives." in received
    assert ("(TLS: True)" in received) is (argv != ["--plain", "--no-auth"])
    if "--no-auth" not in argv:
        assert "235 2.7.0 Authentication successful" in out and "demo-password" not in out


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    (command,) = re.findall(r"<!-- test-command -->\n```bash\n(.+?)\n```", readme, re.S)
    assert command.strip() in ci
