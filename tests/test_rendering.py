"""``smtp_nb.rendering``: the one home of tables, two-form views and one-line tracebacks, importable without IPython."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

from smtp_nb.notebook.errors import NotConnectedError, SMTPNotebookError
from smtp_nb.rendering import OneLineTraceback, View, html_table, text_table

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_text_table_aligns_and_cuts_only_when_asked():
    assert text_table(("a", "bb", "c"), [("xxx", None, "last column stays whole")]) == (
        "a    bb  c\nxxx      last column stays whole"
    )
    assert text_table(("k", "v"), [("abcdefgh", "z")], max_width=3) == "k    v\nabc  z"


def test_html_table_escapes_and_styles_rows():
    html = html_table(("name",), [("<b>",), ("ok",)], styles=["color:red"])
    assert '<tr style="color:red"><td style="text-align:left">&lt;b&gt;</td></tr><tr><td' in html
    assert html.startswith('<table class="smtp-nb"')


def test_a_view_is_text_and_html_only():
    class Two(View):
        def _text(self) -> str:
            return "plain"

        def _html(self) -> str:
            return "<i>rich</i>"

    assert repr(Two()) == "plain" and Two()._repr_html_() == "<i>rich</i>"
    assert not hasattr(Two(), "_repr_mimebundle_")


def test_one_line_traceback_names_the_client_error_or_the_class():
    class Problem(OneLineTraceback, ValueError):
        pass

    assert Problem("bad row")._render_traceback_() == ["Problem: bad row"]
    assert NotConnectedError("no connection")._render_traceback_() == ["NotConnectedError: no connection"]
    wrapped = SMTPNotebookError("login failed", error=TimeoutError("slow"))
    assert wrapped._render_traceback_() == ["TimeoutError: login failed"]


def test_importing_rendering_imports_no_ipython():
    code = "import sys, smtp_nb.rendering; print([m for m in ('IPython', 'ipywidgets') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


def _imports(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_views_and_widgets_do_not_import_each_other_in_a_cycle():
    folder = ROOT / "smtp_nb" / "notebook"
    widgets, views = _imports(folder / "widgets.py"), _imports(folder / "views.py")
    assert not {".views", "smtp_nb.notebook.views"} & widgets
    assert ".widgets" in views  # views makes the explorer on request; widgets reads only capabilities
