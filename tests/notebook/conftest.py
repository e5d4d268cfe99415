"""A real IPython shell with the extension loaded, and a fresh session for every test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output
from traitlets.config import Config

from smtp_nb.notebook.session import Session, get_session, reset_session
from tests.scripted import Script, ScriptedServer


class ShellForTests(InteractiveShell):
    """An InteractiveShell that raises what a cell raised (after showing it, as IPython does) and keeps no history."""

    def run_cell(self, *args: Any, **kwargs: Any) -> Any:
        result = super().run_cell(*args, **kwargs)
        result.raise_error()
        return result


@pytest.fixture
def ip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShellForTests]:
    """The shell, as ``get_ipython()`` sees it, with ``%load_ext smtp_nb`` done."""
    config = Config()
    config.HistoryManager.enabled = False
    ShellForTests.clear_instance()
    shell = ShellForTests.instance(config=config, ipython_dir=str(tmp_path_factory.mktemp("ipython")))
    shell.run_line_magic("load_ext", "smtp_nb")
    try:
        yield shell
    finally:
        reset_session()
        ShellForTests.clear_instance()


@pytest.fixture(autouse=True)
def fresh_session() -> Iterator[None]:
    """Every test starts and ends without connections, server or loop thread."""
    reset_session()
    yield
    reset_session()


@pytest.fixture
def session() -> Session:
    return get_session()


def run(shell: InteractiveShell, source: str) -> tuple[Any, CapturedIO]:
    """Run a cell; its value and what it printed and displayed."""
    with capture_output() as captured:
        result = shell.run_cell(source)
    return result.result, captured


@contextlib.contextmanager
def shown() -> Iterator[CapturedIO]:
    """Capture what a cell prints, also when it raises."""
    with capture_output() as captured:
        yield captured


@contextlib.contextmanager
def scripted(script: Script) -> Iterator[ScriptedServer]:
    """A ``ScriptedServer`` whose clients the session closes before it stops (even when the test fails)."""
    with ScriptedServer(script) as srv:
        try:
            yield srv
        finally:
            reset_session()


# The session's clients must say QUIT before a server fixture stops (a TLS server stopping under a connected
# client leaves a socket behind): these wrap the shared fixtures so that the session closes first.


@pytest.fixture
def server(server: Any) -> Iterator[Any]:
    yield server
    reset_session()


@pytest.fixture
def auth_server(auth_server: Any) -> Iterator[Any]:
    yield auth_server
    reset_session()


@pytest.fixture
def starttls_server(starttls_server: Any) -> Iterator[Any]:
    yield starttls_server
    reset_session()


@pytest.fixture
def tls_server(tls_server: Any) -> Iterator[Any]:
    yield tls_server
    reset_session()


@pytest.fixture
def rule_server(rule_server: Any) -> Iterator[Any]:
    yield rule_server
    reset_session()
