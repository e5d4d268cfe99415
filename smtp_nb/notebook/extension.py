"""``%load_ext smtp_nb``: register the magics, and close the session when the kernel ends.

``MAGICS`` lists the magics classes to register, as ``module:Class``; a new
family of magics (a later ``%%smtp_merge``) is one more line there.
"""

from __future__ import annotations

import atexit
import importlib
import weakref
from typing import Any

from .magics.base import name_cell_magics
from .session import reset_session

__all__ = ["MAGICS", "closing_note", "load_ipython_extension", "unload_ipython_extension"]

MAGICS: list[str] = [
    "smtp_nb.notebook.magics:SMTPMagics",
    "smtp_nb.notebook.magics.merge:MergeMagics",
]

#: The magics instances registered on each shell, to undo on unload (and to make a second load a no-op).
_registered: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()
_atexit_registered = False


def _load_class(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def load_ipython_extension(ipython: Any) -> None:
    """Register every class of ``MAGICS`` on ``ipython`` (each is also added to ``%config``). Twice is harmless."""
    global _atexit_registered
    if ipython in _registered:
        return
    instances = []
    for path in MAGICS:
        magics = _load_class(path)(shell=ipython)  # Magics.__init__ adds itself to shell.configurables
        name_cell_magics(magics)
        ipython.register_magics(magics)
        instances.append(magics)
    _registered[ipython] = instances
    if not _atexit_registered:
        atexit.register(reset_session)  # QUIT every connection and stop the embedded server as the kernel ends
        _atexit_registered = True


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics and their configuration, close every connection, stop the embedded server."""
    instances = _registered.pop(ipython, [])
    manager = ipython.magics_manager
    for magics in instances:
        for kind, table in magics.magics.items():
            for name in table:
                manager.magics[kind].pop(name, None)
        manager.registry.pop(type(magics).__name__, None)
        if magics in ipython.configurables:
            ipython.configurables.remove(magics)
    closing = closing_note()
    reset_session()
    if closing:
        print(closing)  # %unload_ext and %reload_ext show no value: say what went


def closing_note() -> str:
    """What closing the session ends: each open connection, and the embedded server with its mail."""
    from .session import peek_session

    session = peek_session()
    if session is None:
        return ""
    parts = [f"connection {c.name!r} ({c.where})" for c in session.connections() if c.is_connected]
    server = session.server
    if server is not None and server.running:
        parts.append(f"the embedded server on port {server.port} (its {len(server.messages)} message(s) discarded)")
    return "smtp_nb closed " + ", ".join(parts) if parts else ""
