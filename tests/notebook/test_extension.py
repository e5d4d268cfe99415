"""``%load_ext smtp_nb`` / ``%unload_ext smtp_nb``: what gets registered, and what unloading undoes."""

from __future__ import annotations

from IPython.core.magic import Magics, line_magic, magics_class

from smtp_nb.notebook import extension
from smtp_nb.notebook.magics import SMTPMagics
from smtp_nb.notebook.session import get_session
from tests.notebook.conftest import run

NAMES = {"smtp", "smtp_server", "smtp_inbox", "smtp_connect", "smtp_use", "smtp_connections", "smtp_quit", "smtp_ehlo"}


@magics_class
class ExtraMagics(Magics):
    @line_magic
    def smtp_extra(self, line: str) -> str:
        return f"extra {line}"


def _ours(shell) -> list[SMTPMagics]:
    return [c for c in shell.configurables if isinstance(c, SMTPMagics)]


def test_load_registers_the_magics_and_the_configurable(ip):
    assert NAMES | {"smtp_log"} <= set(ip.magics_manager.magics["line"])
    assert "smtp_send" in ip.magics_manager.magics["cell"]
    assert len(_ours(ip)) == 1


def test_loading_twice_is_harmless(ip):
    extension.load_ipython_extension(ip)
    run(ip, "%load_ext smtp_nb")
    assert len(_ours(ip)) == 1


def test_unload_closes_connections_stops_the_server_and_removes_the_magics(ip, server):
    session = get_session()
    run(ip, "%smtp_server")
    embedded = session.server
    run(ip, f"%smtp_connect 127.0.0.1:{server.port}")
    client = session.get().client
    run(ip, "%unload_ext smtp_nb")
    assert not client.is_connected
    assert not embedded.running
    assert get_session() is not session
    assert not NAMES & set(ip.magics_manager.magics["line"])
    assert "smtp_send" not in ip.magics_manager.magics["cell"]
    assert _ours(ip) == []
    run(ip, "%load_ext smtp_nb")  # and it comes back
    assert len(_ours(ip)) == 1


def test_another_magics_class_is_one_line_in_the_list(ip, monkeypatch):
    run(ip, "%unload_ext smtp_nb")
    monkeypatch.setattr(extension, "MAGICS", [*extension.MAGICS, f"{__name__}:ExtraMagics"])
    run(ip, "%load_ext smtp_nb")
    value, _ = run(ip, "%smtp_extra works")
    assert value == "extra works"
    run(ip, "%unload_ext smtp_nb")
    assert "smtp_extra" not in ip.magics_manager.magics["line"]


def test_the_session_is_closed_at_exit(ip, monkeypatch):
    registered = []
    monkeypatch.setattr(extension, "_atexit_registered", False)
    monkeypatch.setattr(extension.atexit, "register", registered.append)
    run(ip, "%unload_ext smtp_nb")
    run(ip, "%load_ext smtp_nb")
    run(ip, "%unload_ext smtp_nb")
    run(ip, "%load_ext smtp_nb")
    assert registered == [extension.reset_session]
