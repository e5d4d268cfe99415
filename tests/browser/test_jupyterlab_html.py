"""An HTML message in the inbox view, in JupyterLab: inlined styles apply, remote images stay unfetched.

The notebook is written by the test and run with "Run All" (trusted: the frame shows the HTML), then
opened again from a copy JupyterLab has not signed (untrusted: JupyterLab drops the frame, the rest reads).
A loopback HTTP server counts the requests for the message's remote images. Screenshots go to ``test-output/``.
"""

from __future__ import annotations

import http.server
import pathlib
import threading
from collections.abc import Iterator

import nbformat
import pytest

from tests.browser.test_jupyterlab import CHROMIUM_ARGS, WAIT_MS, _chromium, _kernel_idle, _menu, _screenshot
from tests.browser.test_jupyterlab import jupyterlab as jupyterlab  # the fixture: JupyterLab on loopback

TRUSTED = "jupyterlab-html-view.png"
UNTRUSTED = "jupyterlab-html-view-untrusted.png"
FALLBACK = "(the HTML part is shown in a frame, hidden until the notebook is trusted)"


class _Counting(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        owner: _Images = self.server.owner  # type: ignore[attr-defined]
        with owner.lock:
            owner.paths.append(self.path)
            if self.path == "/allowed.png":
                owner.allowed.set()
        self.send_response(404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


class _Images:
    """A loopback HTTP server that records every path asked for."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.lock = threading.Lock()
        self.allowed = threading.Event()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
        self.server.owner = self  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="image-server", daemon=True)


@pytest.fixture
def images() -> Iterator[_Images]:
    server = _Images()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
        server.thread.join(timeout=30)


def _message_cell(subject: str, image: str) -> str:
    return (
        "%%smtp_send --html --to ada@example.com --from reports@example.com\n"
        f"Subject: {subject}\n\n"
        "<style>h1 { color: rgb(32, 74, 135); font-size: 30px }</style>\n"
        "<h1>Weekly sales</h1>\n"
        f'<p>Units: 120</p><img alt="tracker" src="{image}">\n'
    )


def _notebook(folder: pathlib.Path, port: int) -> pathlib.Path:
    cells = [
        "%load_ext smtp_nb\n%smtp_server\n%smtp_connect",
        _message_cell("blocked", f"http://127.0.0.1:{port}/blocked.png"),
        _message_cell("allowed", f"http://127.0.0.1:{port}/allowed.png"),
        "%smtp_inbox 0",
        "%smtp_inbox 1 --remote",
        "%smtp_quit",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "html-view.ipynb"
    nbformat.write(notebook, path)
    return path


@pytest.mark.timeout(400)
def test_the_inbox_view_applies_inlined_styles_and_fetches_no_remote_image(jupyterlab, images, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url_of, folder = jupyterlab
    path = _notebook(folder, images.port)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.set_default_timeout(WAIT_MS)
            expect.set_options(timeout=WAIT_MS)
            page.goto(url_of(path))
            cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
            expect(cells.last).to_contain_text("%smtp_quit")
            _kernel_idle(page, expect)
            _menu(page, "Run", "Run All Cells")
            expect(cells.last.locator(".jp-OutputArea-output")).to_contain_text("closed connection 'default'")

            # Trusted (run in this session): the frame shows the HTML with the styles css-inline moved in.
            blocked = cells.nth(3).locator("iframe")
            expect(blocked).to_have_count(1)
            heading = cells.nth(3).frame_locator("iframe").locator("h1")
            expect(heading).to_have_text("Weekly sales")
            assert heading.evaluate("h => getComputedStyle(h).color") == "rgb(32, 74, 135)"
            assert heading.evaluate("h => getComputedStyle(h).fontSize") == "30px"
            # The --remote view loads its image: the counter works, and the blocked view's load was refused.
            assert images.allowed.wait(timeout=WAIT_MS / 1000), images.paths
            allowed_image = cells.nth(4).frame_locator("iframe").locator("img")
            expect(allowed_image).to_have_count(1)
            assert cells.nth(3).frame_locator("iframe").locator("img").evaluate("i => i.complete")
            with images.lock:
                assert "/blocked.png" not in images.paths, images.paths
            _screenshot(page, tmp_path, TRUSTED, near=".jp-OutputArea-output iframe")

            page.keyboard.press("Control+s")
            expect(page.locator(".lm-TabBar-tab.jp-mod-dirty")).to_have_count(0)
            _menu(page, "Kernel", "Shut Down Kernel")

            # A copy JupyterLab never signed (as a notebook received from someone else): untrusted.
            saved = nbformat.read(path, as_version=4)
            assert saved.cells[3].outputs, "the notebook was not saved with its outputs"
            saved.metadata["copied"] = True  # other bytes: not in JupyterLab's database of signatures
            copy = folder / "html-view-copy.ipynb"
            nbformat.write(saved, copy)
            page.goto("about:blank")
            page.goto(url_of(copy) + "&reset")  # reset: a fresh workspace, without the first notebook's tab
            expect(page.locator(".lm-TabBar-tab.jp-mod-current")).to_have_text("html-view-copy.ipynb")
            expect(page.locator(".jp-NotebookPanel")).to_have_count(1)
            expect(cells.last.locator(".jp-OutputArea-output")).to_contain_text("closed connection 'default'")
            # Untrusted: JupyterLab's sanitizer drops the iframe and keeps its text, which says why; the
            # headers, the plain-text part, the MIME tree and the raw source still read.
            assert page.request.get(url_of(copy).replace("/lab/tree/", "/api/contents/")).json()["content"]["cells"][3][
                "metadata"
            ] == {"trusted": False}
            view = cells.nth(3).locator(".jp-OutputArea-output")
            expect(view.locator("table.smtp-nb").first).to_contain_text("Subject")
            expect(view).to_contain_text("multipart/alternative")  # the MIME tree
            expect(view).to_contain_text("Units: 120")  # the plain-text part
            expect(view.locator("iframe")).to_have_count(0)
            expect(view.get_by_text(FALLBACK)).to_be_visible()
            _screenshot(page, tmp_path, UNTRUSTED, near=f"text={FALLBACK}")
        finally:
            browser.close()
    with images.lock:
        assert "/blocked.png" not in images.paths, images.paths
