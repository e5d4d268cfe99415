"""The quickstart in a real browser: JupyterLab on loopback, Debian's chromium driven by Playwright.

nbval compares what the kernel sends; this checks what a person sees, after "Run All" and again after
saving, shutting the kernel down and reopening the notebook: the capability table (a ``<details>`` per
extension opens without a kernel), the table of replies of ``%%smtp_send``, the inbox, and no
"Error displaying widget". Screenshots of both go to ``test-output/`` at the repository's root (the test
prints their paths). Chromium is the system's (``.ci/run`` installs it); Playwright downloads no browser.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import ipykernel.kernelspec
import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "notebooks" / "01-quickstart.ipynb"
MERGE = ROOT / "notebooks" / "04-mail-merge.ipynb"
CHROMIUM = pathlib.Path("/usr/bin/chromium")
SCREENSHOT = "jupyterlab-quickstart.png"
REOPENED = "jupyterlab-quickstart-reopened.png"
MERGE_SCREENSHOT = "jupyterlab-mail-merge-reopened.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Bound on each wait in the page (milliseconds): kernel start and the whole notebook fit in it many times over.
WAIT_MS = 90_000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _working_copy(folder: pathlib.Path, original: pathlib.Path) -> pathlib.Path:
    """A notebook without its stored outputs, so that everything the page shows comes from this run."""
    notebook = nbformat.read(original, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    notebook.metadata.pop("widgets", None)
    copy = folder / original.name
    nbformat.write(notebook, copy)
    return copy


def _jupyter_environment(home: pathlib.Path) -> dict[str, str]:
    """Jupyter's folders inside ``home``: no settings, workspaces or kernels of the machine leak in.

    The only kernel is ``python3`` for this interpreter (it has smtp_nb), JupyterLab is told not
    to offer news, which would be a request to the Internet, and to draw every cell.
    """
    kernel = home / "data" / "kernels" / "python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps(ipykernel.kernelspec.get_kernel_dict()))
    notification = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # every cell in the page: JupyterLab otherwise draws only the cells near the view, and "the last cell"
    # of the page would be whichever was drawn last
    tracker = home / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    return {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "IPYTHONDIR": str(home / "ipython"),
    }


@pytest.fixture
def jupyterlab(tmp_path: pathlib.Path) -> Iterator[tuple[Callable[[pathlib.Path], str], pathlib.Path]]:
    """JupyterLab serving working copies of the quickstart and the merge notebook on 127.0.0.1.

    Yields a function giving a notebook's URL, and the folder of the copies.
    """
    work = tmp_path / "notebooks"
    work.mkdir()
    for original in (QUICKSTART, MERGE):
        _working_copy(work, original)
    port, token = _free_port(), secrets.token_hex(16)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",  # CI runs as root
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={work}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        cwd=work,
        env=_jupyter_environment(tmp_path / "jupyter"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: stopped as a whole below, kernels included
    )
    log: list[str] = []
    listening = threading.Event()

    def read_log() -> None:
        assert server.stderr is not None
        for line in server.stderr:
            log.append(line)
            if f"http://127.0.0.1:{port}/lab" in line:
                listening.set()
        listening.set()  # the server exited: stop waiting

    reader = threading.Thread(target=read_log, name="jupyterlab-log", daemon=True)
    reader.start()
    try:
        listening.wait(timeout=90)
        if server.poll() is not None or not any(f"127.0.0.1:{port}/lab" in line for line in log):
            pytest.fail("JupyterLab did not start:\n" + "".join(log[-40:]))
        yield (lambda notebook: f"http://127.0.0.1:{port}/lab/tree/{notebook.name}?token={token}"), work
    finally:
        server.send_signal(signal.SIGTERM)  # JupyterLab shuts its kernels down, then exits
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        reader.join(timeout=30)
        assert server.stderr is not None
        server.stderr.close()


def _chromium() -> str:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser test uses Debian's chromium, which .ci/run installs "
            "(or: apt-get install -y chromium). Playwright's own browser download is not used."
        )
    return str(CHROMIUM)


def _kernel_idle(page, expect) -> None:
    """Wait until the notebook's kernel is idle, reconnecting once if the page lost its first connection.

    jupyter_server now and then answers a new kernel's first websocket with a 500 ("'NoneType' object
    has no attribute 'kernel_ws_protocol'", jupyter-server/jupyter_server#1265, seen here on 3.10);
    the page then shows the kernel as Unknown until told to reconnect, as a user would with
    Kernel > Reconnect to Kernel. Any other state that is not Idle still fails the test.
    """
    status = page.locator("#jp-main-statusbar")
    try:
        expect(status).to_contain_text("Idle", timeout=30_000)
    except AssertionError:
        if "Unknown" not in status.inner_text():
            raise
        _menu(page, "Kernel", "Reconnect to Kernel")
        expect(status).to_contain_text("Idle")


def _menu(page, menu: str, item: str) -> None:
    page.locator(f".lm-MenuBar-itemLabel:text-is('{menu}')").click()
    page.locator(f".lm-Menu-itemLabel:text-is('{item}')").click()


def _check_outputs(page, expect) -> None:
    """What must be on the page, live or reopened: the capability table, the replies, the inbox, no widget error."""
    capabilities = page.locator("table.smtp-nb-capabilities")
    expect(capabilities).to_have_count(1)
    labels = capabilities.locator("tbody tr td:first-child").all_inner_texts()
    assert labels == [
        "PIPELINING",
        "DSN",
        "SIZE 33554432",
        "8BITMIME",
        "SMTPUTF8",
        "AUTH CRAM-MD5 LOGIN PLAIN XOAUTH2",
        "HELP",
    ], labels
    report = page.locator(".jp-OutputArea-output").filter(has=capabilities)
    expect(report).to_contain_text("login: logged in as demo")
    expect(report).to_contain_text(re.compile(r"TLS: TLSv1\.[23]"))
    # Read-only and interactive without a kernel: a <details> per extension opens on a click.
    auth = capabilities.locator("details").filter(has_text="login methods: CRAM-MD5, LOGIN, PLAIN, XOAUTH2")
    line = auth.locator("code").first
    expect(line).to_be_hidden()
    auth.locator("summary").click()
    expect(line).to_have_text("250-AUTH CRAM-MD5 LOGIN PLAIN XOAUTH2")

    replies = page.locator("table.smtp-nb").filter(has=page.locator("th:text-is('recipient')"))
    expect(replies).to_have_count(1)
    rows = [row.locator("td").all_inner_texts() for row in replies.locator("tbody tr").all()]
    assert [row[0] for row in rows] == ["grace@example.com", "audit@example.com", "DATA"]
    assert [row[1] for row in rows] == ["250", "250", "250"]
    assert rows[0][4] == rows[1][4] == "accepted"
    assert re.fullmatch(r"queue id [0-9A-F]{10}", rows[2][4]), rows[2]
    expect(page.locator(".jp-OutputArea-output").filter(has_text="sent via 'default'")).to_contain_text(
        "2 of 2 recipients accepted"
    )
    inbox = page.locator("table.smtp-nb").filter(has=page.locator("th:text-is('subject')"))
    expect(inbox).to_contain_text("Hello Grace")
    assert page.get_by_text("Error displaying widget").count() == 0
    assert page.locator(".jp-OutputArea-output .widget-vbox, .jp-OutputArea-output .widget-hbox").count() == 0
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0


def _screenshot(page, tmp_path: pathlib.Path, name: str, *, near: str = "table.smtp-nb-capabilities") -> pathlib.Path:
    page.locator(near).last.scroll_into_view_if_needed()
    shot = tmp_path / name
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    keep = ROOT / "test-output"
    keep.mkdir(exist_ok=True)
    shutil.copyfile(shot, keep / name)
    print(f"screenshot: {keep / name}")
    return shot


@pytest.mark.timeout(400)
def test_run_all_save_shut_down_and_reopen_reads_the_same(jupyterlab, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url_of, folder = jupyterlab
    url = url_of(QUICKSTART)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.set_default_timeout(WAIT_MS)
            expect.set_options(timeout=WAIT_MS)
            page.goto(url)

            cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
            expect(cells.last).to_contain_text("%smtp_quit")  # the notebook is open, every cell drawn
            code_cells = cells.count()
            _kernel_idle(page, expect)  # the kernel is up: Run All runs
            _menu(page, "Run", "Run All Cells")
            expect(cells.last.locator(".jp-OutputArea-output")).to_contain_text("closed connection 'default'")
            prompts = cells.locator(".jp-InputPrompt").all_inner_texts()
            assert prompts == [f"[{n}]:" for n in range(1, code_cells + 1)], prompts  # in order, none failed
            _check_outputs(page, expect)
            _screenshot(page, tmp_path, SCREENSHOT)

            # Save, shut the kernel down, close the notebook, and open it again (a new kernel, no widget models).
            page.keyboard.press("Control+s")
            expect(page.locator(".lm-TabBar-tab.jp-mod-dirty")).to_have_count(0)
            _menu(page, "Kernel", "Shut Down Kernel")
            saved = nbformat.read(folder / QUICKSTART.name, as_version=4)
            assert saved.cells[-1].outputs, "the notebook was not saved with its outputs"
            page.goto("about:blank")
            page.goto(url)
            expect(cells.last).to_contain_text("%smtp_quit")
            expect(cells.last.locator(".jp-OutputArea-output")).to_contain_text("closed connection 'default'")
            _check_outputs(page, expect)
            _screenshot(page, tmp_path, REOPENED)
        finally:
            browser.close()


@pytest.mark.timeout(400)
def test_the_merge_notebook_reopened_shows_its_summary_and_no_widget_error(jupyterlab, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url_of, folder = jupyterlab
    url = url_of(MERGE)
    rehearsal = re.compile(r"Merge 'default': 0 rehearsed on the embedded server, 1 unknown, 4 skipped")
    summary = re.compile(r"Merge 'spring-2027': 5 accepted")
    finished = re.compile(r"merge finished in \d+\.\d s: 5 of 5 done")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.set_default_timeout(WAIT_MS)
            expect.set_options(timeout=WAIT_MS)
            page.goto(url)
            cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
            expect(cells.last).to_contain_text("%smtp_quit")
            code_cells = cells.count()
            _kernel_idle(page, expect)
            _menu(page, "Run", "Run All Cells")
            expect(cells.last.locator(".jp-InputPrompt")).to_have_text(f"[{code_cells}]:")  # the last cell ran
            # the result, once; the live progress bar above it was replaced by its own last line
            expect(page.locator(".jp-OutputArea-output").filter(has_text=summary)).to_have_count(1)
            last = cells.filter(has_text="--campaign spring-2027").first
            expect(last.locator(".jp-OutputArea-output").first).to_contain_text(finished)
            sent = cells.filter(has_text="%%smtp_merge students --key id --send").first
            expect(sent.locator(".jp-OutputArea-output").filter(has_text=rehearsal)).to_have_count(1)
            assert page.locator(".jp-OutputArea-output .widget-progress").count() == 0

            page.keyboard.press("Control+s")
            expect(page.locator(".lm-TabBar-tab.jp-mod-dirty")).to_have_count(0)
            _menu(page, "Kernel", "Shut Down Kernel")
            page.goto("about:blank")
            page.goto(url)
            expect(cells.last.locator(".jp-InputPrompt")).to_have_text(f"[{code_cells}]:")
            expect(page.locator("table.smtp-nb-capabilities").first).to_be_visible()
            expect(page.locator(".jp-OutputArea-output").filter(has_text=summary)).to_have_count(1)
            expect(last.locator(".jp-OutputArea-output").first).to_contain_text(finished)
            assert page.get_by_text("Error displaying widget").count() == 0
            _screenshot(page, tmp_path, MERGE_SCREENSHOT, near=".jp-OutputArea-output >> text=Merge 'default'")
        finally:
            browser.close()
    saved = nbformat.read(folder / MERGE.name, as_version=4)
    kinds = {kind for cell in saved.cells for output in cell.get("outputs", []) for kind in output.get("data", {})}
    assert "application/vnd.jupyter.widget-view+json" not in kinds


def test_ci_installs_the_chromium_this_test_drives():
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"[ -x {CHROMIUM} ] || missing+=(chromium)" in ci
    assert 'apt-get install -y -q "${missing[@]}"' in ci
