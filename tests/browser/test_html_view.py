"""The message view in a real browser: inlined styles apply inside the sandboxed frame, remote loads do not happen.

A plain page with ``smtp_nb.html.view(...)`` is served from a loopback HTTP server; the message refers to a
second loopback server ("remote") that counts every request. Debian's chromium, driven by Playwright; a
screenshot goes to the test's folder and to ``test-output/`` at the repository's root.
"""

from __future__ import annotations

import http.server
import pathlib
import shutil
import threading
from collections.abc import Iterator

import pytest

from smtp_nb.html import build, inline_image, view

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHROMIUM = pathlib.Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = "html-message-view.png"
WAIT_MS = 60_000


class _Server(http.server.ThreadingHTTPServer):
    """A loopback HTTP server that serves ``pages`` and records the path of every request."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.pages: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def paths(self) -> list[str]:
        with self.lock:
            return list(self.requests)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests.append(self.path)
        body = self.server.pages.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[tuple[_Server, _Server]]:
    """The page's server and the "remote" one the message tries to load from."""
    started = [_Server(), _Server()]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in started]
    for thread in threads:
        thread.start()
    try:
        yield started[0], started[1]
    finally:
        for server, thread in zip(started, threads, strict=True):
            server.shutdown()
            server.server_close()
            thread.join(timeout=30)


def _message(remote: str, tag: str, tmp_path: pathlib.Path):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3, 2))
    figure.subplots().bar(["North", "South"], [12, 7], color="#204a87")
    chart = inline_image(figure)
    body = f"""<!DOCTYPE html><html><head>
<style>h1 {{ color: rgb(32, 74, 135); font-size: 28px }} td {{ padding: 6px }}</style>
<link rel="stylesheet" href="{remote}/{tag}/style.css">
<meta http-equiv="refresh" content="0; url={remote}/{tag}/refresh">
</head><body>
<h1>Weekly sales</h1>
<table><tr><td>North</td><td>12</td></tr><tr><td>South</td><td>7</td></tr></table>
<img id="chart" src="{chart.url}" alt="sales by region">
<img id="tracker" src="{remote}/{tag}/pixel.png" alt="">
<div style="background: url('{remote}/{tag}/background.png')">footer</div>
<script>fetch("{remote}/{tag}/script"); document.title = "script ran";</script>
</body></html>"""
    headers = {"From": "Ada <ada@example.com>", "To": "grace@example.com", "Subject": "Weekly <sales>"}
    return build(body, headers=headers, images=[chart], attachments=[("sales.csv", b"region,sales\n")])


def _page(message, *, remote: bool) -> bytes:
    shown = view(message, remote=remote).html()
    head = "<!DOCTYPE html><html><head><meta charset='utf-8'><title>view</title></head>"
    return f"{head}<body>{shown}</body></html>".encode()


@pytest.mark.timeout(180)
def test_the_view_applies_inlined_styles_and_fetches_nothing_remote(servers, tmp_path):
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests use Debian's chromium (apt-get install -y chromium)")
    site, remote = servers
    site.pages["/blocked"] = _page(_message(remote.url, "blocked", tmp_path), remote=False)
    site.pages["/allowed"] = _page(_message(remote.url, "allowed", tmp_path), remote=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1000})
            page.set_default_timeout(WAIT_MS)
            page.goto(f"{site.url}/blocked", wait_until="load")  # "load" waits for the frame and its images
            frame = page.frame_locator("iframe")
            heading = frame.locator("h1")
            assert heading.inner_text() == "Weekly sales"
            assert heading.evaluate("h => getComputedStyle(h).color") == "rgb(32, 74, 135)"
            assert heading.evaluate("h => h.getAttribute('style')") == "color: rgb(32, 74, 135);font-size: 28px;"
            chart = frame.locator("#chart")
            assert chart.evaluate("i => i.complete && i.naturalWidth > 0")  # the cid: image shows
            assert chart.evaluate("i => i.src.startsWith('data:image/png;base64,')")
            assert frame.locator("#tracker").evaluate("i => i.naturalWidth") == 0
            assert page.title() == "view"
            page.screenshot(path=str(tmp_path / SCREENSHOT), full_page=True)
            blocked_after_load = remote.paths()

            # The same message with remote content allowed: its loads reach the counting server, so the
            # empty count above is the policy at work, not a server nobody could reach.
            page.goto(f"{site.url}/allowed", wait_until="load")
            assert page.frame_locator("iframe").locator("#tracker").evaluate("i => i.naturalWidth") == 0  # a 404
            allowed = remote.paths()
        finally:
            browser.close()

    assert blocked_after_load == []
    assert "/allowed/pixel.png" in allowed and "/allowed/background.png" in allowed
    assert not [p for p in allowed if p.startswith("/blocked/")]
    assert not [p for p in allowed if p.endswith(("/script", "/refresh"))]  # no script ran, no refresh followed
    assert [p for p in site.paths() if p != "/favicon.ico"] == ["/blocked", "/allowed"]
    keep = ROOT / "test-output"
    keep.mkdir(exist_ok=True)
    shutil.copyfile(tmp_path / SCREENSHOT, keep / SCREENSHOT)
