"""Saved notebooks read the same without a kernel: outputs are text/html and text/plain, never a widget view.

JupyterLab draws an output that carries a widget view as "Error displaying widget" once the kernel is gone,
even when the output also has HTML (jupyterlab/jupyterlab#15361); GitHub and nbconvert show only the text.
"""

from __future__ import annotations

import html
import os
import pathlib
import re

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: Every tutorial notebook.
NOTEBOOKS = ["01-quickstart", "02-smtp-conversation", "03-tls-and-auth", "04-mail-merge", "05-async-api"]
WIDGET_REPRS = ("HBox(", "VBox(", "IntProgress(", "CapabilityExplorer(", "Output()")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_stored_outputs_hold_no_widget_view_and_real_text(name):
    notebook = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    assert "widgets" not in notebook.metadata
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            assert set(data) <= {"text/plain", "text/html", "image/png"}, (cell.source[:60], set(data))
            if "text/html" in data:
                assert "text/plain" in data, cell.source[:60]
            text = data.get("text/plain", "")
            assert not text.startswith(WIDGET_REPRS), (cell.source[:60], text[:60])


def test_the_merge_progress_is_replaced_by_static_text_when_the_merge_ends(tmp_path, monkeypatch):
    """In a real kernel: the live progress bar's display is updated to HTML and text once the merge is done."""
    from nbclient import NotebookClient

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))

    cells = [
        "%load_ext smtp_nb",
        "%smtp_server",
        "%smtp_connect",
        "rows = [{'email': 'ada@example.com', 'name': 'Ada'}, {'email': 'bo@example.com', 'name': 'Bo'}]",
        "%%smtp_merge rows --send --journal journal.sqlite\nFrom: office@example.com\nTo: {{ email }}\n"
        "Subject: Hi {{ name }}\n\nHello {{ name }}",
        "%config SMTPMagics.widgets = False",
        "%%smtp_merge rows --send --journal journal.sqlite --campaign quiet\nFrom: office@example.com\n"
        "To: {{ email }}\nSubject: Hi {{ name }}\n\nHello {{ name }}",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    NotebookClient(
        notebook, timeout=60, startup_timeout=60, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute(env={**os.environ, "TQDM_DISABLE": ""})  # the progress bar on, as in JupyterLab
    outputs = notebook.cells[4].outputs
    kinds = [set(output.get("data", {})) for output in outputs]
    assert all(kind <= {"text/plain", "text/html"} for kind in kinds), kinds
    assert len(outputs) == 2  # the progress bar, now its last line, then the result
    progress, result = outputs[0].data, outputs[1].data
    assert re.fullmatch(
        r"merge finished in \d+\.\d s: 2 of 2 done, [\d.]+ msg/s — 2 accepted, 0 refused, 0 retrying",
        progress["text/plain"],
    )
    assert progress["text/html"] == f"<div>{html.escape(progress['text/plain'])}</div>"
    # The outcome is said once: by the result, not repeated where the bar was (found by a newcomer).
    assert result["text/plain"].startswith("Merge 'default': 2 rehearsed on the embedded server. Journal: ")
    assert "Merge 'default'" not in progress["text/plain"]
    quiet = notebook.cells[-1].outputs
    assert len(quiet) == 1 and quiet[0].data["text/plain"].startswith("Merge 'quiet'")  # widgets off: no bar at all
