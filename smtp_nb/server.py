"""The embedded SMTP server: aiosmtpd on a loopback port, mail kept in memory.

It lets everything run with no external server: ``python -m smtp_nb``, the
notebook's ``%smtp_server`` and the test suite all use it. It runs on its own
thread and event loop, so blocking code (and a notebook's magics) can use it.
Needs the ``notebook`` extra (aiosmtpd; trustme for TLS).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import email
import email.message
import email.policy
import hmac
import json
import logging
import os
import secrets
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

from aiosmtpd.smtp import MISSING, AuthResult, Envelope, LoginPassword, Session, syntax
from aiosmtpd.smtp import SMTP as _AiosmtpdSMTP

__all__ = [
    "DEMO_LISTS",
    "DEMO_USERS",
    "InboxHandler",
    "LocalServer",
    "ReceivedMessage",
    "demo_password",
    "demo_users",
]

#: Credentials a ``LocalServer(auth=True)`` accepts unless given ``users`` (the password doubles as the
#: XOAUTH2 token): a fixed, public pair for tests. ``%smtp_server --auth`` and ``python -m smtp_nb`` use
#: ``demo_users()`` instead, a password made at random for each server.
DEMO_USERS = {"demo": "demo-password"}
#: The servers running in this process, by port, latest last (``demo_password()`` reads them).
_RUNNING: dict[int, LocalServer] = {}


def demo_users() -> dict[str, str]:
    """The demo user ``demo`` with a password made at random: one for each server."""
    return {"demo": secrets.token_urlsafe(12)}


def demo_password(port: int | None = None) -> str:
    """The demo user's password on the embedded server running on ``port`` (default: the latest started).

    In a notebook, after ``%smtp_server --starttls --auth``: ``os.environ["SMTP_PASSWORD"] = demo_password()``.
    """
    servers = [s for s in _RUNNING.values() if "demo" in s.users and (port is None or s.port == port)]
    if not servers:
        where = f" on port {port}" if port is not None else ""
        raise LookupError(f"no embedded server with AUTH runs{where}: start one with %smtp_server --starttls --auth")
    return servers[-1].users["demo"]


#: Mailing lists the server expands for EXPN (and knows for VRFY).
DEMO_LISTS = {"team@example.com": ["alice@example.com", "bob@example.com"]}

_DSN_MAIL = ("RET", "ENVID")


class _QuietDeprecation(logging.Filter):
    """aiosmtpd warns about its own use of Session.login_data on every AUTH: not our users' concern."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in str(record.msg)


logging.getLogger("mail.log").addFilter(_QuietDeprecation())
_DSN_RCPT = ("NOTIFY", "ORCPT")


@dataclasses.dataclass(frozen=True)
class ReceivedMessage:
    """One message as the server received it: envelope and raw bytes."""

    received: float
    peer: Any
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    mail_options: tuple[str, ...]
    rcpt_options: tuple[str, ...]
    tls: bool
    login: str | None

    @property
    def message(self) -> email.message.EmailMessage:
        """The message parsed as an ``email.message.EmailMessage``."""
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def size(self) -> int:
        return len(self.data)


class InboxHandler:
    """aiosmtpd handler that keeps every message; subclass it to make a server misbehave on purpose."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server

    async def handle_EHLO(
        self, smtp: Any, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if not self.server.auth:
            responses = [r for r in responses if not r[4:].upper().startswith("AUTH")]
        extra = ["250-PIPELINING", "250-DSN"] + [f"250-{e}" for e in self.server.extra_extensions]
        return responses[:1] + extra + responses[1:]

    async def handle_DATA(self, smtp: Any, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.server._store(
            ReceivedMessage(
                received=time.time(),
                peer=session.peer,
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=content,
                mail_options=tuple(envelope.mail_options),
                rcpt_options=tuple(envelope.rcpt_options),
                tls=session.ssl is not None or smtp.transport.get_extra_info("sslcontext") is not None,
                login=_text(getattr(session.auth_data, "login", None)),
            )
        )
        return f"250 OK queued as {secrets.token_hex(5).upper()}"

    async def handle_VRFY(self, smtp: Any, session: Session, envelope: Envelope, address: str) -> Any:
        known = {member for members in self.server.lists.values() for member in members}
        if address.lower() in known:
            return f"250 <{address.lower()}>"
        if address.lower() in self.server.lists:
            return f"250 <{address.lower()}> (a mailing list: EXPN lists its members)"
        return MISSING

    async def handle_EXPN(self, smtp: Any, session: Session, envelope: Envelope, name: str) -> str:
        members = self.server.lists.get(name.strip("<>").lower())
        if members is None:
            return f"550 5.1.1 <{name.strip('<>')}>: no such mailing list"
        return (
            "\r\n".join(f"250-<{m}>" for m in members[:-1])
            + ("\r\n" if len(members) > 1 else "")
            + f"250 <{members[-1]}>"
        )

    async def auth_XOAUTH2(self, smtp: Any, args: list[str]) -> AuthResult:
        if len(args) < 2:
            return AuthResult(success=False, handled=False)
        try:
            fields = dict(
                part.split("=", 1) for part in base64.b64decode(args[1]).decode().split("\x01") if "=" in part
            )
        except (ValueError, UnicodeDecodeError):
            return AuthResult(success=False, handled=False)
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        expected = self.server.users.get(user)
        if expected is not None and hmac.compare_digest(expected.encode(), token.encode()):
            return AuthResult(success=True, handled=False, auth_data=LoginPassword(user.encode(), b""))
        error = base64.b64encode(json.dumps({"status": "401", "schemes": "bearer"}).encode()).decode()
        await smtp.challenge_auth(error, encode_to_b64=False)  # the client answers with an empty line
        return AuthResult(success=False, handled=False)

    async def auth_CRAM__MD5(self, smtp: Any, args: list[str]) -> AuthResult:
        challenge = f"<{secrets.token_hex(8)}.{int(time.time())}@{smtp.hostname}>".encode()
        answer = await smtp.challenge_auth(challenge)
        if answer is MISSING:
            return AuthResult(success=False, handled=False)
        login, _, digest = bytes(answer).partition(b" ")
        password = self.server.users.get(login.decode("utf-8", "replace"))
        expected = hmac.new(password.encode(), challenge, "md5").hexdigest().encode() if password else b""
        ok = bool(password) and hmac.compare_digest(expected, digest)
        return AuthResult(success=ok, handled=False, auth_data=LoginPassword(login, b""))


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _take_params(arg: str | None, names: tuple[str, ...]) -> tuple[str | None, list[str]]:
    """Split DSN parameters (which aiosmtpd does not know) off a MAIL/RCPT argument."""
    if not arg:
        return arg, []
    kept, taken = [], []
    for word in arg.split(" "):
        if word.split("=", 1)[0].upper() in names and "=" in word:
            taken.append(word)
        else:
            kept.append(word)
    return " ".join(kept), taken


class _ServerProtocol(_AiosmtpdSMTP):
    """aiosmtpd's SMTP plus DSN parameters, AUTH over implicit TLS, and tracked connections."""

    def __init__(self, handler: Any, owner: LocalServer, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None:
            self._owner._connections.add(self)
            if transport.get_extra_info("sslcontext") is not None:
                self._auth_require_tls = False  # implicit TLS: already encrypted
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._owner._connections.discard(self)
        super().connection_lost(error)

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        arg, dsn = _take_params(arg, _DSN_MAIL)
        await super().smtp_MAIL(arg)
        if dsn and self.envelope is not None and self.envelope.mail_from is not None:
            self.envelope.mail_options.extend(dsn)

    @syntax("EXPN <list>")
    async def smtp_EXPN(self, arg: str) -> None:
        if not arg:
            await self.push("501 Syntax: EXPN <list>")
            return
        status = await self._call_handler_hook("EXPN", arg)
        await self.push("502 EXPN not implemented" if status is MISSING else status)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        arg, dsn = _take_params(arg, _DSN_RCPT)
        before = len(self.envelope.rcpt_tos) if self.envelope is not None else 0
        await super().smtp_RCPT(arg)
        if dsn and self.envelope is not None and len(self.envelope.rcpt_tos) > before:
            self.envelope.rcpt_options.extend(dsn)


class LocalServer:
    """An aiosmtpd server on ``host:port`` (port 0: a free one), running on its own thread.

    ``auth=True`` offers PLAIN, LOGIN and CRAM-MD5 for the ``users`` (default
    ``DEMO_USERS``), only once the connection is encrypted if it can be (``auth_require_tls``), and with
    ``auth_required`` refuses mail until the client logs in; ``starttls=True`` offers STARTTLS and ``tls=True`` speaks
    TLS from the start, both with a certificate made on the spot whose issuer
    is written to ``ca_path``. Received mail is in ``messages``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        auth: bool = False,
        users: dict[str, str] | None = None,
        starttls: bool = False,
        tls: bool = False,
        auth_require_tls: bool | None = None,
        auth_required: bool = False,
        require_starttls: bool = False,
        data_size_limit: int = 33554432,
        smtputf8: bool = True,
        handler_class: type[InboxHandler] = InboxHandler,
        protocol_class: type[_ServerProtocol] | None = None,
        extra_extensions: tuple[str, ...] = (),
        hostname: str = "localhost",
        lists: dict[str, list[str]] | None = None,
        socket_path: str | None = None,
    ) -> None:
        if starttls and tls:
            raise ValueError("choose starttls (upgrade on port 587 style) or tls (TLS from the start), not both")
        self.host = host
        self.port = port
        self.socket_path = socket_path
        self.auth = auth
        self.users = dict(users or DEMO_USERS) if auth else {}
        self.starttls = starttls
        self.tls = tls
        self.auth_require_tls = (starttls or tls) if auth_require_tls is None else auth_require_tls
        #: Refuse MAIL until the client has logged in (``%smtp_server --auth``).
        self.auth_required = auth and auth_required
        self.require_starttls = require_starttls
        self.data_size_limit = data_size_limit
        self.smtputf8 = smtputf8
        self.extra_extensions = extra_extensions
        self.hostname = hostname
        self.lists = {k.lower(): v for k, v in (DEMO_LISTS if lists is None else lists).items()}
        self.handler = handler_class(self)
        self.protocol_class = protocol_class or _ServerProtocol
        self.ca_path: str | None = None
        self.messages: list[ReceivedMessage] = []
        self._lock = threading.Condition()
        self._connections: set[_ServerProtocol] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._tls_context: ssl.SSLContext | None = None

    # -- lifecycle ---------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> LocalServer:
        """Start listening; returns once connections are accepted. Starting twice is harmless."""
        if self.running:
            return self
        if self.starttls or self.tls:
            self._make_certificate()
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name=f"smtp_nb-server-{self.port}", daemon=True)
        self._thread.start()
        try:
            self._server = asyncio.run_coroutine_threadsafe(self._listen(), loop).result(timeout=30)
        except BaseException:
            self.stop()
            raise
        if self.socket_path is None:
            self.port = cast(asyncio.Server, self._server).sockets[0].getsockname()[1]
            _RUNNING.pop(self.port, None)
            _RUNNING[self.port] = self
        return self

    async def _listen(self) -> asyncio.AbstractServer:
        loop = asyncio.get_running_loop()
        if self.socket_path is not None:
            return await loop.create_unix_server(
                self._protocol, self.socket_path, ssl=self._tls_context if self.tls else None
            )
        return await loop.create_server(
            self._protocol,
            self.host,
            self.port,
            ssl=self._tls_context if self.tls else None,
        )

    def _protocol(self) -> _ServerProtocol:
        loop = asyncio.get_running_loop()
        protocol = self.protocol_class(
            self.handler,
            self,
            loop=loop,
            hostname=self.hostname,
            ident="smtp_nb embedded server",
            enable_SMTPUTF8=self.smtputf8,
            data_size_limit=self.data_size_limit,
            tls_context=self._tls_context if self.starttls else None,
            require_starttls=self.require_starttls,
            auth_required=False,  # set below: aiosmtpd warns of AUTH in clear, which --auth-plaintext asks for
            auth_require_tls=self.auth_require_tls,
            authenticator=self._authenticate if self.auth else None,
            auth_exclude_mechanism=() if self.auth else ("PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"),
        )
        protocol._auth_required = self.auth_required
        return protocol

    def _authenticate(self, smtp: Any, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = _text(data.login) or "", _text(data.password) or ""
        expected = self.users.get(login)
        ok = expected is not None and hmac.compare_digest(expected.encode(), password.encode())
        return AuthResult(success=ok, handled=False, auth_data=LoginPassword(data.login, b""))

    def _make_certificate(self) -> None:
        if self._tls_context is not None:
            return
        try:
            import trustme
        except ImportError:
            raise RuntimeError(
                "a TLS certificate for the embedded server needs trustme: pip install 'smtp_nb[notebook]'"
            ) from None
        # Fixed names (trustme's default unit names are random) keep notebook outputs the same from run to run.
        ca = trustme.CA(organization_name="smtp_nb embedded server", organization_unit_name="demo CA")
        cert = ca.issue_cert(
            "localhost",
            "127.0.0.1",
            "::1",
            organization_name="smtp_nb embedded server",
            organization_unit_name="demo certificate",
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self._tempdir = tempfile.TemporaryDirectory(prefix="smtp_nb-")
        self.ca_path = os.path.join(self._tempdir.name, "ca.pem")
        ca.cert_pem.write_to_path(self.ca_path)
        self._tls_context = context

    def stop(self) -> None:
        """Stop listening, close every connection and the thread. Stopping twice is harmless."""
        if _RUNNING.get(self.port) is self:
            del _RUNNING[self.port]
        loop, server = self._loop, self._server
        if loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(server), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=30)
        if loop is not None and not loop.is_running():
            loop.close()
        self._server = self._loop = self._thread = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None
            self.ca_path = None
            self._tls_context = None

    async def _shutdown(self, server: asyncio.AbstractServer | None) -> None:
        if server is not None:
            server.close()
        for protocol in list(self._connections):
            # abort, not close: a TLS close would wait for the client's close_notify
            for transport in (protocol.transport, protocol._original_transport):
                if transport is not None:
                    cast(asyncio.Transport, transport).abort()
        for _ in range(3):  # let connection_lost run and the handler tasks finish
            await asyncio.sleep(0)
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- mail ------------------------------------------------------------------------

    def _store(self, message: ReceivedMessage) -> None:
        with self._lock:
            self.messages.append(message)
            self._lock.notify_all()

    def wait_for_messages(self, count: int, timeout: float = 30) -> bool:
        """Wait until at least ``count`` messages have arrived; False if ``timeout`` passed first."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.messages) >= count, timeout)

    def clear(self) -> None:
        """Forget every received message."""
        with self._lock:
            self.messages.clear()

    def __iter__(self) -> Iterator[ReceivedMessage]:
        with self._lock:
            return iter(list(self.messages))

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``smtp_nb.SMTP`` that reach this server."""
        options: dict[str, Any] = (
            {"socket_path": self.socket_path, "hostname": self.host}
            if self.socket_path is not None
            else {"hostname": self.host, "port": self.port}
        )
        if self.tls:
            options["use_tls"] = True
        if self.starttls:
            options["start_tls"] = True
        if self.ca_path:
            options["cert_bundle"] = self.ca_path
        return options

    def __repr__(self) -> str:
        where = self.socket_path or f"{self.host}:{self.port}"
        state = f"listening on {where}" if self.running else "stopped"
        features = [name for name, on in (("auth", self.auth), ("starttls", self.starttls), ("tls", self.tls)) if on]
        return f"<LocalServer {state}{' ' + ','.join(features) if features else ''}, {len(self.messages)} messages>"
