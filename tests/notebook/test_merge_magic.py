"""``%%smtp_merge`` in a real shell: preview by default, send over the session's connection, errors in one line."""

from __future__ import annotations

import pandas
import pytest
from IPython.core.error import UsageError

import smtp_nb
from smtp_nb.mailmerge import MergePreview, MergeResult, MergeValidationError
from smtp_nb.notebook.errors import MessageError
from tests.notebook.conftest import run, shown

TEMPLATE = """From: Course Office <office@example.com>
To: {{ email | mailbox(name) }}
Subject: Your grade, {{ name }}

Dear {{ name }}, your grade is {{ grade }}. Braces stay: {x}.
"""


def students(count: int) -> pandas.DataFrame:
    return pandas.DataFrame(
        [{"id": i, "name": f"Student {i}", "email": f"s{i}@example.com", "grade": "ABC"[i % 3]} for i in range(count)]
    )


def cell(options: str, journal, template: str = TEMPLATE) -> str:
    return f"%%smtp_merge {options} --journal {journal}\n{template}"


def test_preview_without_a_connection_sends_nothing(ip, server, tmp_path):
    ip.user_ns["students"] = students(4)
    result, _ = run(ip, cell("students", tmp_path / "j.sqlite"))
    assert isinstance(result, MergePreview)
    assert (result.rows, result.to_send) == (4, 4)
    assert "Braces stay: {x}." in repr(result)  # IPython's {x} expansion is off
    assert not server.messages


def test_send_over_the_current_connection_then_rerun_sends_nothing_new(ip, server, tmp_path):
    ip.user_ns["students"] = students(6)
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    preview, _ = run(ip, cell("students --key id", tmp_path / "j.sqlite"))
    assert isinstance(preview, MergePreview) and not server.messages
    result, _ = run(ip, cell("students --key id --send -o outcome", tmp_path / "j.sqlite"))
    assert isinstance(result, MergeResult) and ip.user_ns["outcome"] is result
    assert result.counts["accepted"] == 6
    assert sorted(m.rcpt_tos[0] for m in server.messages) == sorted(f"s{i}@example.com" for i in range(6))
    assert len({m.peer for m in server.messages}) == 1  # the session's own connection
    assert run(ip, "%smtp NOOP")[0].response.code == 250  # and it is still open
    again, _ = run(ip, cell("students --key id --send", tmp_path / "j.sqlite"))
    assert (again.counts["skipped"], again.counts["accepted"]) == (6, 0)
    assert len(server.messages) == 6
    frame = result.to_frame()
    assert list(frame["status"]) == ["accepted"] * 6


def test_concurrency_opens_more_connections_with_the_same_options(ip, server, tmp_path):
    ip.user_ns["students"] = students(30)
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    result, _ = run(ip, cell("students --send --concurrency 3", tmp_path / "j.sqlite"))
    assert result.counts["accepted"] == 30
    assert len({m.peer for m in server.messages}) == 3


def test_rows_from_a_csv_file(ip, server, tmp_path):
    path = tmp_path / "students.csv"
    students(3).to_csv(path, index=False)
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    result, _ = run(ip, cell(f"{path} --send", tmp_path / "j.sqlite"))
    assert result.counts["accepted"] == 3


def test_bad_rows_show_the_table_and_fail_in_one_line(ip, server, tmp_path):
    frame = students(5)
    frame.loc[3, "email"] = "s3@example.com\nBcc: x@example.com"
    ip.user_ns["students"] = frame
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    with shown() as captured, pytest.raises(MergeValidationError) as info:
        ip.run_cell(cell("students --send", tmp_path / "j.sqlite"))
    assert "row 4, email: holds a line break" in str(info.value)
    # shown once: the table lists the problems, the one-line error only counts them
    assert info.value._render_traceback_() == [
        "MergeValidationError: 1 problem(s) in 1 row(s), nothing was sent (above)"
    ]
    tables = [o.data["text/html"] for o in captured.outputs if "<table" in o.data.get("text/html", "")]
    assert len(tables) == 1 and "holds a line break" in tables[0]
    assert not server.messages


def test_template_and_argument_errors(ip, server, tmp_path):
    ip.user_ns["students"] = students(2)
    with pytest.raises(MessageError, match="line 3: unexpected '}'"):
        ip.run_cell(cell("students", tmp_path / "j.sqlite", TEMPLATE.replace("{{ name }}\n", "{{ name }\n", 1)))
    with pytest.raises(UsageError, match="neither a variable of this notebook nor a file"):
        ip.run_cell(cell("nobody", tmp_path / "j.sqlite"))
    with pytest.raises(UsageError, match="unrecognized arguments: --frobnicate"):
        ip.run_cell(cell("students --frobnicate", tmp_path / "j.sqlite"))
    _, captured = run(ip, "%%smtp_merge --help\nFrom: a@example.com\n")
    assert "--stop-after-failures" in captured.stdout and "Merge the cell" in captured.stdout


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ("--rate fast", "--rate 'fast' is not like '30/min'"),
        ("--rate 0/s", "--rate '0/s' sends nothing"),
        ("--preview abc", "argument --preview: invalid int value: 'abc'"),
        ("--concurrency 0", "--concurrency must be a whole number of at least 1"),
        ("--preview -1", "--preview must be a whole number of at least 0"),
        ("--retry-delay -2", "--retry-delay must be a number of seconds"),
        ("--limit 0", "--limit must be a whole number of at least 1"),
        ("--attachments-root /nonexistent", "--attachments-root /nonexistent is not a folder"),
    ],
)
def test_every_bad_option_is_one_usage_line(ip, tmp_path, options, said):
    ip.user_ns["students"] = students(2)
    with pytest.raises(UsageError) as info:
        ip.run_cell(cell(f"students {options}", tmp_path / "j.sqlite"))
    assert said in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(("%%smtp_merge: ", "%smtp_merge: "))


def test_help_works_with_an_empty_cell(ip):
    _, captured = run(ip, "%%smtp_merge --help")
    assert "--attachments-root" in captured.stdout and "rehearsal" in captured.stdout
    _, captured = run(ip, "%%smtp_merge --help\n")
    assert "--attachments-root" in captured.stdout
    _, captured = run(ip, "%smtp_merge --help")
    assert "--attachments-root" in captured.stdout and "rehearsal" in captured.stdout
    _, captured = run(ip, "%%smtp_merge --help\n\n")
    assert "--attachments-root" in captured.stdout


def test_a_rehearsal_on_the_embedded_server_then_the_real_one_sends_everyone(ip, server, tmp_path):
    ip.user_ns["students"] = students(3)
    journal = tmp_path / "j.sqlite"
    run(ip, "%smtp_server")
    run(ip, "%smtp_connect")
    rehearsal, _ = run(ip, cell("students --send", journal))
    assert rehearsal.counts["accepted"] == 3 and rehearsal.sent == 0
    assert "3 rehearsed on the embedded server" in rehearsal.summary()
    assert {r["status"] for r in rehearsal.rows()} == {"rehearsed"}
    run(ip, "%smtp_quit")
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    real, _ = run(ip, cell("students --send", journal))
    assert (real.counts["accepted"], real.counts["skipped"]) == (3, 0)
    assert sorted(m.rcpt_tos[0] for m in server.messages) == [f"s{i}@example.com" for i in range(3)]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_embedded_server_reached_by_its_address_is_a_rehearsal_too(ip, server, tmp_path, host):
    """%smtp_connect HOST:PORT to the embedded server, or smtp_nb.merge with its options: still a rehearsal."""
    ip.user_ns["students"] = students(3)
    journal = tmp_path / "j.sqlite"
    embedded = ip.run_line_magic("smtp_server", "")
    run(ip, f"%smtp_connect {host}:{embedded.port} --name by-address")
    rehearsal, _ = run(ip, cell("students --send --name by-address", journal))
    assert "3 rehearsed on the embedded server" in rehearsal.summary()
    by_api = smtp_nb.merge_sync(
        TEMPLATE, students(3), send=True, campaign="api", journal=journal, progress=False,
        smtp={"hostname": host, "port": embedded.port, "start_tls": False},
    )  # fmt: skip
    assert {r["status"] for r in by_api.rows()} == {"rehearsed"}
    run(ip, f"%smtp_connect 127.0.0.1:{server.port} --name real")
    real, _ = run(ip, cell("students --send --name real", journal))
    assert real.counts["accepted"] == 3 and len(server.messages) == 3


def test_in_a_kernel_the_progress_bar_ends_as_a_static_line(tmp_path, monkeypatch):
    """A saved notebook shows the outcome: the widget's display is replaced (update_display) by text and HTML."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    rows = [{"name": f"S{i}", "email": f"s{i}@example.com", "grade": "A"} for i in range(3)]
    cells = [
        "%load_ext smtp_nb\n%smtp_server\n%smtp_connect",
        f"rows = {rows!r}",
        f"%%smtp_merge rows --send --journal {tmp_path / 'j.sqlite'}\n{TEMPLATE}",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    NotebookClient(
        notebook, timeout=60, startup_timeout=60, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    outputs = notebook.cells[2]["outputs"]
    assert not [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    static = [o for o in outputs if o["output_type"] == "display_data"]
    assert len(static) == 1 and static[0]["data"]["text/plain"].startswith("merge finished in ")
    assert "3 of 3 done" in static[0]["data"]["text/plain"] and static[0]["data"]["text/html"].startswith("<div>")
