"""What every ``%smtp_*`` magic shares: argument parsing, calling the session, and the one-line error wording.

The magics of each concern (connections, sending, the embedded server) subclass ``SMTPMagicsBase``
and reach these as methods; ``parse_arguments`` and ``call_connection`` stay functions for the merge magic.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics
from IPython.core.magic_arguments import arg_split
from traitlets import Bool, Dict, Float, TraitError, validate
from traitlets.config import Configurable

from smtp_nb.client import SMTP, SMTPException, SMTPServerDisconnected, SMTPTimeoutError

from ..errors import NotConnectedError, SMTPNotebookError, describe
from ..session import Session, get_session
from ..views import Help

__all__ = [
    "SMTPMagicsBase",
    "SessionMagics",
    "call_connection",
    "help_text",
    "joined_magics",
    "name_cell_magics",
    "parse_arguments",
]

T = TypeVar("T")

#: Options of ``smtp_nb.SMTP`` that ``connect_options`` may not set: credentials never go in configuration,
#: the target is the magic's argument, and the timeout has its own option.
_NOT_CONFIGURABLE = {
    "hostname",
    "username",
    "password",
    "oauth_token_generator",
    "sock",
    "socket_path",
    "tls_context",
    "timeout",
    "on_transcript",
}
CONFIGURABLE_OPTIONS = frozenset(inspect.signature(SMTP).parameters) - _NOT_CONFIGURABLE

#: The client's advice names its Python options; in a magic, name the magic's options instead.
_MAGIC_WORDING = {
    "pass cert_bundle='ca.pem' to trust its issuer, or validate_certs=False": (
        "give --cafile ca.pem to trust its issuer, or --no-verify"
    ),
}


def _parser_and_name(magic: Callable[..., Any]) -> tuple[argparse.ArgumentParser, str]:
    parser = magic.parser  # type: ignore[attr-defined]
    parser.allow_abbrev = False
    return parser, "%" + parser.prog  # IPython writes prog without its "%": smtp_connect, or %smtp_send (below)


def help_text(magic: Callable[..., Any]) -> str:
    """The magic's usage and options, as ``--help`` and ``%magic?`` show them."""
    parser, _ = _parser_and_name(magic)
    return str(parser.format_help().removeprefix("::").strip())


def name_cell_magics(magics: Magics) -> None:
    """Write ``%%name`` in the usage of each cell magic of ``magics`` (IPython writes ``%name`` for all).

    ``--help``, ``%%name?`` and error messages then say ``%%``, as the README does.
    """
    for name, method in magics.magics["cell"].items():  # type: ignore[index,unused-ignore]  # IPython 8 types it None
        function = getattr(method, "__func__", method)
        parser = getattr(function, "parser", None)
        if parser is not None and not parser.prog.startswith("%"):
            parser.prog = f"%{name}"
            function.__doc__ = parser.format_help()


def parse_arguments(
    magic: Callable[..., Any], line: str, *, secret_values: bool = False, show_help: bool = True
) -> argparse.Namespace | None:
    """Parse ``line`` with the magic's parser; None after printing ``--help`` (or with ``show_help=False``).

    Options are never abbreviated (``--pass`` must not become
    ``--password-env``). With ``secret_values`` an error names unknown
    options but never repeats what followed them.
    """
    parser, name = _parser_and_name(magic)
    try:
        argv = arg_split(line, strict=True)
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from None
    if "-h" in argv or "--help" in argv:
        if show_help:
            print(help_text(magic))
        return None
    try:
        args, extra = parser.parse_known_args(argv)
    except UsageError as exc:
        if secret_values:
            raise UsageError(f"{name}: {_without_values(str(exc))}; see {name} --help") from None
        raise UsageError(f"{name}: {exc}; see {name} --help") from None
    if extra:
        options = [token.split("=", 1)[0] for token in extra if token.startswith("-")]
        if secret_values:
            what = f"unknown option {', '.join(options)}" if options else "unexpected argument"
            what += " (the values given are not shown: one may be a password)"
        else:
            what = f"unrecognized arguments: {' '.join(extra)}"
        raise UsageError(f"{name}: {what}; see {name} --help")
    return args  # type: ignore[no-any-return]


def _without_values(message: str) -> str:
    """argparse's error without the value it quotes (``invalid int value: 'x'``)."""
    return message.split(": '", 1)[0].split(" '", 1)[0]


def call_connection(
    session: Session, operation: Callable[[SMTP], Awaitable[T]], name: str | None, *, retry: bool = True
) -> T:
    """Run ``operation`` on connection ``name``; expected failures become one line, notes are printed."""
    try:
        result, notes = session.call(operation, name, retry=retry)
    except SMTPNotebookError:
        raise
    except SMTPException as exc:
        raise SMTPNotebookError(SMTPMagicsBase.failure(exc), error=exc) from exc
    except KeyboardInterrupt:
        _say_interrupted(session, name)
        raise
    for note in notes:
        print(note)
    return result


def _say_interrupted(session: Session, name: str | None) -> None:
    try:
        conn = session.get(name)
    except NotConnectedError:
        return
    if not conn.is_connected:
        print(
            f"interrupted: the command was cancelled and connection {conn.name!r} closed "
            "(the next command opens it again)",
            file=sys.stderr,
        )


def joined_magics(*classes: type) -> dict[str, dict[str, str]]:
    """The ``magics`` table of a class made of several ``@magics_class`` classes."""
    table: dict[str, dict[str, str]] = {"line": {}, "cell": {}}
    for cls in classes:
        for kind, entries in cls.magics.items():  # type: ignore[attr-defined]
            table[kind].update(entries)
    return table


class SessionMagics(Magics):  # type: ignore[misc]
    """What every smtp_nb magics class reaches: the kernel's session and the notebook's variables."""

    @property
    def session(self) -> Session:
        return get_session()

    @property
    def namespace(self) -> dict[str, Any]:
        """The notebook's variables."""
        assert self.shell is not None
        return self.shell.user_ns  # type: ignore[no-any-return]


class SMTPMagicsBase(SessionMagics, Configurable):  # type: ignore[misc]
    """The options of ``%config SMTPMagics``, parsing, calling the session, and the wording of failures."""

    timeout = Float(
        30.0,
        allow_none=True,
        help="Seconds each network step (connect, a command, the message data) may take; None: no limit.",
    ).tag(config=True)
    connect_options = Dict(
        help="Default options for %smtp_connect, as for smtp_nb.SMTP: e.g. "
        "{'local_hostname': 'laptop.example.com', 'cert_bundle': '/etc/ssl/corp-ca.pem'}. No credentials here.",
    ).tag(config=True)
    widgets = Bool(
        True,
        help="Show live ipywidgets while something runs (the merge's progress bar), replaced by static HTML "
        "when it ends; False: no widgets at all.",
    ).tag(config=True)

    @validate("timeout")
    def _check_timeout(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and value <= 0:
            raise TraitError(f"SMTPMagics.timeout must be a positive number of seconds or None, not {value!r}")
        return value

    @validate("connect_options")
    def _check_connect_options(self, proposal: Any) -> Any:
        value = proposal["value"]
        unknown = sorted(set(value) - CONFIGURABLE_OPTIONS)
        if unknown:
            hint = (
                " (credentials never go in configuration: use --password-env or --prompt-password)"
                if {"password", "username"} & set(unknown)
                else ""
            )
            raise TraitError(
                f"SMTPMagics.connect_options cannot set {', '.join(unknown)}{hint}; "
                f"it takes {', '.join(sorted(CONFIGURABLE_OPTIONS))}"
            )
        return value

    # -- parsing and calling -------------------------------------------------------------

    def _parse(self, magic: Callable[..., Any], line: str, *, secret_values: bool = False) -> argparse.Namespace | Help:
        """The parsed arguments, or the magic's ``Help`` when ``--help`` was asked for."""
        args = parse_arguments(magic, line, secret_values=secret_values, show_help=False)
        return Help(help_text(magic)) if args is None else args

    def _call(self, operation: Callable[[SMTP], Awaitable[T]], name: str | None, *, retry: bool = True) -> T:
        return call_connection(self.session, operation, name, retry=retry)

    @property
    def in_kernel(self) -> bool:
        """True in a Jupyter kernel (where widgets can be live), False in terminal IPython."""
        return getattr(self.shell, "kernel", None) is not None

    # -- the wording of failures ---------------------------------------------------------

    @staticmethod
    def in_magic_words(exc: SMTPException) -> str:
        """The client's message, with its Python option names replaced by the magics' options."""
        text = describe(exc)
        for python, magic in _MAGIC_WORDING.items():
            text = text.replace(python, magic)
        return text

    @classmethod
    def failure(cls, exc: SMTPException) -> str:
        """One line for a failed command; says the connection is closed when it is."""
        text = cls.in_magic_words(exc)
        if isinstance(exc, (SMTPTimeoutError, SMTPServerDisconnected)):
            text += "; the connection is closed (the next command opens it again)"
        return text

    @staticmethod
    def usage(magic: str, problem: str) -> UsageError:
        """A wrong use of ``magic``, as one line naming the magic."""
        return UsageError(f"{magic}: {problem}")
