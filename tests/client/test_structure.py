"""The client's shape: one job per module, small modules, imports that only point down, no notebook knowledge."""

from __future__ import annotations

import ast
import pathlib
import sys

import smtp_nb.client

CLIENT = pathlib.Path(smtp_nb.client.__file__).parent
MODULES = {path.stem: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(CLIENT.glob("*.py"))}
SOURCES = {path.stem: path.read_text(encoding="utf-8") for path in sorted(CLIENT.glob("*.py"))}


def _imports(tree: ast.Module) -> tuple[set[str], set[str]]:
    """The client modules a module imports, and the top-level packages of everything else it imports."""
    inside, outside = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            inside.add(node.module or "")
        elif isinstance(node, ast.ImportFrom):
            outside.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Import):
            outside.update(alias.name.split(".")[0] for alias in node.names)
    return inside - {""}, outside - {"__future__"}


def test_no_module_over_600_lines_and_the_smtp_class_at_most_800():
    sizes = {name: len(source.splitlines()) for name, source in SOURCES.items()}
    assert max(sizes.values()) <= 600, sizes
    (smtp_class,) = [n for n in MODULES["smtp"].body if isinstance(n, ast.ClassDef) and n.name == "SMTP"]
    assert smtp_class.end_lineno - smtp_class.lineno + 1 <= 800


def test_the_client_imports_only_the_standard_library():
    for name, tree in MODULES.items():
        _, outside = _imports(tree)
        assert outside <= set(sys.stdlib_module_names), (name, outside - set(sys.stdlib_module_names))


def test_client_imports_form_no_cycle():
    graph = {name: _imports(tree)[0] for name, tree in MODULES.items() if name != "__init__"}
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        assert name not in visiting, f"import cycle: {' -> '.join((*path, name))}"
        visiting.add(name)
        for dependency in sorted(graph[name]):
            visit(dependency, (*path, name))
        visiting.discard(name)
        order.append(name)

    for name in graph:
        visit(name, ())
    assert order.index("protocol") < order.index("transaction") < order.index("sending") < order.index("smtp")


def _strings_and_names(tree: ast.Module) -> str:
    """Every identifier and string literal of the code, docstrings left out."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found.append(node.value)
        elif isinstance(node, ast.Name):
            found.append(node.id)
        elif isinstance(node, ast.Attribute):
            found.append(node.attr)
        elif isinstance(node, ast.alias):
            found.append(node.name)
    return "\n".join(found)


def test_the_client_knows_nothing_of_notebooks_and_only_sync_bridges_threads():
    for name, tree in MODULES.items():
        code = _strings_and_names(tree)
        assert "ipython" not in code.lower() and "notebook" not in code.lower(), name
        if name != "sync":
            for bridge in ("threading", "run_coroutine_threadsafe", "call_soon_threadsafe", "wait_threadsafe"):
                assert bridge not in code, (name, bridge)


def test_one_redacted_constant_in_one_module():
    holders = [name for name, source in SOURCES.items() if '"********"' in source or "'********'" in source]
    assert holders == ["redaction"]


def test_the_transaction_engine_is_sans_io():
    _, outside = _imports(MODULES["transaction"])
    inside, _ = _imports(MODULES["transaction"])
    assert not outside & {"asyncio", "socket", "ssl", "selectors"} and "connection" not in inside


def test_one_mail_and_one_rcpt_builder():
    for command in (b"MAIL FROM:", b"RCPT TO:", b"BDAT "):
        builders = [
            name
            for name, tree in MODULES.items()
            if any(
                isinstance(node, ast.Constant) and isinstance(node.value, bytes) and node.value.startswith(command)
                for node in ast.walk(tree)
            )
        ]
        assert builders == ["protocol"], command


def test_the_option_names_agree_in_the_options_the_attributes_and_the_constructor():
    """ConnectOptions holds the options; SMTP shows each as an attribute and takes each in its constructor.

    The three lists are written out for readers and type checkers; this keeps them one list.
    """
    import dataclasses
    import inspect

    from smtp_nb import SMTP
    from smtp_nb.client.options import ConnectOptions
    from smtp_nb.client.smtp import _Option

    fields = {f.name for f in dataclasses.fields(ConnectOptions)}
    attributes = {name for name, value in vars(SMTP).items() if isinstance(value, _Option)}
    parameters = set(inspect.signature(SMTP.__init__).parameters) - {"self", "on_transcript"}
    assert fields == attributes == parameters
