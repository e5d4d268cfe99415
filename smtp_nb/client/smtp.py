"""``SMTP``: the async client of ``spec/smtp-client-api.md``, with sync twins that work inside Jupyter.

The class keeps the options and the session state (extensions, TLS, login);
``connection.Connection`` moves the bytes and ``transaction`` runs mail
transactions, pipelined when the server allows it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.message
import enum
import functools
import ipaddress
import os
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Literal, Optional, TypeVar, Union, cast

from .addresses import check_argument, needs_smtputf8, parse_address, quote_address
from .auth import Secret, crammd5_answer, login_encode, plain_encode, xoauth2_encode
from .connection import Connection, describe_tls_error, duration
from .errors import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPConnectTimeoutError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPMessageTooLarge,
    SMTPNotSupported,
    SMTPReadTimeoutError,
    SMTPRecipientRefused,
    SMTPResponseException,
    SMTPSecurityError,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from .message import extract_recipients, extract_sender, flatten_message
from .protocol import dot_stuff, encode_command, normalize_line_endings, parse_ehlo
from .response import SMTPResponse, SMTPStatus
from .sync import run_sync, wait_threadsafe
from .transaction import Delivery, Prepared, send_pipelined, send_sequential
from .transcript import Transcript, TranscriptEntry

__all__ = [
    "DEFAULT_TIMEOUT",
    "SMTP",
    "SMTP_PORT",
    "SMTP_STARTTLS_PORT",
    "SMTP_TLS_PORT",
    "is_local_peer",
]

SMTP_PORT = 25
SMTP_TLS_PORT = 465
SMTP_STARTTLS_PORT = 587
DEFAULT_TIMEOUT = 60

SocketPathType = Union[str, bytes, "os.PathLike[str]"]
OAuthTokenGenerator = Callable[[], Awaitable[str]]
T = TypeVar("T")


class _Default(enum.Enum):
    """Tells "not given" from None (which means "no timeout")."""

    token = 0


_default = _Default.token
Timeout = Union[float, None, Literal[_Default.token]]

_OPTIONS = (
    "hostname",
    "port",
    "username",
    "password",
    "local_hostname",
    "source_address",
    "use_tls",
    "start_tls",
    "validate_certs",
    "client_cert",
    "client_key",
    "tls_context",
    "cert_bundle",
    "socket_path",
    "sock",
    "oauth_token_generator",
    "allow_plaintext_auth",
)


def is_local_peer(peername: Any) -> bool:
    """True if ``peername`` (a transport's peer) is this machine: loopback IP or a Unix socket."""
    if not isinstance(peername, tuple):
        return True  # Unix domain socket: a path (or an abstract name)
    try:
        address = ipaddress.ip_address(str(peername[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@functools.lru_cache(maxsize=1)
def _fqdn() -> str:
    return socket.getfqdn()


def _helo_name(name: str, what: str = "local_hostname") -> str:
    name = check_argument(name.strip(), what)
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"{what} {name!r} must be one word, such as a host name or [192.0.2.1]")
    return name


def _options_bytes(options: Iterable[str] | None, what: str) -> list[bytes]:
    encoded = []
    for option in options or ():
        check_argument(option, what)
        if not option or " " in option or not option.isascii():
            raise ValueError(f"{what} {option!r} must be one ASCII word such as BODY=8BITMIME")
        encoded.append(option.encode("ascii"))
    return encoded


def _has_option(options: Sequence[str], name: str) -> bool:
    name = name.upper()
    return any(o.upper().split("=", 1)[0] == name for o in options)


class _TaskLock:
    """A lock the task holding it may take again (a transaction runs commands)."""

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if self._owner is task and task is not None:
            self._depth += 1
            return
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop
        await self._lock.acquire()
        self._owner, self._depth = task, 1

    async def __aexit__(self, *exc_info: object) -> None:
        self._depth -= 1
        if not self._depth:
            self._owner = None
            assert self._lock is not None
            self._lock.release()


class SMTP:
    """An SMTP client: connect, talk ESMTP, send mail.

    Options given to the constructor are kept as attributes
    (``client.hostname``, ``client.port``, ``client.timeout``, ...); options
    given to ``connect()`` replace them, except ``timeout``, which applies to
    that connect alone. The password is kept as a ``Secret`` that never shows
    in a repr, a log or a transcript.
    """

    #: Authentication methods ``login()`` tries, preferred first.
    AUTH_METHODS: tuple[str, ...] = ("cram-md5", "plain", "login")

    def __init__(
        self,
        *,
        hostname: Optional[str] = None,
        port: Optional[int] = None,
        username: Optional[Union[str, bytes]] = None,
        password: Optional[Union[str, bytes]] = None,
        local_hostname: Optional[str] = None,
        source_address: Optional[tuple[str, int]] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        use_tls: bool = False,
        start_tls: Optional[bool] = None,
        validate_certs: bool = True,
        client_cert: Optional[str] = None,
        client_key: Optional[str] = None,
        tls_context: Optional[ssl.SSLContext] = None,
        cert_bundle: Optional[str] = None,
        socket_path: Optional[SocketPathType] = None,
        sock: Optional[socket.socket] = None,
        oauth_token_generator: Optional[OAuthTokenGenerator] = None,
        allow_plaintext_auth: bool = False,
        on_transcript: Optional[Callable[[TranscriptEntry], None]] = None,
    ) -> None:
        self.hostname = hostname
        self.port = port
        self.username = username
        self.password = password  # stored as a Secret
        self.local_hostname = local_hostname
        self.source_address = source_address
        self.timeout = timeout
        self.use_tls = use_tls
        self.start_tls = start_tls
        self.validate_certs = validate_certs
        self.client_cert = client_cert
        self.client_key = client_key
        self.tls_context = tls_context
        self.cert_bundle = cert_bundle
        self.socket_path = socket_path
        self.sock = sock
        self.oauth_token_generator = oauth_token_generator
        self.allow_plaintext_auth = allow_plaintext_auth
        self._validate_options()
        _check_timeout(timeout)

        self.transcript = Transcript()
        if on_transcript is not None:
            self.transcript.subscribe(on_transcript)
        self._conn: Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = _TaskLock()
        self._pipeline_task: asyncio.Task[Any] | None = None
        self._reset_server_state()
        self.authenticated_as: str | None = None

    # -- options --------------------------------------------------------------

    @property
    def password(self) -> Secret | None:
        """The password, wrapped so that it never prints (``.reveal()`` gives the value)."""
        return self._password

    @password.setter
    def password(self, value: str | bytes | Secret | None) -> None:
        self._password = value if value is None or isinstance(value, Secret) else Secret(value)

    def clone(self) -> SMTP:
        """A new, unconnected client with the same options (for more connections to the same server)."""
        options = {name: getattr(self, name) for name in _OPTIONS if name not in ("sock", "password")}
        copy = SMTP(**options, timeout=self.timeout)
        copy.password = self.password
        for listener in self.transcript.listeners:
            copy.transcript.subscribe(listener)
        return copy

    def _validate_options(self) -> None:
        if self.use_tls and self.start_tls:
            raise ValueError(
                "use_tls (TLS from the start, port 465) and start_tls=True (upgrade, port 587) exclude each other"
            )
        if self.sock is not None and self.socket_path is not None:
            raise ValueError("give sock or socket_path, not both")
        if (self.sock is not None or self.socket_path is not None) and self.port is not None:
            raise ValueError("port has no meaning with sock or socket_path")
        if self.tls_context is not None and self.client_cert is not None:
            raise ValueError(
                "give tls_context or client_cert/client_key, not both (load the certificate into the context)"
            )
        if self.password is not None and self.oauth_token_generator is not None:
            raise ValueError("give password or oauth_token_generator, not both")
        if self.hostname is not None:
            check_argument(self.hostname, "hostname")
        if self.username is not None:
            _check_username(self.username)
        if self.local_hostname is not None:
            self.local_hostname = _helo_name(self.local_hostname)
        if self.port is not None and not (isinstance(self.port, int) and 0 < self.port < 65536):
            raise ValueError(f"port must be a number from 1 to 65535, not {self.port!r}")

    def _default_port(self) -> int:
        if self.use_tls:
            return SMTP_TLS_PORT
        if self.start_tls:
            return SMTP_STARTTLS_PORT
        return SMTP_PORT

    def _resolve(self, timeout: Timeout) -> float | None:
        return self.timeout if timeout is _default else timeout

    def __repr__(self) -> str:
        where = self._where()
        state = "connected" if self.is_connected else "not connected"
        extra = ""
        if self.is_connected and self._conn is not None and self._conn.is_tls:
            extra += ", TLS"
        if self.authenticated_as is not None:
            extra += f", logged in as {self.authenticated_as!r}"
        return f"<smtp_nb.SMTP {where} {state}{extra}>"

    def _where(self) -> str:
        if self.socket_path is not None:
            return os.fsdecode(self.socket_path)
        if self.sock is not None and self.hostname is None:
            return "a given socket"
        host = self.hostname or "localhost"
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{self.port or self._default_port()}"

    # -- state ------------------------------------------------------------------

    def _reset_server_state(self) -> None:
        self._last_ehlo_response: SMTPResponse | None = None
        self.last_helo_response: SMTPResponse | None = None
        self.esmtp_extensions: dict[str, str] = {}
        self.server_auth_methods: list[str] = []
        self.supports_esmtp = False

    @property
    def is_connected(self) -> bool:
        """True while the connection is open and usable."""
        conn, loop = self._conn, self._loop
        return conn is not None and conn.is_open and loop is not None and not loop.is_closed()

    @property
    def last_ehlo_response(self) -> SMTPResponse | None:
        """The server's last reply to EHLO, or None."""
        return self._last_ehlo_response

    @last_ehlo_response.setter
    def last_ehlo_response(self, response: SMTPResponse | None) -> None:
        self._last_ehlo_response = response
        if response is None:
            self.esmtp_extensions, self.server_auth_methods, self.supports_esmtp = {}, [], False
        else:
            self.esmtp_extensions, self.server_auth_methods = parse_ehlo(response.message)
            self.supports_esmtp = True

    @property
    def is_ehlo_or_helo_needed(self) -> bool:
        """True until EHLO or HELO has been answered in this session."""
        return self._last_ehlo_response is None and self.last_helo_response is None

    @property
    def supported_auth_methods(self) -> list[str]:
        """AUTH methods both the server and this client support, preferred first."""
        return [m for m in self.AUTH_METHODS if m in self.server_auth_methods]

    def supports_extension(self, extension: str, /) -> bool:
        """True if the server's EHLO reply advertised ``extension`` (case-insensitive)."""
        return extension.lower() in self.esmtp_extensions

    @property
    def max_message_size(self) -> int | None:
        """The server's SIZE limit in bytes, or None if it set none."""
        value = self.esmtp_extensions.get("size", "").strip()
        return int(value) if value.isdigit() and int(value) > 0 else None

    @property
    def is_tls(self) -> bool:
        """True if the connection is encrypted."""
        return self.is_connected and self._conn is not None and self._conn.is_tls

    def get_transport_info(self, key: str) -> Any:
        """Transport details: ``peername``, ``sockname``, ``socket``, ``sslcontext``,
        ``ssl_object``, ``peercert``, ``cipher``, ``compression``."""
        if not self.is_connected or self._conn is None:
            raise SMTPServerDisconnected("not connected: call connect() first")
        if key == "sslobject":
            key = "ssl_object"
        return self._conn.extra(key)

    def _connection(self) -> Connection:
        """The open connection, checked to belong to the running event loop."""
        conn = self._conn
        if conn is None or not self.is_connected:
            raise SMTPServerDisconnected(
                "not connected: call connect() first (or use `async with client:`)"
                if conn is None
                else "the connection is closed; call connect() to open a new one"
            )
        if asyncio.get_running_loop() is not self._loop:
            raise SMTPException(
                "this client is connected on another event loop; use it from that loop, "
                "or call its *_sync methods, which hand the call to that loop"
            )
        if self._pipeline_task is not None and self._pipeline_task is asyncio.current_task():
            # A command from the task that runs send_many(): its loop was left
            # (break, return, an exception) or the command comes from inside it.
            # Python finalizes an abandoned async generator only later, so act now.
            self._pipeline_task = None
            if conn.transaction_open:
                conn.close("a send_many() loop was left with a transaction open")
                raise SMTPException(
                    "a send_many() loop on this client was left (or is still running) while a message's "
                    "data was due, so the connection was closed: nothing half-sent is delivered. Reconnect "
                    "to go on; wrap the loop in contextlib.aclosing(...) to have it closed where it ends"
                )
        return conn

    # -- connecting -----------------------------------------------------------

    async def connect(
        self,
        *,
        hostname: Any = _default,
        port: Any = _default,
        username: Any = _default,
        password: Any = _default,
        local_hostname: Any = _default,
        source_address: Any = _default,
        timeout: Timeout = _default,
        use_tls: Any = _default,
        start_tls: Any = _default,
        validate_certs: Any = _default,
        client_cert: Any = _default,
        client_key: Any = _default,
        tls_context: Any = _default,
        cert_bundle: Any = _default,
        socket_path: Any = _default,
        sock: Any = _default,
        oauth_token_generator: Any = _default,
        allow_plaintext_auth: Any = _default,
    ) -> SMTPResponse:
        """Connect, read the greeting, EHLO (HELO if refused), STARTTLS as configured, log in if credentials were given.

        Returns the server's greeting. Raises ``SMTPConnectError`` (network or
        TLS failure), ``SMTPConnectTimeoutError``, ``SMTPConnectResponseError``
        (greeting other than 220); ``SMTPException`` if already connected.
        """
        if self.is_connected:
            raise SMTPException(f"already connected to {self._where()}; call quit() or close() first")
        given = {k: v for k, v in locals().items() if k in _OPTIONS and v is not _default}
        previous = {k: getattr(self, k) for k in given}
        for name, value in given.items():
            setattr(self, name, value)
        try:
            self._validate_options()
        except ValueError:
            for name, value in previous.items():
                setattr(self, name, value)
            raise
        if timeout is not _default:
            _check_timeout(timeout)
        limit = self._resolve(timeout)

        self.close()
        loop = asyncio.get_running_loop()
        conn = Connection(loop, self.transcript)
        self._conn, self._loop = conn, loop
        try:
            async with self._lock:
                greeting = await self._open(conn, limit)
                await self._ehlo_or_helo_if_needed(limit)
                await self._maybe_starttls(limit)
                await self._maybe_login(limit)
        except BaseException:
            self.close()
            raise
        return greeting

    async def _open(self, conn: Connection, timeout: float | None) -> SMTPResponse:
        loop = conn.loop
        host = self.hostname or "localhost"
        port = self.port or self._default_port()
        where = self._where()
        context = await self._tls_context() if self.use_tls else None
        server_hostname = self.hostname if context is not None else None
        if context is not None and context.check_hostname and not server_hostname:
            raise ValueError("hostname= is needed to verify the certificate over sock or socket_path")
        tls_kwargs: dict[str, Any] = {}
        if context is not None:
            tls_kwargs = {"ssl": context, "server_hostname": server_hostname, "ssl_handshake_timeout": timeout}
        self.transcript.record("*", f"connecting to {where}" + (" with TLS" if context else ""))
        if self.sock is not None:
            opening = loop.create_connection(lambda: conn, sock=self.sock, **tls_kwargs)
        elif self.socket_path is not None:
            opening = loop.create_unix_connection(lambda: conn, os.fsdecode(self.socket_path), **tls_kwargs)
        else:
            opening = loop.create_connection(lambda: conn, host, port, local_addr=self.source_address, **tls_kwargs)
        try:
            await asyncio.wait_for(opening, timeout)
        except asyncio.TimeoutError:
            raise SMTPConnectTimeoutError(f"connecting to {where} took longer than {duration(timeout)}") from None
        except ssl.SSLError as exc:
            raise SMTPConnectError(describe_tls_error(exc, server_hostname or host)) from exc
        except OSError as exc:
            # A server that hangs up during the TLS handshake gives a ConnectionResetError with no text.
            reason = (
                exc.strerror
                or str(exc)
                or ("the server closed the connection during the TLS handshake" if context else type(exc).__name__)
            )
            raise SMTPConnectError(f"cannot connect to {where}: {reason}") from exc
        try:
            (greeting,) = await conn.read(1, timeout)
        except SMTPReadTimeoutError:
            raise SMTPConnectTimeoutError(
                f"{where} accepted the connection but sent no greeting within {duration(timeout)}"
            ) from None
        except SMTPServerDisconnected as exc:
            raise SMTPConnectError(f"{where} closed the connection before greeting: {exc}") from exc
        if greeting.code != SMTPStatus.ready:
            raise SMTPConnectResponseError(greeting.code, greeting.message)
        return greeting

    async def _tls_context(self) -> ssl.SSLContext:
        if self.tls_context is not None:
            return self.tls_context
        return await asyncio.get_running_loop().run_in_executor(
            None,
            _build_tls_context,
            self.validate_certs,
            self.cert_bundle,
            self.client_cert,
            self.client_key,
        )

    async def _maybe_starttls(self, timeout: float | None) -> None:
        if self.use_tls or self.start_tls is False or (self._conn is not None and self._conn.is_tls):
            return
        if self.supports_extension("starttls"):
            await self.starttls(timeout=timeout)
            await self._ehlo_or_helo_if_needed(timeout)
        elif self.start_tls:
            raise SMTPNotSupported(
                f"{self._where()} does not offer STARTTLS, and start_tls=True requires an "
                "encrypted connection; nothing was sent. Use use_tls=True if it speaks TLS "
                "from the start (port 465)"
            )

    async def _maybe_login(self, timeout: float | None) -> None:
        if self.username is None:
            return
        if self.oauth_token_generator is not None:
            token = await self.oauth_token_generator()
            await self.auth_xoauth2(self.username, token, timeout=timeout)
        else:
            secret = self.password.reveal() if self.password is not None else ""
            await self.login(self.username, secret, timeout=timeout)

    def close(self) -> None:
        """Close the connection at once, without QUIT."""
        conn = self._conn
        if conn is not None and conn.is_open:
            if self._loop is not None and not self._loop.is_closed():
                conn.close()
        self._conn = None
        self._reset_server_state()
        self.authenticated_as = None

    async def quit(self, *, timeout: Timeout = _default) -> SMTPResponse:
        """Send QUIT and close the connection, whatever the reply (or its absence)."""
        conn = self._connection()
        limit = self._resolve(timeout)
        try:
            async with self._lock:
                conn.quit_sent = True
                response = await self._command(b"QUIT\r\n", limit)
        finally:
            self.close()
        try:  # let the transport finish closing before the caller's loop may end
            await asyncio.wait_for(asyncio.shield(conn.closed), limit)
        except asyncio.TimeoutError:
            pass
        if response.code != SMTPStatus.closing:
            raise SMTPResponseException(response.code, response.message)
        return response

    async def __aenter__(self) -> SMTP:
        if not self.is_connected:
            await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc_val: Optional[BaseException],
        exc_tb: Optional[TracebackType],
    ) -> None:
        if isinstance(exc_val, (ConnectionError, TimeoutError, asyncio.CancelledError)) or not self.is_connected:
            self.close()
            return
        try:
            await self.quit()
        except SMTPException:
            pass
        finally:
            self.close()

    # -- commands ---------------------------------------------------------------

    async def _command(self, line: bytes, timeout: float | None) -> SMTPResponse:
        """Send one command line and read its reply; a timeout or cancellation closes the connection."""
        conn = self._conn
        if conn is None:
            raise SMTPServerDisconnected("not connected: call connect() first")
        conn.queue_command(line)
        try:
            conn.flush()
            (response,) = await conn.read(1, timeout)
        except BaseException:
            self.close()
            raise
        if response.code == SMTPStatus.domain_unavailable:
            self.close()  # 421: the server is closing the channel
        return response

    async def execute_command(self, *args: Union[str, bytes, float, None], timeout: Timeout = _default) -> SMTPResponse:
        """Send any command and return the reply, whatever its code.

        ``execute_command("NOOP")``, ``execute_command(b"MAIL", b"FROM:<a@example.com>")``
        and the spec's ``execute_command(command, timeout)`` all work.
        """
        parts = list(args)
        if len(parts) == 2 and (parts[1] is None or isinstance(parts[1], (int, float))):
            timeout = cast(Optional[float], parts.pop())
        if not parts:
            raise ValueError("execute_command() needs a command")
        encoded = []
        for part in parts:
            if isinstance(part, str):
                encoded.append(part.encode("utf-8"))
            elif isinstance(part, (bytes, bytearray)):
                encoded.append(bytes(part))
            else:
                raise TypeError(f"command parts must be str or bytes, not {type(part).__name__}")
        line = encode_command(*encoded)
        self._connection()
        async with self._lock:
            return await self._command(line, self._resolve(timeout))

    async def _ehlo_or_helo_if_needed(self, timeout: float | None = None) -> None:
        if not self.is_ehlo_or_helo_needed:
            return
        try:
            await self.ehlo(timeout=timeout)
        except SMTPHeloError:
            if not self.is_connected:
                raise
            await self.helo(timeout=timeout)

    async def _local_name(self) -> str:
        if self.local_hostname is None:
            if _fqdn.cache_info().currsize:
                name = _fqdn()
            else:  # the first lookup may wait on DNS: not on the event loop
                name = await asyncio.get_running_loop().run_in_executor(None, _fqdn)
            if "." in name and name.isascii() and all(c.isalnum() or c in ".-_" for c in name):
                self.local_hostname = name
            else:
                sockname = self._conn.extra("sockname") if self._conn is not None else None
                if isinstance(sockname, tuple):
                    ip = ipaddress.ip_address(sockname[0].split("%", 1)[0])
                    self.local_hostname = f"[IPv6:{ip}]" if ip.version == 6 else f"[{ip}]"
                else:
                    self.local_hostname = "localhost"
        return self.local_hostname

    async def _hello(self, verb: str, name: Optional[str], timeout: Timeout) -> SMTPResponse:
        """HELO or EHLO with ``name`` (default: this host's name); a refusal raises ``SMTPHeloError``."""
        self._connection()
        name = _helo_name(name, f"{verb} name") if name else await self._local_name()
        line = encode_command(verb.encode("ascii"), name.encode("utf-8"))
        async with self._lock:
            response = await self._command(line, self._resolve(timeout))
        if response.code != SMTPStatus.completed:
            raise SMTPHeloError(response.code, response.message)
        return response

    async def helo(
        self, name: Optional[str] = None, *, hostname: Optional[str] = None, timeout: Timeout = _default
    ) -> SMTPResponse:
        """Send HELO (``name``, or ``hostname=``, default: this host's name). Raises ``SMTPHeloError``."""
        response = await self._hello("HELO", name or hostname, timeout)
        self.last_helo_response = response
        self.last_ehlo_response = None  # after HELO the session is plain SMTP: no extensions
        return response

    async def ehlo(
        self, name: Optional[str] = None, *, hostname: Optional[str] = None, timeout: Timeout = _default
    ) -> SMTPResponse:
        """Send EHLO and learn the server's extensions. Raises ``SMTPHeloError``."""
        response = await self._hello("EHLO", name or hostname, timeout)
        self.last_ehlo_response = response
        return response

    async def _simple(
        self,
        line: bytes,
        ok: tuple[int, ...],
        timeout: Timeout,
        refusal: Callable[[SMTPResponse], SMTPResponseException] = lambda r: SMTPResponseException(r.code, r.message),
    ) -> SMTPResponse:
        """One command after EHLO/HELO; a reply code outside ``ok`` raises ``refusal(reply)``."""
        self._connection()
        async with self._lock:
            await self._ehlo_or_helo_if_needed(self._resolve(timeout))
            response = await self._command(line, self._resolve(timeout))
        if response.code not in ok:
            raise refusal(response)
        return response

    async def help(self, command: Optional[str] = None, *, timeout: Timeout = _default) -> SMTPResponse:
        """Send HELP (about ``command`` if given)."""
        parts = [b"HELP"] + ([check_argument(command, "HELP topic").encode("utf-8")] if command else [])
        return await self._simple(encode_command(*parts), (211, 214, 250), timeout)

    async def rset(self, *, timeout: Timeout = _default) -> SMTPResponse:
        """Send RSET: abandon the current mail transaction."""
        return await self._simple(b"RSET\r\n", (250,), timeout)

    async def noop(self, *, timeout: Timeout = _default) -> SMTPResponse:
        """Send NOOP: check the connection is alive."""
        return await self._simple(b"NOOP\r\n", (250,), timeout)

    def _lookup_line(self, verb: bytes, address: str, options: Optional[Iterable[str]]) -> bytes:
        check_argument(address, f"{verb.decode()} argument")
        option_list = list(options or ())
        encoded = _options_bytes(option_list, f"{verb.decode()} option")
        if not address.isascii() and not _has_option(option_list, "SMTPUTF8"):
            raise ValueError(f"{address!r} is not ASCII: pass options=['SMTPUTF8'] (the server must offer SMTPUTF8)")
        return encode_command(verb, address.encode("utf-8"), *encoded)

    async def vrfy(
        self, address: str, /, *, options: Optional[Iterable[str]] = None, timeout: Timeout = _default
    ) -> SMTPResponse:
        """Send VRFY: ask whether the server knows ``address``."""
        return await self._simple(self._lookup_line(b"VRFY", address, options), (250, 251, 252), timeout)

    async def expn(
        self, address: str, /, *, options: Optional[Iterable[str]] = None, timeout: Timeout = _default
    ) -> SMTPResponse:
        """Send EXPN: ask the server to expand the mailing list ``address``."""
        return await self._simple(self._lookup_line(b"EXPN", address, options), (250,), timeout)

    def _address_line(self, prefix: bytes, address: str, options: Sequence[str], encoding: str, null: bool) -> bytes:
        quoted = quote_address(address, allow_empty=null)
        utf8 = encoding.lower().replace("-", "") == "utf8" or _has_option(options, "SMTPUTF8")
        if not quoted.isascii() and not utf8:
            raise ValueError(
                f"{address!r} is not ASCII: the server must offer SMTPUTF8 and the MAIL command "
                "must carry the SMTPUTF8 option (sendmail() and send_message() do this for you)"
            )
        return encode_command(prefix + quoted.encode("utf-8"), *_options_bytes(options, "option"))

    async def mail(
        self,
        sender: str,
        options: Optional[Sequence[str]] = None,
        *,
        encoding: str = "ascii",
        timeout: Timeout = _default,
    ) -> SMTPResponse:
        """Send MAIL FROM: start a transaction. Raises ``SMTPSenderRefused``."""
        line = self._address_line(b"MAIL FROM:", sender, list(options or ()), encoding, True)
        return await self._simple(line, (250,), timeout, lambda r: SMTPSenderRefused(r.code, r.message, sender))

    async def rcpt(
        self,
        recipient: str,
        options: Optional[Sequence[str]] = None,
        *,
        encoding: str = "ascii",
        timeout: Timeout = _default,
    ) -> SMTPResponse:
        """Send RCPT TO: add a recipient. Raises ``SMTPRecipientRefused``."""
        line = self._address_line(b"RCPT TO:", recipient, list(options or ()), encoding, False)
        return await self._simple(
            line, (250, 251), timeout, lambda r: SMTPRecipientRefused(r.code, r.message, recipient)
        )

    async def data(self, message: Union[str, bytes], /, *, timeout: Timeout = _default) -> SMTPResponse:
        """Send DATA and the message (dot-stuffed, CRLF line endings). Raises ``SMTPDataError``."""
        payload = dot_stuff(normalize_line_endings(_message_bytes(message)))
        conn = self._connection()
        limit = self._resolve(timeout)
        async with self._lock:
            await self._ehlo_or_helo_if_needed(limit)
            start = await self._command(b"DATA\r\n", limit)
            if start.code != SMTPStatus.start_input:
                raise SMTPDataError(start.code, start.message)
            conn.queue_data(payload, expect=0, shown=f"[message data: {len(payload):,} bytes]")
            conn.queue_data(b".\r\n", expect=1, shown=".")
            try:
                conn.flush()
                await conn.wait_writable(limit)
                (response,) = await conn.read(1, limit)
            except BaseException:
                self.close()
                raise
        if response.code != SMTPStatus.completed:
            raise SMTPDataError(response.code, response.message)
        return response

    # -- TLS and authentication ---------------------------------------------------

    async def starttls(
        self,
        tls_context: Optional[ssl.SSLContext] = None,
        *,
        server_hostname: Optional[str] = None,
        validate_certs: Optional[bool] = None,
        client_cert: Any = _default,
        client_key: Any = _default,
        cert_bundle: Any = _default,
        timeout: Timeout = _default,
    ) -> SMTPResponse:
        """Upgrade the connection to TLS (RFC 3207); the server's extensions are then forgotten and asked again.

        Raises ``SMTPNotSupported`` if the server does not offer STARTTLS,
        ``SMTPResponseException`` if it refuses, ``SMTPConnectError`` if the
        certificate does not verify.
        """
        conn = self._connection()
        if conn.is_tls:
            raise SMTPException("the connection already uses TLS")
        updates = {
            "tls_context": tls_context if tls_context is not None else _default,
            "validate_certs": validate_certs if validate_certs is not None else _default,
            "client_cert": client_cert,
            "client_key": client_key,
            "cert_bundle": cert_bundle,
        }
        for name, value in updates.items():
            if value is not _default:
                setattr(self, name, value)
        self._validate_options()
        limit = self._resolve(timeout)
        async with self._lock:
            await self._ehlo_or_helo_if_needed(limit)
            if not self.supports_extension("starttls"):
                raise SMTPNotSupported(f"{self._where()} does not offer STARTTLS")
            context = await self._tls_context()
            response = await self._command(b"STARTTLS\r\n", limit)
            if response.code != SMTPStatus.ready:
                raise SMTPResponseException(response.code, response.message)
            hostname = server_hostname or self.hostname
            if context.check_hostname and not hostname:
                self.close()
                raise ValueError("hostname= (or server_hostname=) is needed to verify the certificate")
            try:
                await conn.start_tls(context, hostname, limit)
            except BaseException:
                self.close()
                raise
            self._reset_server_state()
        return response

    def _check_auth_allowed(self) -> None:
        conn = self._connection()
        if conn.is_tls or self.allow_plaintext_auth or is_local_peer(conn.extra("peername")):
            return
        raise SMTPSecurityError(
            f"refusing to send credentials to {self._where()} over an unencrypted connection. "
            "Use start_tls=True (port 587) or use_tls=True (port 465); if this network is "
            "trusted, pass allow_plaintext_auth=True"
        )

    @staticmethod
    def _secret_forms(username: str | bytes, secret: str | bytes) -> list[str]:
        """The secret as it could come back in a reply: as is, and in each AUTH encoding."""
        forms = Secret(secret).forms()
        forms.append(plain_encode(username, secret).decode("ascii"))
        forms.append(xoauth2_encode(username, secret).decode("ascii"))
        return sorted(set(forms), key=len, reverse=True)

    @staticmethod
    def _scrub(response: SMTPResponse, forms: list[str]) -> SMTPResponse:
        """The reply with any echo of the credentials removed."""
        message = response.message
        for form in forms:
            message = message.replace(form, "********")
        return response if message == response.message else SMTPResponse(response.code, message)

    async def _auth_exchange(
        self,
        username: str | bytes,
        secret: str | bytes,
        first: bytes,
        answer: Callable[[SMTPResponse], bytes],
        timeout: Timeout,
    ) -> SMTPResponse:
        """Send ``first``, then ``answer(challenge)`` to each 334 (at most three), and check for 235."""
        _check_username(username)
        self._check_auth_allowed()
        limit = self._resolve(timeout)
        forms = self._secret_forms(username, secret)
        async with self._lock:
            await self._ehlo_or_helo_if_needed(limit)
            conn = self._connection()
            conn.secrets = forms
            try:
                response = self._scrub(await self._command(first, limit), forms)
                for _ in range(3):
                    if response.code != SMTPStatus.auth_continue:
                        break
                    try:
                        reply = answer(response)
                    except ValueError as exc:
                        await self._command(b"*\r\n", limit)  # cancel the exchange (RFC 4954)
                        raise SMTPAuthenticationError(response.code, str(exc)) from None
                    response = self._scrub(await self._command(reply + b"\r\n", limit), forms)
            finally:
                conn.secrets = []
        if response.code != SMTPStatus.auth_successful:
            raise SMTPAuthenticationError(response.code, response.message)
        self.authenticated_as = username.decode("utf-8", "replace") if isinstance(username, bytes) else username
        return response

    async def auth_plain(
        self, username: Union[str, bytes], password: Union[str, bytes], /, *, timeout: Timeout = _default
    ) -> SMTPResponse:
        """AUTH PLAIN (RFC 4616) with the credentials in the first line."""
        encoded = plain_encode(username, password)
        return await self._auth_exchange(
            username, password, b"AUTH PLAIN " + encoded + b"\r\n", lambda _: encoded, timeout
        )

    async def auth_login(
        self, username: Union[str, bytes], password: Union[str, bytes], /, *, timeout: Timeout = _default
    ) -> SMTPResponse:
        """AUTH LOGIN: the username with the command, the password when the server asks for it."""
        user, secret = login_encode(username, password)

        def answer(challenge: SMTPResponse) -> bytes:
            # A server that ignores the initial response asks for the username
            # again: never answer that prompt with the password.
            return user if "user" in _decoded_challenge(challenge).lower() else secret

        return await self._auth_exchange(username, password, b"AUTH LOGIN " + user + b"\r\n", answer, timeout)

    async def auth_crammd5(
        self, username: Union[str, bytes], password: Union[str, bytes], /, *, timeout: Timeout = _default
    ) -> SMTPResponse:
        """AUTH CRAM-MD5 (RFC 2195): the password never crosses the wire."""
        return await self._auth_exchange(
            username, password, b"AUTH CRAM-MD5\r\n", lambda r: crammd5_answer(username, password, r.message), timeout
        )

    async def auth_xoauth2(
        self, username: Union[str, bytes], access_token: Union[str, bytes], /, *, timeout: Timeout = _default
    ) -> SMTPResponse:
        """AUTH XOAUTH2 with an OAuth 2 access token (Gmail, Outlook)."""
        return await self._auth_exchange(
            username,
            access_token,
            b"AUTH XOAUTH2 " + xoauth2_encode(username, access_token) + b"\r\n",
            lambda _: b"",  # the 334 carries the error; an empty line gets the final reply
            timeout,
        )

    async def login(
        self,
        username: Union[str, bytes],
        password: Union[str, bytes],
        /,
        *,
        method: Optional[str] = None,
        timeout: Timeout = _default,
    ) -> SMTPResponse:
        """Log in with ``method`` or, if not given, each method both sides support until one succeeds.

        Raises ``SMTPAuthenticationError`` (credentials refused),
        ``SMTPNotSupported`` (no AUTH, or no common method) or
        ``SMTPSecurityError`` (plaintext connection to another host).
        """
        self._connection()
        await self._ehlo_or_helo_if_needed(self._resolve(timeout))
        self._check_auth_allowed()
        if not self.supports_extension("auth"):
            hint = "" if self.is_tls else "; many servers offer AUTH only after STARTTLS (start_tls=True)"
            raise SMTPNotSupported(f"{self._where()} does not offer AUTH{hint}")
        if method is not None:
            chosen = method.lower()
            if chosen not in (*self.AUTH_METHODS, "xoauth2"):
                raise ValueError(
                    f"unknown AUTH method {method!r}; choose one of {', '.join(self.AUTH_METHODS)}, xoauth2"
                )
            if chosen not in self.server_auth_methods:
                offered = ", ".join(self.server_auth_methods) or "none"
                raise SMTPNotSupported(f"{self._where()} does not offer AUTH {chosen.upper()} (it offers: {offered})")
            methods = [chosen]
        else:
            methods = self.supported_auth_methods
            if not methods:
                offered = ", ".join(self.server_auth_methods) or "none"
                raise SMTPNotSupported(
                    f"no AUTH method in common: {self._where()} offers {offered}; this client supports "
                    f"{', '.join(self.AUTH_METHODS)}"
                )
        failure: SMTPAuthenticationError | None = None
        for name in methods:
            handler = getattr(self, f"auth_{name.replace('-', '')}")
            try:
                return cast(SMTPResponse, await handler(username, password, timeout=timeout))
            except SMTPAuthenticationError as exc:
                failure = exc
                if not self.is_connected:
                    break
        assert failure is not None
        raise failure

    # -- sending --------------------------------------------------------------------

    def _prepare(
        self,
        sender: str,
        recipients: Union[str, Sequence[str]],
        message: Union[str, bytes],
        mail_options: Optional[Iterable[str]],
        rcpt_options: Optional[Iterable[str]],
        *,
        index: int = 0,
        tag: Any = None,
    ) -> Prepared:
        """Validate a message against the server's extensions and encode its commands; nothing is sent.

        This runs once per message on the hot path: the command lines are
        built from already validated parts without a second scan.
        """
        if isinstance(recipients, str):
            recipients = [recipients]
        boxes = [parse_address(r) for r in recipients]
        if not boxes:
            raise ValueError("no recipients: give at least one address")
        sender_box = parse_address(sender, allow_empty=True)
        mail_opts = list(mail_options) if mail_options else []
        body = normalize_line_endings(_message_bytes(message))
        extensions = self.esmtp_extensions
        if not (sender_box.isascii() and all(box.isascii() for box in boxes)):
            if "smtputf8" not in extensions:
                raise SMTPNotSupported(
                    f"an address is not ASCII ({', '.join(a for a in [sender_box, *boxes] if not a.isascii())}) "
                    f"and {self._where()} does not offer SMTPUTF8; nothing was sent"
                )
            if not _has_option(mail_opts, "SMTPUTF8"):
                mail_opts.append("SMTPUTF8")
        if not body.isascii() and not _has_option(mail_opts, "BODY"):
            if "8bitmime" not in extensions:
                raise SMTPNotSupported(
                    f"the message holds 8-bit data and {self._where()} does not offer 8BITMIME; "
                    "send an EmailMessage with send_message(), which re-encodes it as 7-bit, or "
                    "encode the body yourself (quoted-printable or base64)"
                )
            mail_opts.append("BODY=8BITMIME")
        mail_params = b"".join(b" " + o for o in _options_bytes(mail_opts, "mail option"))
        if "size" in extensions:
            limit = self.max_message_size
            if limit is not None and len(body) > limit:
                raise SMTPMessageTooLarge(len(body), limit)
            if not _has_option(mail_opts, "SIZE"):
                mail_params = b" SIZE=%d" % len(body) + mail_params
        rcpt_params = b"".join(b" " + o for o in _options_bytes(rcpt_options, "rcpt option"))
        mail_line = b"MAIL FROM:<" + sender_box.encode("utf-8") + b">" + mail_params + b"\r\n"
        rcpt_lines = [b"RCPT TO:<" + box.encode("utf-8") + b">" + rcpt_params + b"\r\n" for box in boxes]
        chunked = "chunking" in extensions
        delivery = Delivery(index=index, tag=tag, sender=sender_box, recipients=tuple(boxes))
        return Prepared(delivery, mail_line, rcpt_lines, body if chunked else dot_stuff(body), chunked)

    def _flatten(
        self,
        message: email.message.Message,
        sender: Optional[str],
        recipients: Optional[Union[str, Sequence[str]]],
        mail_options: Optional[Iterable[str]],
    ) -> tuple[str, list[str], bytes, list[str]]:
        if sender is None:
            sender = extract_sender(message)
            if sender is None:
                raise ValueError("the message has no From or Sender header: pass sender=")
        if recipients is None:
            recipients = extract_recipients(message)
            if not recipients:
                raise ValueError("the message has no To, Cc or Bcc header: pass recipients=")
        elif isinstance(recipients, str):
            recipients = [recipients]
        recipients = list(recipients)
        options = list(mail_options or ())
        utf8 = needs_smtputf8(sender, *recipients)
        if utf8 and not self.supports_extension("smtputf8"):
            raise SMTPNotSupported(
                f"an address is not ASCII and {self._where()} does not offer SMTPUTF8; nothing was sent"
            )
        flat = flatten_message(message, utf8=utf8, eight_bit=self.supports_extension("8bitmime"))
        return sender, recipients, flat, options

    async def _deliver(self, prepared: Prepared, timeout: float | None) -> Delivery:
        conn = self._conn
        assert conn is not None
        try:
            if not self.supports_extension("pipelining"):
                return await send_sequential(conn, prepared, timeout)
            async for _ in send_pipelined(conn, iter((prepared,)), timeout):
                pass
            return prepared.delivery
        except BaseException:
            self.close()  # cancelled with replies outstanding: the session cannot continue
            raise
        finally:
            if conn.error is not None:
                self.close()

    @staticmethod
    def _result(delivery: Delivery) -> tuple[dict[str, SMTPResponse], str]:
        if delivery.error is not None:
            raise delivery.error
        assert delivery.data is not None
        return delivery.refused, delivery.data.message

    async def sendmail(
        self,
        sender: str,
        recipients: Union[str, Sequence[str]],
        message: Union[str, bytes],
        *,
        mail_options: Optional[Sequence[str]] = None,
        rcpt_options: Optional[Sequence[str]] = None,
        timeout: Timeout = _default,
    ) -> tuple[dict[str, SMTPResponse], str]:
        """Send ``message`` from ``sender`` to ``recipients``.

        Returns ``(refused, data_reply)``: the recipients the server refused
        (with its reply to each) and the text of its reply to the data (often
        a queue id). Raises ``SMTPSenderRefused``, ``SMTPRecipientsRefused``
        (all refused) or ``SMTPDataError``, after RSET. Addresses with CR/LF,
        a message over the server's SIZE, or non-ASCII without SMTPUTF8 are
        refused before anything is sent.
        """
        self._connection()
        limit = self._resolve(timeout)
        async with self._lock:
            await self._ehlo_or_helo_if_needed(limit)
            prepared = self._prepare(sender, recipients, message, mail_options, rcpt_options)
            return self._result(await self._deliver(prepared, limit))

    async def send_message(
        self,
        message: Union[email.message.EmailMessage, email.message.Message],
        *,
        sender: Optional[str] = None,
        recipients: Optional[Union[str, Sequence[str]]] = None,
        mail_options: Optional[Sequence[str]] = None,
        rcpt_options: Optional[Sequence[str]] = None,
        timeout: Timeout = _default,
    ) -> tuple[dict[str, SMTPResponse], str]:
        """Send an ``email.message`` object; sender and recipients default to its headers.

        ``Bcc`` and ``Resent-Bcc`` are never transmitted. SMTPUTF8 is used
        when an address needs it; 8-bit content goes as 8BITMIME when the
        server offers it and is re-encoded as 7-bit otherwise.
        """
        self._connection()
        limit = self._resolve(timeout)
        async with self._lock:
            await self._ehlo_or_helo_if_needed(limit)
            sender, recipients, flat, options = self._flatten(message, sender, recipients, mail_options)
            prepared = self._prepare(sender, recipients, flat, options, rcpt_options)
            return self._result(await self._deliver(prepared, limit))

    async def send_many(
        self,
        messages: Union[Iterable[Any], AsyncIterable[Any]],
        *,
        mail_options: Optional[Sequence[str]] = None,
        rcpt_options: Optional[Sequence[str]] = None,
        timeout: Timeout = _default,
    ) -> AsyncIterator[Delivery]:
        """Send many messages over one connection, overlapping round trips; yield a ``Delivery`` each, in order.

        Each item is an ``email.message.Message``, a ``(sender, recipients,
        message)`` tuple, or ``(sender, recipients, message, tag)``; the tag
        comes back on its delivery. A refused or invalid message is recorded on
        its delivery and the others go on. If the connection fails, the
        deliveries in flight are yielded with the error (``status ==
        "unknown"`` where the data had been sent) and the iteration ends:
        reconnect and send the rest. Stopping early with a transaction open
        closes the connection.
        """
        conn = self._connection()
        limit = self._resolve(timeout)
        async with self._lock:
            await self._ehlo_or_helo_if_needed(limit)
            items: Union[Iterator[Prepared | Delivery], AsyncIterator[Prepared | Delivery]]
            if isinstance(messages, AsyncIterable):
                items = self._prepare_async(messages, mail_options, rcpt_options)
            else:
                items = (
                    self._prepare_item(message, index, mail_options, rcpt_options)
                    for index, message in enumerate(messages)
                )
            task = self._pipeline_task = asyncio.current_task()
            try:
                if self.supports_extension("pipelining"):
                    engine = send_pipelined(conn, items, limit)
                    try:
                        async for delivery in engine:
                            yield delivery
                    finally:
                        await engine.aclose()  # its cleanup runs now, not whenever it is collected
                elif isinstance(items, AsyncIterator):
                    async for item in items:
                        yield await send_sequential(conn, item, limit) if isinstance(item, Prepared) else item
                        if conn.error is not None:
                            break
                else:
                    for item in items:
                        yield await send_sequential(conn, item, limit) if isinstance(item, Prepared) else item
                        if conn.error is not None:
                            break
            finally:
                if self._pipeline_task is task:
                    self._pipeline_task = None
                if self._conn is conn and not conn.is_open:
                    self.close()

    async def _prepare_async(
        self, messages: AsyncIterable[Any], mail_options: Optional[Sequence[str]], rcpt_options: Optional[Sequence[str]]
    ) -> AsyncIterator[Prepared | Delivery]:
        index = 0
        async for message in messages:
            yield self._prepare_item(message, index, mail_options, rcpt_options)
            index += 1

    def _prepare_item(
        self, item: Any, index: int, mail_options: Optional[Sequence[str]], rcpt_options: Optional[Sequence[str]]
    ) -> Prepared | Delivery:
        tag = None
        sender: Any = None
        recipients: Any = ()
        try:
            if isinstance(item, tuple) and len(item) in (3, 4):
                sender, recipients, body = item[:3]
                tag = item[3] if len(item) == 4 else None
                return self._prepare(sender, recipients, body, mail_options, rcpt_options, index=index, tag=tag)
            if isinstance(item, email.message.Message):
                sender, recipients, flat, options = self._flatten(item, None, None, mail_options)
                return self._prepare(sender, recipients, flat, options, rcpt_options, index=index)
            raise TypeError(
                "each message must be an email.message.Message or a (sender, recipients, message[, tag]) "
                f"tuple, not {type(item).__name__}"
            )
        except (ValueError, TypeError, SMTPNotSupported) as exc:
            listed = (recipients,) if isinstance(recipients, str) else tuple(recipients or ())
            return Delivery(index=index, tag=tag, sender=str(sender or ""), recipients=listed, error=exc)

    # -- synchronous twins ----------------------------------------------------------

    def _run_sync(self, method: Callable[..., Awaitable[T]], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        loop = self._loop
        if self._conn is not None and loop is not None and not loop.is_closed() and self._conn.is_open:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if loop.is_running() and loop is not running:
                return cast(T, wait_threadsafe(cast(Any, method(*args, **kwargs)), loop))
            if loop is running:
                raise SMTPException(
                    f"{method.__name__}_sync() cannot use this connection: it belongs to the event loop "
                    f"running in this thread, which a blocking call would freeze. Use "
                    f"`await client.{method.__name__}(...)` here instead"
                )
        self.close()  # a connection whose loop is gone is of no use

        async def one_shot() -> T:
            async with self:
                return await method(*args, **kwargs)

        return run_sync(one_shot)

    def sendmail_sync(
        self,
        sender: str,
        recipients: Union[str, Sequence[str]],
        message: Union[str, bytes],
        *,
        mail_options: Optional[Sequence[str]] = None,
        rcpt_options: Optional[Sequence[str]] = None,
        timeout: Timeout = _default,
    ) -> tuple[dict[str, SMTPResponse], str]:
        """``sendmail()`` from synchronous code, including inside a running event loop (Jupyter).

        Not connected: connects, sends and quits. Connected on a loop running
        in another thread (a notebook session): sends over that connection.
        """
        kwargs = {"mail_options": mail_options, "rcpt_options": rcpt_options, "timeout": timeout}
        return self._run_sync(self.sendmail, (sender, recipients, message), kwargs)

    def send_message_sync(
        self,
        message: Union[email.message.EmailMessage, email.message.Message],
        *,
        sender: Optional[str] = None,
        recipients: Optional[Union[str, Sequence[str]]] = None,
        mail_options: Optional[Sequence[str]] = None,
        rcpt_options: Optional[Sequence[str]] = None,
        timeout: Timeout = _default,
    ) -> tuple[dict[str, SMTPResponse], str]:
        """``send_message()`` from synchronous code, including inside a running event loop (Jupyter)."""
        kwargs = {
            "sender": sender,
            "recipients": recipients,
            "mail_options": mail_options,
            "rcpt_options": rcpt_options,
            "timeout": timeout,
        }
        return self._run_sync(self.send_message, (message,), kwargs)


def _decoded_challenge(challenge: SMTPResponse) -> str:
    try:
        return base64.b64decode(challenge.message, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return challenge.message


def _check_username(username: str | bytes) -> None:
    """Refuse control characters in a login name: base64 hides them on the wire, not from the server.

    A NUL shifts the fields of AUTH PLAIN, a ^A those of XOAUTH2 ('user=U^Aauth=Bearer T').
    """
    text = username.decode("utf-8", "replace") if isinstance(username, bytes) else username
    check_argument(text, "AUTH username")


def _check_timeout(timeout: Any) -> None:
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds or None (no limit), not {timeout!r}")


def _message_bytes(message: Union[str, bytes, bytearray, memoryview]) -> bytes:
    if isinstance(message, str):
        return message.encode("utf-8")
    if isinstance(message, bytes):
        return message
    if isinstance(message, (bytearray, memoryview)):
        return bytes(message)
    raise TypeError(
        f"the message must be str or bytes, not {type(message).__name__}; use send_message() for email.message objects"
    )


def _build_tls_context(
    validate_certs: bool, cert_bundle: Optional[str], client_cert: Optional[str], client_key: Optional[str]
) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cert_bundle)
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert is not None:
        context.load_cert_chain(client_cert, keyfile=client_key)
    return context
