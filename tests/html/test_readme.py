"""The README's HTML mail example runs as written: it builds, checks, sends to the embedded server and views."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

DOC = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_the_documented_example_sends_a_message_that_shows_as_built(tmp_path, monkeypatch):
    section = DOC.read_text().split("<!-- html-mail-example", 1)[1]
    [code] = re.findall(r"```python\n(.*?)\n```", section, re.S)[:1]
    (tmp_path / "templates").mkdir()
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    printed = out.getvalue()
    assert printed.startswith("check: no warnings\nFrom: Reports <reports@example.com>\nTo: ada@example.com\n")
    assert "Weekly sales\n\nNorth | 120\nSouth | 75\n\n[sales by region]\n\nDetails on the sales page " in printed
    assert (
        "        image/png  " in printed
        and "\nattachments:\n  file       type      size\n  sales.csv  text/csv  32 bytes" in printed
    )
