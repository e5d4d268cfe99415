"""The ``%smtp_*`` magics: one ``Magics`` class that is also a traitlets ``Configurable``.

``%config SMTPMagics.timeout = 30`` (or ``c.SMTPMagics.timeout`` in a config
file) sets the options. Magics talk to the server through the kernel's
``Session`` and return result objects from ``views``. Expected failures (a
refused recipient, bad credentials, a timeout, no connection) raise
``SMTPNotebookError``, drawn as one line; wrong magic arguments raise IPython's
``UsageError``; anything else is a bug and raises as it is.
"""

from __future__ import annotations

import argparse
import getpass
import inspect
import os
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display
from traitlets import Bool, Dict, Float, TraitError, validate
from traitlets.config import Configurable

from smtp_nb.client import (
    SMTP,
    Secret,
    SMTPAuthenticationError,
    SMTPException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from .capabilities import Capabilities
from .compose import build_message
from .errors import NotConnectedError, SMTPNotebookError, describe
from .session import DEFAULT_NAME, NamedConnection, Session, get_session
from .views import CapabilityReport, ConnectionList, Inbox, Log, Reply, SendResult, ServerInfo

__all__ = ["SMTPMagics", "SessionMagics", "call_connection", "parse_arguments"]

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
_CONFIGURABLE_OPTIONS = frozenset(inspect.signature(SMTP).parameters) - _NOT_CONFIGURABLE
#: Option names people try for a password on the command line.
_PASSWORD_OPTIONS = {"--password", "--pass", "--passwd", "--pwd", "--pw"}
#: What an environment variable's name conventionally looks like (anything else may be a password typed there).
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_PASSWORD_HINT = (
    "%smtp_connect does not take a password on the command line (it would stay in the notebook): "
    "use --password-env VAR to read it from an environment variable, or --prompt-password to type it"
)
#: Raw commands ``%smtp`` refuses, and what to use instead.
_NOT_RAW = {
    "AUTH": "credentials never go in a cell: use %smtp_connect --user NAME --password-env VAR",
    "STARTTLS": "use %smtp_connect --starttls, which upgrades the connection and checks the certificate",
    "DATA": "use %%smtp_send to send a message",
    "BDAT": "use %%smtp_send to send a message",
    "QUIT": "use %smtp_quit",
}


def _in_kernel(shell: Any) -> bool:
    return getattr(shell, "kernel", None) is not None


def _split_host(target: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif target.count(":") == 1:
        host, _, port = target.partition(":")
    else:
        host, port = target, ""
    if port and not port.isdigit():
        raise UsageError(f"%smtp_connect: {port!r} is not a port number (write HOST:PORT, e.g. smtp.example.com:587)")
    return host, int(port) if port else None


def parse_arguments(magic: Callable[..., Any], line: str, *, secret_values: bool = False) -> argparse.Namespace | None:
    """Parse ``line`` with the magic's parser; None after printing ``--help``.

    Options are never abbreviated (``--pass`` must not become
    ``--password-env``). With ``secret_values`` an error names unknown
    options but never repeats what followed them.
    """
    from IPython.core.magic_arguments import arg_split

    parser = magic.parser  # type: ignore[attr-defined]
    parser.allow_abbrev = False
    name = "%" + parser.prog.lstrip("%")
    try:
        argv = arg_split(line, strict=True)
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from None
    if "-h" in argv or "--help" in argv:
        print(parser.format_help().removeprefix("::").strip())
        return None
    try:
        args, extra = parser.parse_known_args(argv)
    except UsageError as exc:
        raise UsageError(f"{name}: {exc}; see {name} --help") from None
    if extra:
        options = [token.split("=", 1)[0] for token in extra if token.startswith("-")]
        if secret_values:
            what = f"unknown option {', '.join(options)}" if options else "unexpected argument"
            what += " (the values given are not shown)"
        else:
            what = f"unrecognized arguments: {' '.join(extra)}"
        raise UsageError(f"{name}: {what}; see {name} --help")
    return args  # type: ignore[no-any-return]


def call_connection(
    session: Session, operation: Callable[[SMTP], Awaitable[T]], name: str | None, *, retry: bool = True
) -> T:
    """Run ``operation`` on connection ``name``; expected failures become one line, notes are printed."""
    try:
        result, notes = session.call(operation, name, retry=retry)
    except SMTPNotebookError:
        raise
    except SMTPException as exc:
        raise SMTPNotebookError(_failure(exc), error=exc) from exc
    except KeyboardInterrupt:
        _say_interrupted(session, name)
        raise
    for note in notes:
        print(note)
    return result


#: The client's advice names its Python options; in a magic, name the magic's options instead.
_MAGIC_WORDING = {
    "pass cert_bundle='ca.pem' to trust its issuer, or validate_certs=False": (
        "give --cafile ca.pem to trust its issuer, or --no-verify"
    ),
}


def _in_magic_words(exc: SMTPException) -> str:
    text = describe(exc)
    for python, magic in _MAGIC_WORDING.items():
        text = text.replace(python, magic)
    return text


def _failure(exc: SMTPException) -> str:
    text = _in_magic_words(exc)
    if isinstance(exc, (SMTPTimeoutError, SMTPServerDisconnected)):
        text += "; the connection is closed (the next command opens it again)"
    return text


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


@magics_class
class SMTPMagics(SessionMagics, Configurable):  # type: ignore[misc]
    """SMTP in the notebook: connect, look at what a server offers, send, read the conversation."""

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
        help="Show interactive ipywidgets views (the capability explorer) in a kernel; False: HTML tables only.",
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
        unknown = sorted(set(value) - _CONFIGURABLE_OPTIONS)
        if unknown:
            hint = (
                " (credentials never go in configuration: use --password-env or --prompt-password)"
                if {"password", "username"} & set(unknown)
                else ""
            )
            raise TraitError(
                f"SMTPMagics.connect_options cannot set {', '.join(unknown)}{hint}; "
                f"it takes {', '.join(sorted(_CONFIGURABLE_OPTIONS))}"
            )
        return value

    # -- helpers -------------------------------------------------------------------------

    def _parse(self, magic: Callable[..., Any], line: str, *, secret_values: bool = False) -> argparse.Namespace | None:
        return parse_arguments(magic, line, secret_values=secret_values)

    def _call(self, operation: Callable[[SMTP], Awaitable[T]], name: str | None, *, retry: bool = True) -> T:
        return call_connection(self.session, operation, name, retry=retry)

    def _report(self, conn: NamedConnection, *, ehlo: bool = False) -> CapabilityReport:
        async def snapshot(client: SMTP) -> Capabilities:
            if ehlo:
                await client.ehlo()
            return Capabilities.of(client, conn.name, conn.where)

        capabilities = self._call(snapshot, conn.name)
        return CapabilityReport(capabilities, show_widget=self.widgets and _in_kernel(self.shell))

    # -- the embedded server ------------------------------------------------------------------

    @magic_arguments()
    @argument("--auth", action="store_true", help="offer AUTH (PLAIN, LOGIN, CRAM-MD5) for the demo user 'demo'")
    @argument("--starttls", action="store_true", help="offer STARTTLS with a certificate made on the spot")
    @argument("--tls", action="store_true", help="speak TLS from the first byte (like port 465)")
    @argument("--port", type=int, default=0, help="listen on this port (default: a free one)")
    @argument("--stop", action="store_true", help="stop the server; its mail is discarded")
    @line_magic
    def smtp_server(self, line: str = "") -> ServerInfo | None:
        """Start an SMTP server inside this kernel, on 127.0.0.1, keeping the mail it receives in memory.

        Nothing leaves the machine: %smtp_connect with no host connects to it,
        and %smtp_inbox shows what arrived. Starting it again while it runs
        changes nothing.
        """
        args = self._parse(self.smtp_server, line)
        if args is None:
            return None
        session = self.session
        if args.stop:
            server = session.server
            count = len(server.messages) if server is not None else 0
            stopped = session.stop_server()
            note = f"the embedded SMTP server stopped (mail discarded: {count})" if stopped else ""
            return ServerInfo(None, note=note or "the embedded SMTP server was not running")
        if args.tls and args.starttls:
            raise UsageError("%smtp_server: choose --starttls or --tls, not both")
        wanted = {"auth": args.auth, "starttls": args.starttls, "tls": args.tls}
        server = session.server
        if server is not None and server.running:
            running = {"auth": server.auth, "starttls": server.starttls, "tls": server.tls}
            if running != wanted or (args.port and args.port != server.port):
                raise UsageError(
                    f"%smtp_server: the embedded server already runs on port {server.port} with other options; "
                    "stop it first with %smtp_server --stop"
                )
            return ServerInfo(server, note="the embedded SMTP server is already running")
        try:
            server = session.start_server(port=args.port, **wanted)
        except OSError as exc:
            raise SMTPNotebookError(
                f"cannot start the embedded server on port {args.port}: {exc.strerror or exc}", error=exc
            ) from None
        return ServerInfo(server)

    @magic_arguments()
    @argument("--clear", action="store_true", help="forget every message received so far")
    @line_magic
    def smtp_inbox(self, line: str = "") -> Inbox | None:
        """The mail the embedded server received: time, envelope sender and recipients, subject, size.

        Returns a list of email.message.EmailMessage (its .received holds the envelopes).
        """
        args = self._parse(self.smtp_inbox, line)
        if args is None:
            return None
        server = self.session.server
        if server is None or not server.running:
            raise NotConnectedError("the embedded server is not running: start it with %smtp_server")
        if args.clear:
            count = len(server.messages)
            server.clear()
            print(f"inbox cleared (removed: {count})")
            return None
        return Inbox(list(server))

    # -- connections ---------------------------------------------------------------------------

    @magic_arguments()
    @argument("host", nargs="?", help="HOST or HOST:PORT; leave out to use the embedded server (%%smtp_server)")
    @argument("--port", type=int, help="port (default: 465 with --tls, 587 with --starttls, else 25)")
    @argument("--tls", action="store_true", help="TLS from the first byte (port 465 style)")
    @argument(
        "--starttls",
        dest="starttls",
        action="store_const",
        const=True,
        default=None,
        help="require STARTTLS: fail rather than send anything unencrypted (default: use it when offered)",
    )
    @argument("--no-starttls", dest="starttls", action="store_const", const=False, help="never upgrade to TLS")
    @argument("--user", help="log in as this user")
    @argument("--password-env", metavar="VAR", help="read the password from environment variable VAR")
    @argument("--prompt-password", action="store_true", help="ask for the password (typed, never shown)")
    @argument("--timeout", type=float, help="seconds each step may take (default: %%config SMTPMagics.timeout)")
    @argument("--local-hostname", help="the name this machine gives in EHLO")
    @argument("--no-verify", action="store_true", help="do not verify the server's certificate (shown as a warning)")
    @argument("--cafile", help="PEM file of the certificate authorities to trust for this server")
    @argument("--allow-plaintext-auth", action="store_true", help="allow logging in without TLS to another host")
    @argument("--name", help="name of this connection (default: 'default'), to keep several open")
    @line_magic
    def smtp_connect(self, line: str = "") -> CapabilityReport | None:
        """Connect to an SMTP server and show what it offers (extensions, TLS, login).

        %smtp_connect smtp.example.com:587 --starttls --user ada --password-env SMTP_PASSWORD
        %smtp_connect                  (the embedded server of %smtp_server)

        A password is never written in the cell: it comes from an environment
        variable or a prompt.
        """
        for token in line.split():
            if token.split("=", 1)[0].lower() in _PASSWORD_OPTIONS:
                raise UsageError(_PASSWORD_HINT)
        args = self._parse(self.smtp_connect, line, secret_values=True)
        if args is None:
            return None
        name = args.name or DEFAULT_NAME
        session = self.session
        if session.is_connected(name):
            where = session.get(name).where
            quit_hint = "%smtp_quit" + ("" if name == DEFAULT_NAME else f" --name {name}")
            raise UsageError(
                f"%smtp_connect: connection {name!r} is already open to {where}; open another one with "
                f"--name NAME, or close this one first with {quit_hint}"
            )
        if args.tls and args.starttls:
            raise UsageError("%smtp_connect: choose --tls or --starttls, not both")
        if (args.password_env or args.prompt_password) and not args.user:
            raise UsageError("%smtp_connect: a password needs --user")
        if args.password_env and args.prompt_password:
            raise UsageError("%smtp_connect: choose --password-env or --prompt-password, not both")

        options: dict[str, Any] = {**self.connect_options, "timeout": self.timeout}
        server = session.server
        embedded = not args.host
        if args.host:
            host, port = _split_host(args.host)
            options["hostname"] = host
            if args.port or port:
                options["port"] = args.port or port
        elif server is not None and server.running:
            options.update(server.client_options())
            options.setdefault("local_hostname", "localhost")  # the machine's name tells a loopback server nothing
            if args.port:
                options["port"] = args.port
        else:
            raise UsageError(
                "%smtp_connect: no host given, and the embedded server is not running. Connect to a server "
                "(%smtp_connect smtp.example.com:587 --starttls --user NAME --password-env VAR) or start "
                "one in this kernel with %smtp_server"
            )
        if args.tls:
            options.update(use_tls=True, start_tls=None)
        if args.starttls is not None:
            options.update(start_tls=args.starttls, use_tls=False if args.starttls else options.get("use_tls", False))
        if args.no_verify:
            options["validate_certs"] = False
        for option, value in (
            ("cert_bundle", args.cafile),
            ("timeout", args.timeout),
            ("local_hostname", args.local_hostname),
        ):
            if value is not None:
                options[option] = value
        if args.allow_plaintext_auth:
            options["allow_plaintext_auth"] = True

        user, secret = self._credentials(args, options.get("hostname"), server if embedded else None)
        if user is not None:
            options.update(username=user, password=secret)
        try:
            conn = session.connect(name, embedded=embedded, **options)
        except ValueError as exc:
            raise UsageError(f"%smtp_connect: {exc}") from None
        except SMTPAuthenticationError as exc:
            raise SMTPNotebookError(f"logging in as {user} failed: {describe(exc)}", error=exc) from exc
        except SMTPException as exc:
            raise SMTPNotebookError(_in_magic_words(exc), error=exc) from exc
        return self._report(conn)

    @staticmethod
    def _credentials(args: argparse.Namespace, host: str | None, embedded: Any) -> tuple[str | None, Secret | None]:
        """The user and the password (as a ``Secret``): from the environment, a prompt, or the embedded server."""
        if args.user is None:
            if embedded is not None and embedded.auth:
                user, password = next(iter(embedded.users.items()))
                return user, Secret(password)
            return None, None
        if args.password_env:
            value = os.environ.get(args.password_env)
            if value is None:
                if _ENV_NAME.fullmatch(args.password_env):
                    raise UsageError(f"%smtp_connect: the environment variable {args.password_env} is not set")
                raise UsageError(  # perhaps the password itself was typed there: do not repeat it
                    "%smtp_connect: --password-env takes the name of an environment variable (such as "
                    "SMTP_PASSWORD), and no variable of the name given is set"
                )
            return args.user, Secret(value)
        if args.prompt_password:
            return args.user, Secret(getpass.getpass(f"SMTP password for {args.user} at {host or 'the server'}: "))
        if embedded is not None and args.user in embedded.users:
            return args.user, Secret(embedded.users[args.user])
        raise UsageError(
            "%smtp_connect: --user needs a password: --password-env VAR (an environment variable) or --prompt-password"
        )

    @magic_arguments()
    @argument("name", help="the connection's name, as given to %%smtp_connect --name")
    @line_magic
    def smtp_use(self, line: str = "") -> None:
        """Make another open connection the current one (the one magics use without --name)."""
        args = self._parse(self.smtp_use, line)
        if args is None:
            return
        try:
            conn = self.session.use(args.name)
        except NotConnectedError as exc:
            raise UsageError(f"%smtp_use: {exc.message}") from None
        print(f"current connection: {conn.name!r} ({conn.where})")

    @magic_arguments()
    @line_magic
    def smtp_connections(self, line: str = "") -> ConnectionList | None:
        """The session's connections: name, server, state, TLS, user, and which one is current."""
        if self._parse(self.smtp_connections, line) is None:
            return None
        return ConnectionList(self.session.connections(), self.session.current)

    @magic_arguments()
    @argument("--name", help="the connection to close (default: the current one)")
    @argument("--all", action="store_true", help="close every connection")
    @line_magic
    def smtp_quit(self, line: str = "") -> None:
        """Say QUIT and close a connection (the current one, --name NAME, or --all)."""
        args = self._parse(self.smtp_quit, line)
        if args is None:
            return
        session = self.session
        if args.all and args.name:
            raise UsageError("%smtp_quit: give --name or --all, not both")
        names = session.names() if args.all else [args.name or session.current]
        names = [n for n in names if n is not None]
        if not names:
            print("no open connection to close")
            return
        for name in names:
            try:
                conn = session.quit(name)
            except NotConnectedError as exc:
                raise UsageError(f"%smtp_quit: {exc.message}") from None
            print(f"closed connection {conn.name!r} ({conn.where})")

    # -- talking to the server ------------------------------------------------------------------

    @magic_arguments()
    @argument("--name", help="the connection (default: the current one)")
    @line_magic
    def smtp_ehlo(self, line: str = "") -> CapabilityReport | None:
        """Say EHLO again and show what the server offers: each extension with its meaning, TLS, login."""
        args = self._parse(self.smtp_ehlo, line)
        if args is None:
            return None
        return self._report(self.session.get(args.name), ehlo=True)

    @magic_arguments()
    @argument("--name", help="the connection (default: the current one)")
    @argument("command", nargs=argparse.REMAINDER, help="the command and its arguments, sent as written")
    @no_var_expand
    @line_magic
    def smtp(self, line: str = "") -> Reply | None:
        """Send one raw command (NOOP, VRFY, EXPN, HELP, RSET, ...) and show the server's reply.

        %smtp VRFY alice@example.com
        %smtp --name backup NOOP
        """
        options: list[str] = []
        rest = line.strip()
        while rest.startswith("-"):
            token, _, rest = rest.partition(" ")
            options.append(token)
            rest = rest.lstrip()
            if token == "--name":
                value, _, rest = rest.partition(" ")
                options.append(value)
                rest = rest.lstrip()
        args = self._parse(self.smtp, " ".join(options))
        if args is None:
            return None
        command = rest
        if not command:
            raise UsageError("%smtp: which command? e.g. %smtp NOOP, %smtp VRFY alice@example.com, %smtp HELP")
        verb = command.split(" ", 1)[0].upper()
        if verb in _NOT_RAW:
            raise UsageError(f"%smtp: {verb} cannot be sent raw: {_NOT_RAW[verb]}")

        async def send(client: SMTP) -> Any:
            return await client.execute_command(command)

        return Reply(command, self._call(send, args.name))

    @magic_arguments()
    @argument("--from", dest="sender", metavar="ADDRESS", help="the sender (replaces the cell's From:)")
    @argument("--to", action="append", default=[], metavar="ADDRESS", help="a recipient (repeatable; replaces To:)")
    @argument("--cc", action="append", default=[], metavar="ADDRESS", help="a copy recipient (repeatable)")
    @argument("--bcc", action="append", default=[], metavar="ADDRESS", help="a hidden recipient (repeatable)")
    @argument("--subject", help="the subject (replaces the cell's Subject:)")
    @argument("--html", action="store_true", help="the body is HTML (a plain-text version is added)")
    @argument("--attach", action="append", default=[], metavar="PATH", help="attach this file (repeatable)")
    @argument("--name", help="the connection to send with (default: the current one)")
    @argument("--dry-run", action="store_true", help="show the message as it would be sent, and send nothing")
    @argument("-o", "--output", metavar="VAR", help="store the result in the variable VAR")
    @no_var_expand
    @cell_magic
    def smtp_send(self, line: str, cell: str) -> SendResult | None:
        """Send the cell as an email: headers, an empty line, then the body.

        {{ name }} fields are filled in from the notebook's variables (Jinja2;
        an undefined name is an error). The table shows the server's reply to
        each recipient and its reply to the data, with the queue id.

            %%smtp_send --to grace@example.com
            From: Ada <ada@example.com>
            Subject: Results for {{ week }}

            Hello Grace, ...
        """
        args = self._parse(self.smtp_send, line)
        if args is None:
            return None
        if args.output is not None and not args.output.isidentifier():
            raise UsageError(f"%%smtp_send: -o needs a variable name, not {args.output!r}")
        message, sender, recipients = build_message(
            cell,
            self.namespace,
            sender=args.sender,
            to=args.to,
            cc=args.cc,
            bcc=args.bcc,
            subject=args.subject,
            html=args.html,
            attachments=args.attach,
        )
        if args.dry_run:
            result = SendResult(message, sender, recipients)
            self._store(args.output, result)
            return result

        conn = self.session.get(args.name)

        async def send(client: SMTP) -> Any:
            (delivery,) = [d async for d in client.send_many([message])]
            error = delivery.error
            if isinstance(error, SMTPServerDisconnected) and not delivery.data_sent:
                raise error  # nothing went out: the session may reconnect and send it once more
            return delivery

        delivery = self._call(send, conn.name)
        result = SendResult(message, sender, recipients, delivery=delivery, connection=conn.name)
        self._store(args.output, result)
        if delivery.error is not None:
            display(result)
            raise SMTPNotebookError(result.summary(), error=delivery.error, result=result)
        return result

    def _store(self, variable: str | None, result: Any) -> None:
        if variable:
            self.namespace[variable] = result

    @magic_arguments()
    @argument("-n", type=int, default=50, metavar="N", help="show the last N lines (default 50)")
    @argument("--clear", action="store_true", help="forget the lines recorded so far")
    @argument("--name", help="the connection (default: the current one)")
    @line_magic
    def smtp_log(self, line: str = "") -> Log | None:
        """The conversation on a connection: > what the client sent, < what the server answered, * events.

        Passwords and AUTH exchanges are redacted.
        """
        args = self._parse(self.smtp_log, line)
        if args is None:
            return None
        conn = self.session.get(args.name)
        transcript = conn.client.transcript
        if args.clear:
            transcript.clear()
            print(f"cleared the transcript of {conn.name!r}")
            return None
        entries = list(transcript)
        return Log(conn.name, entries[-args.n :] if args.n > 0 else entries)
