"""The main job: ``python -m smtp_nb.tutorial`` runs the quickstart notebook without a browser."""

from __future__ import annotations

import pathlib
import re
import sys
import tempfile
import urllib.parse

import nbformat

from smtp_nb.tutorial import QUICKSTART, main

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BASH_BLOCKS = re.findall(r"```bash\n(.+?)\n```", README, re.S)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before 3.11
    import tomli as tomllib


def test_the_quickstart_runs_into_a_copy_and_the_summary_shows_the_delivery(tmp_path, capsys):
    before = QUICKSTART.read_bytes()

    assert main(["--output", str(tmp_path)]) == 0

    out = capsys.readouterr().out
    copy = tmp_path / "01-quickstart.ipynb"
    assert f"executed copy: {copy}\n" in out
    assert "sent via 'default': 2 of 2 recipients accepted" in out
    assert "grace@example.com  250" in out and "audit@example.com  250" in out
    assert "1 message" in out and "Hello Grace" in out
    tools = pathlib.Path(sys.executable).parent  # the hint names this venv's tools, not whatever is on PATH
    assert re.search(
        rf"{re.escape(tools.name)}/pip install -q -e '\.\[tutorials\]' && \S*{re.escape(tools.name)}/jupyter lab ", out
    )
    executed = nbformat.read(copy, as_version=4)
    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code)
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert "demo-password" not in copy.read_text()
    assert QUICKSTART.read_bytes() == before  # the notebook in the source tree is left as it is


def test_without_output_it_makes_a_temporary_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    assert main([]) == 0

    (folder,) = tmp_path.glob("smtp_nb-tutorial-*")
    assert f"executed copy: {folder / '01-quickstart.ipynb'}\n" in capsys.readouterr().out
    assert (folder / "01-quickstart.ipynb").is_file()


def test_a_failing_cell_fails_the_run_and_keeps_the_copy_up_to_it(tmp_path, capsys):
    notebook = tmp_path / "broken.ipynb"
    cells = [nbformat.v4.new_code_cell("print('before')"), nbformat.v4.new_code_cell("1 / 0")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), notebook)

    assert main(["--notebook", str(notebook), "--output", str(tmp_path / "out")]) == 1

    err = capsys.readouterr().err
    assert "ZeroDivisionError" in err and "failed in a cell" in err
    copy = nbformat.read(tmp_path / "out" / "broken.ipynb", as_version=4)
    assert copy.cells[0].outputs[0]["text"] == "before\n"


def test_a_missing_notebook_says_where_the_notebooks_come_from(tmp_path, capsys):
    assert main(["--notebook", str(tmp_path / "nowhere.ipynb")]) == 2
    assert "come with the source repository" in capsys.readouterr().err


def test_the_notebook_extra_has_what_running_a_notebook_needs():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {requirement.split(">")[0].split("[")[0] for requirement in extras["notebook"]}
    assert {"ipykernel", "nbclient", "nbformat"} <= names


def test_the_readme_first_command_is_this_main_job_on_a_fresh_venv():
    first = BASH_BLOCKS[0]
    assert first.startswith("python3 -m venv .venv && .venv/bin/pip install -q -e '.[notebook]' && ")
    assert first.endswith(" .venv/bin/python -m smtp_nb.tutorial")


def test_the_readme_says_how_to_open_the_quickstart_in_jupyterlab():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (command,) = [block for block in BASH_BLOCKS if "jupyter lab" in block]
    assert command.endswith("jupyter lab notebooks/01-quickstart.ipynb")
    assert "'.[tutorials]'" in command and any(r.startswith("jupyterlab") for r in extras["tutorials"])


def test_the_binder_badge_opens_the_quickstart_in_jupyterlab():
    (url,) = re.findall(r"\]\((https://mybinder\.org/v2/gh/[^)]+)\)", README)
    parsed = urllib.parse.urlsplit(url)
    assert parsed.path == "/v2/gh/smtp-nb/smtp_nb/HEAD"
    (labpath,) = urllib.parse.parse_qs(parsed.query)["labpath"]
    assert labpath == "notebooks/01-quickstart.ipynb" and (ROOT / labpath).is_file()


def test_the_readme_links_every_notebook():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert [n.name[:3] for n in notebooks] == ["01-", "02-", "03-", "04-", "05-", "06-"]
    for notebook in notebooks:
        assert f"(notebooks/{notebook.name})" in README
