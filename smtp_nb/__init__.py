"""smtp_nb: SMTP as a first-class citizen of Jupyter.

``from smtp_nb import SMTP`` gives the async client; ``%load_ext smtp_nb``
loads the notebook magics. Importing the package never imports IPython,
ipywidgets, aiosmtpd or pandas.
"""

from typing import TYPE_CHECKING, Any

from . import client as _client
from .client import __all__ as _client_all
from .client.errors import *  # noqa: F403 - the exceptions are cheap: imported at once

if TYPE_CHECKING:
    from .client import *  # noqa: F403 - the client's public API, imported when first used

__version__ = "0.1.0"

#: The merge's exceptions, imported from smtp_nb.mailmerge when first asked for (it needs jinja2).
_MERGE_ERRORS = (
    "DestinationChanged",
    "JournalError",
    "MergeBusy",
    "MergeError",
    "MergeStopped",
    "MergeValidationError",
    "MessagesChanged",
    "TemplateChanged",
    "TemplateError",
)

__all__ = [
    *_client_all,
    *_MERGE_ERRORS,
    "load_ipython_extension",
    "merge",
    "merge_sync",
    "session",
    "unload_ipython_extension",
]


def __getattr__(name: str) -> Any:
    """The client's names (``SMTP``, ``send``...) and the merge's errors, imported when first asked for."""
    if name in _MERGE_ERRORS:
        from . import mailmerge

        return getattr(mailmerge, name)
    if name in _client_all:
        value = getattr(_client, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'smtp_nb' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


async def merge(template: Any, rows: Any, **options: Any) -> Any:
    """Mail merge: see ``smtp_nb.mailmerge.merge`` (needs the ``merge`` extra).

    Mail to the kernel's embedded server (``%smtp_server``) is a rehearsal unless ``embedded=`` says otherwise.
    """
    from .mailmerge import merge as run

    return await run(template, rows, **_with_embedded(options))


def merge_sync(template: Any, rows: Any, **options: Any) -> Any:
    """``merge()`` from synchronous code, including inside Jupyter's running loop."""
    from .mailmerge import merge_sync as run

    return run(template, rows, **_with_embedded(options))


def _with_embedded(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with ``embedded=True`` if they reach the session's embedded server (a running kernel's)."""
    import sys

    module = sys.modules.get("smtp_nb.notebook.session")  # not imported: no session, no embedded server
    if "embedded" in options or module is None:
        return options
    client = options.get("client")
    target = options.get("smtp") or {}
    host = client.hostname if client is not None else target.get("hostname")
    port = client.port if client is not None else target.get("port")
    return {**options, "embedded": True} if module.get_session().reaches_embedded(host, port) else options


def session() -> Any:
    """The kernel's SMTP session: named connections on one background event loop.

    ``smtp_nb.session().client()`` is the current connection, usable with
    ``await`` in a cell and synchronously alike.
    """
    from .notebook.session import get_session

    return get_session()


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext smtp_nb``: register the magics."""
    from .notebook.extension import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext smtp_nb``: close connections, stop the embedded server."""
    from .notebook.extension import unload_ipython_extension as unload

    unload(ipython)
