"""Connections and the conversation on them: ``%smtp_connect``, ``%smtp_use``, ``%smtp_connections``,
``%smtp_quit``, ``%smtp_ehlo``, ``%smtp`` (one raw command) and ``%smtp_log``.
"""

from __future__ import annotations

import argparse
import errno
import getpass
import os
import re
from typing import Any

from IPython.core.magic import line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments

from smtp_nb.client import SMTP, Secret, SMTPAuthenticationError, SMTPConnectError, SMTPException

from ..capabilities import Capabilities
from ..errors import NotConnectedError, SMTPNotebookError, describe
from ..profiles import ProfileError, Target, load_profile, parse_url, read_password
from ..session import DEFAULT_NAME, NamedConnection
from ..views import CapabilityReport, ConnectionList, Help, Log, Note, Reply
from .base import SMTPMagicsBase

__all__ = ["ConnectionMagics"]

#: Option names people try for a password on the command line.
_PASSWORD_OPTIONS = {"--password", "--pass", "--passwd", "--pwd", "--pw"}
#: What an environment variable's name conventionally looks like (anything else may be a password typed there).
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_PASSWORD_HINT = (
    "a password is never given on the command line (it would stay in the notebook): "
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
        raise SMTPMagicsBase.usage(
            "%smtp_connect",
            "what follows ':' is not a port number (not shown: it may be a password); write HOST:PORT, "
            "e.g. smtp.example.com:587, and give a password with --password-env VAR or --prompt-password",
        )
    return host, int(port) if port else None


def _refused(exc: SMTPException) -> bool:
    cause = exc.__cause__
    return isinstance(exc, SMTPConnectError) and (
        isinstance(cause, ConnectionRefusedError)
        or getattr(cause, "errno", None) == errno.ECONNREFUSED
        or "Connect call failed" in str(cause)
    )


@magics_class
class ConnectionMagics(SMTPMagicsBase):
    """Open, list, switch and close connections; talk to the server over them."""

    @magic_arguments()
    @argument(
        "host",
        nargs="?",
        help="HOST[:PORT], or a URL smtp://user@host:587?starttls=true / smtps://user@host:465; "
        "leave out to use the embedded server (%%smtp_server)",
    )
    @argument("--profile", metavar="NAME", help="connect as profile NAME of smtp_nb-profiles.toml says")
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
    def smtp_connect(self, line: str = "") -> CapabilityReport | Help:
        """Connect to an SMTP server and show what it offers (extensions, TLS, login).

        %smtp_connect smtp.example.com:587 --starttls --user ada --password-env SMTP_PASSWORD
        %smtp_connect smtp://ada@smtp.example.com:587?starttls=true --password-env SMTP_PASSWORD
        %smtp_connect --profile work   (a profile of smtp_nb-profiles.toml)
        %smtp_connect                  (the embedded server of %smtp_server)

        A password is never written in the cell: it comes from an environment
        variable, a prompt, or (for a profile) the system keyring.
        """
        for token in line.split():
            if token.split("=", 1)[0].lower() in _PASSWORD_OPTIONS:
                raise self.usage("%smtp_connect", _PASSWORD_HINT)
        args = self._parse(self.smtp_connect, line, secret_values=True)
        if isinstance(args, Help):
            return args
        if args.profile and args.host:
            raise self.usage("%smtp_connect", "give a host (or URL) or --profile, not both")
        name = args.name or DEFAULT_NAME
        session = self.session
        if session.is_connected(name):
            where = session.get(name).where
            quit_hint = "%smtp_quit" + ("" if name == DEFAULT_NAME else f" --name {name}")
            raise self.usage(
                "%smtp_connect",
                f"connection {name!r} is already open to {where}; open another one with "
                f"--name NAME, or close this one first with {quit_hint}",
            )
        if args.tls and args.starttls:
            raise self.usage("%smtp_connect", "choose --tls or --starttls, not both")
        if args.password_env and args.prompt_password:
            raise self.usage("%smtp_connect", "choose --password-env or --prompt-password, not both")

        target = self._target(args)
        options: dict[str, Any] = {**self.connect_options, "timeout": self.timeout}
        server = session.server
        embedded = target is None
        if target is not None:
            options.update(target.options)
        elif server is not None and server.running:
            options.update(server.client_options())
            options.setdefault("local_hostname", "localhost")  # the machine's name tells a loopback server nothing
        else:
            raise self.usage(
                "%smtp_connect",
                "no host given, and the embedded server is not running. Connect to a server "
                "(%smtp_connect smtp.example.com:587 --starttls --user NAME --password-env VAR, or "
                "%smtp_connect --profile NAME) or start one in this kernel with %smtp_server",
            )
        if args.port:
            options["port"] = args.port
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

        user, secret = self._credentials(args, target, server if embedded else None)
        if user is not None:
            options.update(username=user, password=secret)
        profile = target.profile if target is not None else None
        try:
            conn = session.connect(name, embedded=embedded, profile=profile, **options)
        except SMTPAuthenticationError as exc:
            raise SMTPNotebookError(f"logging in as {user} failed: {describe(exc)}", error=exc) from exc
        except SMTPException as exc:  # before ValueError: a certificate failure is also ssl's ValueError
            raise SMTPNotebookError(self._connect_failure(exc, options), error=exc) from exc
        except ValueError as exc:
            raise self.usage("%smtp_connect", str(exc)) from None
        return self._report(conn)

    def _connect_failure(self, exc: SMTPException, options: dict[str, Any]) -> str:
        if not _refused(exc):
            return self.in_magic_words(exc)
        host = options.get("hostname", "localhost")
        port = options.get("port") or (465 if options.get("use_tls") else 25)
        where = f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
        return (
            f"nothing is listening on {where} (connection refused): check the host and port, connect with a "
            "profile (%smtp_connect --profile NAME), or start a server in this kernel with %smtp_server "
            "and connect to it with %smtp_connect"
        )

    def _target(self, args: argparse.Namespace) -> Target | None:
        """Where to connect: the profile, the URL or HOST[:PORT]; None for the embedded server."""
        try:
            if args.profile:
                return load_profile(args.profile, os.getcwd())
            if args.host and "://" in args.host:
                return parse_url(args.host)
        except ProfileError as exc:
            raise self.usage("%smtp_connect", str(exc)) from None
        if not args.host:
            return None
        host, port = _split_host(args.host)
        return Target({"hostname": host, **({"port": port} if port else {})})

    def _credentials(
        self, args: argparse.Namespace, target: Target | None, embedded: Any
    ) -> tuple[str | None, Secret | None]:
        """The user and the password (as a ``Secret``): from the environment, a prompt, a profile's source,
        or the embedded server."""
        user = args.user or (target.user if target is not None else None)
        where = target.where if target is not None else "the server"
        if (args.password_env or args.prompt_password) and not user:
            raise self.usage("%smtp_connect", "a password needs --user")
        if user is None:
            if embedded is not None and embedded.auth:
                user, password = next(iter(embedded.users.items()))
                return user, Secret(password)
            return None, None
        if args.password_env:
            value = os.environ.get(args.password_env)
            if value is None:
                if _ENV_NAME.fullmatch(args.password_env):
                    raise self.usage("%smtp_connect", f"the environment variable {args.password_env} is not set")
                raise self.usage(  # perhaps the password itself was typed there: do not repeat it
                    "%smtp_connect",
                    "--password-env takes the name of an environment variable (such as SMTP_PASSWORD), and no "
                    "variable of the name given is set",
                )
            return user, Secret(value)
        if args.prompt_password:
            return user, Secret(self._ask(f"SMTP password for {user} at {where}: "))
        if target is not None and target.password_from:
            try:
                return user, Secret(read_password(target, self._ask))
            except ProfileError as exc:
                raise self.usage("%smtp_connect", str(exc)) from None
        if embedded is not None and user in embedded.users:
            return user, Secret(embedded.users[user])
        named = "--user" if args.user else "the profile's user" if target and target.profile else "the URL's user"
        raise self.usage(
            "%smtp_connect",
            f"{named} {user!r} needs a password: add --password-env VAR (an environment variable) or --prompt-password"
            + (", or password_from in the profile" if target is not None and target.profile else ""),
        )

    def _ask(self, prompt: str) -> str:
        """The password typed at a prompt; a frontend that cannot ask (nbclient, papermill, nbval) is one line."""
        try:
            return getpass.getpass(prompt)
        except (NotImplementedError, EOFError):  # ipykernel's StdinNotImplementedError is a NotImplementedError
            raise self.usage(
                "%smtp_connect",
                "this frontend cannot ask for a password (it takes no input, as when a notebook runs under nbclient, "
                'papermill or nbval): use --password-env VAR, or password_from = "env:VAR" or "keyring" in a profile',
            ) from None

    def _report(self, conn: NamedConnection, *, ehlo: bool = False) -> CapabilityReport:
        async def snapshot(client: SMTP) -> Capabilities:
            if ehlo:
                await client.ehlo()
            return Capabilities.of(client, conn.name, conn.where)

        return CapabilityReport(self._call(snapshot, conn.name))

    @magic_arguments()
    @argument("name", help="the connection's name, as given to %%smtp_connect --name")
    @line_magic
    def smtp_use(self, line: str = "") -> Note | Help:
        """Make another open connection the current one (the one magics use without --name)."""
        args = self._parse(self.smtp_use, line)
        if isinstance(args, Help):
            return args
        try:
            conn = self.session.use(args.name)
        except NotConnectedError as exc:
            raise self.usage("%smtp_use", exc.message) from None
        return Note(f"current connection: {conn.name!r} ({conn.where})")

    @magic_arguments()
    @line_magic
    def smtp_connections(self, line: str = "") -> ConnectionList | Help:
        """The session's connections: name, server, profile, state, TLS, user, and which one is current."""
        args = self._parse(self.smtp_connections, line)
        if isinstance(args, Help):
            return args
        return ConnectionList(self.session.connections(), self.session.current)

    @magic_arguments()
    @argument("--name", help="the connection to close (default: the current one)")
    @argument("--all", action="store_true", help="close every connection")
    @line_magic
    def smtp_quit(self, line: str = "") -> Note | Help:
        """Say QUIT and close a connection (the current one, --name NAME, or --all)."""
        args = self._parse(self.smtp_quit, line)
        if isinstance(args, Help):
            return args
        session = self.session
        if args.all and args.name:
            raise self.usage("%smtp_quit", "give --name or --all, not both")
        names = session.names() if args.all else [args.name or session.current]
        names = [n for n in names if n is not None]
        if not names:
            return Note("no open connection to close")
        closed = []
        for name in names:
            try:
                conn = session.quit(name)
            except NotConnectedError as exc:
                raise self.usage("%smtp_quit", exc.message) from None
            closed.append(f"closed connection {conn.name!r} ({conn.where})")
        return Note(*closed)

    @magic_arguments()
    @argument("--name", help="the connection (default: the current one)")
    @line_magic
    def smtp_ehlo(self, line: str = "") -> CapabilityReport | Help:
        """Say EHLO again and show what the server offers: each extension with its meaning, TLS, login."""
        args = self._parse(self.smtp_ehlo, line)
        if isinstance(args, Help):
            return args
        return self._report(self.session.get(args.name), ehlo=True)

    @magic_arguments()
    @argument("--name", help="the connection (default: the current one)")
    @argument("command", nargs=argparse.REMAINDER, help="the command and its arguments, sent as written")
    @no_var_expand
    @line_magic
    def smtp(self, line: str = "") -> Reply | Help:
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
        if isinstance(args, Help):
            return args
        command = rest
        if not command:
            raise self.usage("%smtp", "which command? e.g. %smtp NOOP, %smtp VRFY alice@example.com, %smtp HELP")
        verb = command.split(None, 1)[0].upper()  # any whitespace: AUTH<TAB>PLAIN is AUTH
        if verb in _NOT_RAW:
            raise self.usage("%smtp", f"{verb} cannot be sent raw: {_NOT_RAW[verb]}")
        if any((ord(c) < 32 and c != " ") or c == "\x7f" for c in command):
            raise self.usage(
                "%smtp", "the command holds a control character (a tab, a line break...): write it with spaces only"
            )

        async def send(client: SMTP) -> Any:
            return await client.execute_command(command)

        try:
            return Reply(command, self._call(send, args.name))
        except ValueError as exc:
            raise self.usage("%smtp", str(exc)) from None

    @magic_arguments()
    @argument("-n", type=int, default=50, metavar="N", help="show the last N lines (default 50)")
    @argument("--clear", action="store_true", help="forget the lines recorded so far")
    @argument("--name", help="the connection (default: the current one)")
    @line_magic
    def smtp_log(self, line: str = "") -> Log | Note | Help:
        """The conversation on a connection: > what the client sent, < what the server answered, * events.

        Passwords and AUTH exchanges are redacted.
        """
        args = self._parse(self.smtp_log, line)
        if isinstance(args, Help):
            return args
        conn = self.session.get(args.name)
        transcript = conn.client.transcript
        if args.clear:
            transcript.clear()
            return Note(f"cleared the transcript of {conn.name!r}")
        entries = list(transcript)
        return Log(conn.name, entries[-args.n :] if args.n > 0 else entries)
