"""Once in a real kernel (ipykernel through nbclient): load, start the server, connect, send, read the inbox."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

CELLS = [
    "%load_ext smtp_nb",
    "%smtp_server --starttls --auth",
    "%smtp_connect",
    "name = 'Grace'",
    "%%smtp_send --to grace@example.com\nFrom: Ada <ada@example.com>\nSubject: Hello {{ name }}\n\nHi {{ name }}!",
    "%smtp_inbox",
    "%%smtp_send --to nobody@example.com\nFrom: ada@example.com\nSubject: {{ undefined_name }}\n\nx",
]


def _text(cell) -> str:
    return "".join(output.get("text", "") + output.get("data", {}).get("text/plain", "") for output in cell["outputs"])


def test_a_notebook_session_in_a_real_kernel(tmp_path, monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS])
    client = NotebookClient(
        notebook, timeout=60, startup_timeout=60, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    with pytest.raises(CellExecutionError) as raised:
        client.execute()
    cells = notebook.cells

    assert _text(cells[1]).startswith("embedded SMTP server on 127.0.0.1:")
    connect = cells[2]["outputs"][0]["data"]
    assert set(connect) == {"text/plain", "text/html"}  # no widget view: it would not survive the kernel
    assert "login: logged in as demo" in connect["text/plain"]
    assert "TLS: TLS" in connect["text/plain"]
    sent = _text(cells[4])
    assert sent.startswith("sent via 'default': 1 of 1 recipients accepted")
    assert "grace@example.com  250" in sent
    assert "Hello Grace" in _text(cells[5])
    assert "demo-password" not in str(notebook)

    (error,) = cells[6]["outputs"]
    assert error["output_type"] == "error" and error["ename"] == "MessageError"
    assert error["traceback"] == [
        "MessageError: the message uses {{ undefined_name }}, not defined in the notebook: define it in a cell "
        "first; nothing was sent"
    ]
    assert "MessageError" in str(raised.value)
