"""``SMTP``: the async client of ``spec/smtp-client-api.md``: connecting, TLS, login and mail transactions.

Its bases: ``commands.ESMTP`` (the commands one by one) and ``login.Login`` (AUTH); options come from ``options``.
"""

from __future__ import annotations

import asyncio
import email.message
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Optional, TypeVar, Union

from .commands import Timeout, default
from .connection import Connection, duration
from .errors import (
    SMTPConnectTimeoutError,
    SMTPException,
    SMTPNotSupported,
    SMTPResponseException,
)
from .locks import TaskLock
from .login import Login, is_local_peer
from .opening import make_tls_context, open_connection
from .options import (
    DEFAULT_TIMEOUT,
    OPTION_NAMES,
    SMTP_PORT,
    SMTP_STARTTLS_PORT,
    SMTP_TLS_PORT,
    ConnectOptions,
    OAuthTokenGenerator,
    SocketPathType,
    check_timeout,
)
from .prepare import Server, flatten, prepare, prepare_item
from .response import SMTPResponse, SMTPStatus
from .sending import drive
from .sync import call_sync
from .transaction import Delivery, Prepared, Transactions
from .transcript import TranscriptEntry

__all__ = [
    "DEFAULT_TIMEOUT",
    "SMTP",
    "SMTP_PORT",
    "SMTP_STARTTLS_PORT",
    "SMTP_TLS_PORT",
    "OAuthTokenGenerator",
    "SocketPathType",
    "is_local_peer",
]

T = TypeVar("T")
#: With PIPELINING and DATA, the next envelope goes in the same write as the previous message's data.
_DATA_WINDOW = 2
#: With PIPELINING and CHUNKING, whole transactions share a write: at most this many in flight by default.
BDAT_WINDOW = 8


class _Option:
    """``client.hostname`` and the like: read from, and written through, the client's ``ConnectOptions``."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, client: Any, owner: type | None = None) -> Any:
        return self if client is None else getattr(client._options, self.name)

    def __set__(self, client: Any, value: Any) -> None:
        client._options = client._options.replace(**{self.name: value})


class SMTP(Login):
    """An SMTP client: connect, talk ESMTP, send mail.

    Options given to the constructor are kept in ``client.options`` and read
    as attributes (``client.hostname``, ``client.port``, ``client.timeout``,
    ...); options given to ``connect()`` replace them, except ``timeout``,
    which applies to that connect alone. The password is kept as a ``Secret``
    that never shows in a repr, a log or a transcript. Several tasks may share
    one client: each ``async with client:`` gets a session of its own, one
    after another, and commands from several tasks take turns.
    """

    hostname = _Option()
    port = _Option()
    username = _Option()
    password = _Option()
    local_hostname = _Option()
    source_address = _Option()
    timeout = _Option()
    use_tls = _Option()
    start_tls = _Option()
    validate_certs = _Option()
    client_cert = _Option()
    client_key = _Option()
    tls_context = _Option()
    cert_bundle = _Option()
    socket_path = _Option()
    sock = _Option()
    oauth_token_generator = _Option()
    allow_plaintext_auth = _Option()

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
        super().__init__(ConnectOptions(**{k: v for k, v in locals().items() if k in OPTION_NAMES}))
        self._connecting = TaskLock()
        if on_transcript is not None:
            self.transcript.subscribe(on_transcript)

    def clone(self) -> SMTP:
        """A new, unconnected client with the same options (for more connections to the same server)."""
        copy = SMTP()
        copy._options = self._options.replace(sock=None)
        for listener in self.transcript.listeners:
            copy.transcript.subscribe(listener)
        return copy

    def __repr__(self) -> str:
        state = "connected" if self.is_connected else "not connected"
        extra = ""
        if self.is_connected and self._conn is not None and self._conn.is_tls:
            extra += ", TLS"
        if self.authenticated_as is not None:
            extra += f", logged in as {self.authenticated_as!r}"
        return f"<smtp_nb.SMTP {self._where()} {state}{extra}>"

    # -- connecting -----------------------------------------------------------

    async def connect(
        self, *, timeout: Timeout = default, options: Optional[ConnectOptions] = None, **changes: Any
    ) -> SMTPResponse:
        """Connect, read the greeting, EHLO (HELO if refused), STARTTLS as configured, log in if credentials were given.

        ``changes`` are options as the constructor takes them (``options=``
        gives a whole ``ConnectOptions``); they replace the client's for this
        and later connections. ``timeout`` applies to this connect alone.
        While another task's session is open on this client, waits until it
        is closed (at most ``timeout``: then ``SMTPConnectTimeoutError``).
        Returns the server's greeting. Raises ``SMTPConnectError`` (network
        or TLS failure), ``SMTPConnectTimeoutError``,
        ``SMTPConnectResponseError`` (greeting other than 220);
        ``SMTPException`` if this task (or the task it runs inside) already
        has it connected.
        """
        if timeout is not default:
            check_timeout(timeout)
        chosen = options if options is not None else self._options
        chosen = chosen.replace(**changes) if changes else chosen
        if self.is_connected and (self._session.get() is self._conn or not self._gate.held_by_other()):
            raise SMTPException(f"already connected to {self._where()}; call quit() or close() first")
        loop = asyncio.get_running_loop()
        patience = chosen.timeout if timeout is default else timeout  # for another task's session to close
        deadline = None if patience is None else loop.time() + patience
        async with self._connecting:
            while self.is_connected and self._gate.held_by_other():
                assert self._conn is not None
                left = None if deadline is None else max(0.0, deadline - loop.time())
                closed = await self._gate.wait_closed(self._conn.closed, left)
                if closed is None:
                    break
                if not closed:
                    raise SMTPConnectTimeoutError(
                        f"Timed out connecting to {chosen.host} on port {chosen.effective_port}: another task's "
                        f"session on this client stayed open for {duration(patience)}. To send from several tasks at "
                        "once, give each its own client (client.clone())"
                    )
            if self.is_connected:
                raise SMTPException(f"already connected to {self._where()}; call quit() or close() first")
            self._options = chosen
            if chosen.oauth_token_generator is not None and chosen.username is None:
                raise SMTPException(
                    "username is required when using oauth_token_generator: pass username= (the account "
                    "the token is for); nothing was sent"
                )
            limit = self._resolve(timeout)
            self.close()
            conn = Connection(loop, self.transcript)
            self._conn, self._loop = conn, loop
            self._gate.open(loop)
            self._session.set(conn)
            try:
                async with self._lock:
                    greeting = await open_connection(conn, self._options, limit)
                    await self._ehlo_or_helo_if_needed(limit)
                    await self._maybe_starttls(limit)
                    await self._maybe_login(limit)
            except BaseException:
                self.close()
                raise
            return greeting

    async def _maybe_starttls(self, timeout: float | None) -> None:
        opts = self._options
        if opts.use_tls or opts.start_tls is False or (self._conn is not None and self._conn.is_tls):
            return
        if self.supports_extension("starttls"):
            await self.starttls(timeout=timeout)
            await self._ehlo_or_helo_if_needed(timeout)
        elif opts.start_tls:
            raise SMTPNotSupported(
                f"STARTTLS extension not supported: {self._where()} does not offer STARTTLS, and start_tls=True "
                "requires an encrypted connection; nothing was sent. Use use_tls=True if it speaks TLS "
                "from the start (port 465)"
            )

    async def _maybe_login(self, timeout: float | None) -> None:
        opts = self._options
        if opts.username is None:
            return
        if opts.oauth_token_generator is not None:
            self._check_auth_allowed()
            if "xoauth2" not in self.server_auth_methods:
                offered = ", ".join(self.server_auth_methods).upper() or "no AUTH method"
                raise SMTPNotSupported(
                    f"oauth_token_generator was given, but {self._where()} does not support XOAUTH2 "
                    f"(it offers {offered}); no token was asked for and nothing was sent"
                )
            token = await opts.oauth_token_generator()
            await self.auth_xoauth2(opts.username, token, timeout=timeout)
        else:
            secret = opts.password.reveal() if opts.password is not None else ""
            await self.login(opts.username, secret, timeout=timeout)

    async def quit(self, *, timeout: Timeout = default) -> SMTPResponse:
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
        """Connect, or share the session this task runs inside, or take on one whose task has ended.

        While another task's session is open, ``connect()`` waits for it to close.
        """
        conn = self._conn
        if self.is_connected and conn is not None:
            if self._session.get() is conn:
                return self  # this task's session, or that of the task it was started in: shared
            if not self._gate.held_by_other():
                # Opened by a task that has ended (a notebook cell, ensure_future(connect())): this block takes
                # it on and closes it at its end; other tasks wait for that, as for any session.
                self._gate.adopt()
                self._session.set(conn)
                return self
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc_val: Optional[BaseException],
        exc_tb: Optional[TracebackType],
    ) -> None:
        conn = self._conn
        if conn is None or self._session.get() is not conn:
            return  # our session ended already (another task's may be open now): nothing of ours to close
        if self._gate.owner is not asyncio.current_task():
            return  # a task started inside the session: the task that opened it closes it
        if isinstance(exc_val, (ConnectionError, TimeoutError, asyncio.CancelledError)) or not self.is_connected:
            self.close()
            return
        try:
            await self.quit()
        except SMTPException:
            pass
        finally:
            if self._conn is conn:  # else quit() handed the client on: a waiting task's session is open now
                self.close()

    # -- TLS and authentication ---------------------------------------------------

    async def starttls(
        self,
        tls_context: Optional[ssl.SSLContext] = None,
        *,
        server_hostname: Optional[str] = None,
        validate_certs: Optional[bool] = None,
        client_cert: Any = default,
        client_key: Any = default,
        cert_bundle: Any = default,
        timeout: Timeout = default,
    ) -> SMTPResponse:
        """Upgrade the connection to TLS (RFC 3207); the server's extensions are then forgotten and asked again.

        Raises ``ValueError`` for options that do not go together (the
        client's options stay as they were), ``SMTPNotSupported`` if the
        server does not offer STARTTLS, ``SMTPResponseException`` if it
        refuses, ``SMTPTLSError`` (an ``SMTPConnectError`` and an
        ``ssl.SSLError``) if the handshake fails.
        """
        conn = self._connection()
        if conn.is_tls:
            raise SMTPException(
                "Connection already using TLS: this connection already uses TLS, so STARTTLS has nothing to do"
            )
        given = {
            "tls_context": tls_context if tls_context is not None else default,
            "validate_certs": validate_certs if validate_certs is not None else default,
            "client_cert": client_cert,
            "client_key": client_key,
            "cert_bundle": cert_bundle,
        }
        chosen = self._options.replace(**{k: v for k, v in given.items() if v is not default})
        limit = self._resolve(timeout)
        async with self._lock:
            await self._ehlo_or_helo_if_needed(limit)
            if not self.supports_extension("starttls"):
                raise SMTPNotSupported(f"STARTTLS extension not supported: {self._where()} does not offer STARTTLS")
            context = await make_tls_context(chosen)  # a missing certificate file fails here: nothing is kept
            self._options = chosen
            response = await self._command(b"STARTTLS\r\n", limit)
            if response.code != SMTPStatus.ready:
                raise SMTPResponseException(response.code, response.message)
            hostname = server_hostname or self._options.hostname
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

    # -- sending --------------------------------------------------------------------

    def _server(self) -> Server:
        return Server(self.esmtp_extensions, self._where)

    def _transactions(self, window: int = 1) -> Transactions:
        """The engine for this server: one command at a time without PIPELINING, else batched.

        With CHUNKING too, up to ``window`` whole transactions go in one write (starting at two and
        growing as messages are accepted); with DATA each must wait for its 354, so two overlap.
        """
        pipelining = self.supports_extension("pipelining")
        if self.supports_extension("chunking"):
            return Transactions(pipelining=pipelining, window=window, start=min(2, window))
        return Transactions(pipelining=pipelining, window=_DATA_WINDOW)

    async def _deliver(self, prepared: Prepared, timeout: float | None) -> tuple[dict[str, SMTPResponse], str]:
        conn = self._conn
        assert conn is not None
        try:
            async for _ in drive(conn, self._transactions(), iter((prepared,)), timeout):
                pass
        except BaseException:
            self.close()  # cancelled with replies outstanding: the session cannot continue
            raise
        finally:
            if conn.error is not None:
                self.close()
        delivery = prepared.delivery
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
        timeout: Timeout = default,
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
            prepared = prepare(self._server(), sender, recipients, message, mail_options, rcpt_options)
            return await self._deliver(prepared, limit)

    async def send_message(
        self,
        message: Union[email.message.EmailMessage, email.message.Message],
        *,
        sender: Optional[str] = None,
        recipients: Optional[Union[str, Sequence[str]]] = None,
        mail_options: Optional[Sequence[str]] = None,
        rcpt_options: Optional[Sequence[str]] = None,
        timeout: Timeout = default,
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
            server = self._server()
            sender, recipients, flat = flatten(server, message, sender, recipients)
            prepared = prepare(server, sender, recipients, flat, mail_options, rcpt_options)
            return await self._deliver(prepared, limit)

    async def send_many(
        self,
        messages: Union[Iterable[Any], AsyncIterable[Any]],
        *,
        mail_options: Optional[Sequence[str]] = None,
        rcpt_options: Optional[Sequence[str]] = None,
        timeout: Timeout = default,
        window: int = BDAT_WINDOW,
    ) -> AsyncIterator[Delivery]:
        """Send many messages over one connection, overlapping round trips; yield a ``Delivery`` each, in order.

        Each item is an ``email.message.Message``, a ``(sender, recipients,
        message)`` tuple, or ``(sender, recipients, message, tag)``; the tag
        comes back on its delivery. A refused or invalid message is recorded on
        its delivery and the others go on. If the connection fails, the
        deliveries in flight are yielded with the error (``status ==
        "unknown"`` where the data had been sent) and the iteration ends:
        reconnect and send the rest. Stopping early with a transaction open
        closes the connection. Where the server offers PIPELINING and CHUNKING,
        up to ``window`` whole transactions share a round trip; it is also the
        most messages that can end ``unknown`` if the connection is cut.
        """
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a whole number of at least 1, not {window!r}")
        conn = self._connection()
        limit = self._resolve(timeout)
        async with self._lock:
            await self._ehlo_or_helo_if_needed(limit)
            server = self._server()
            items: Union[Iterator[Prepared | Delivery], AsyncIterator[Prepared | Delivery]]
            if isinstance(messages, AsyncIterable):
                items = _prepare_async(server, messages, mail_options, rcpt_options)
            else:
                items = (
                    prepare_item(server, message, index, mail_options, rcpt_options)
                    for index, message in enumerate(messages)
                )
            task = self._pipeline_task = asyncio.current_task()
            deliveries = drive(conn, self._transactions(window), items, limit)
            try:
                async for delivery in deliveries:
                    yield delivery
            finally:
                await deliveries.aclose()  # its cleanup runs now, not whenever it is collected
                if self._pipeline_task is task:
                    self._pipeline_task = None
                if self._conn is conn and not conn.is_open:
                    self.close()

    # -- synchronous twins ----------------------------------------------------------

    def _run_sync(self, method: Callable[..., Awaitable[T]], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        """Run ``method`` from synchronous code: on the connection's loop if it runs elsewhere, else one-shot."""
        loop = self._loop if self._conn is not None and self._conn.is_open else None

        async def one_shot() -> T:
            self.close()  # a connection whose loop is gone is of no use
            async with self:
                return await method(*args, **kwargs)

        async def operation() -> T:
            return await method(*args, **kwargs)

        return call_sync(loop, operation, one_shot, method.__name__)

    def sendmail_sync(
        self,
        sender: str,
        recipients: Union[str, Sequence[str]],
        message: Union[str, bytes],
        *,
        mail_options: Optional[Sequence[str]] = None,
        rcpt_options: Optional[Sequence[str]] = None,
        timeout: Timeout = default,
    ) -> tuple[dict[str, SMTPResponse], str]:
        """``sendmail()`` from synchronous code, including inside a running event loop (Jupyter).

        Not connected: connects, sends and quits. Connected on a loop running
        in another thread: sends over that connection.
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
        timeout: Timeout = default,
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


async def _prepare_async(
    server: Server,
    messages: AsyncIterable[Any],
    mail_options: Optional[Sequence[str]],
    rcpt_options: Optional[Sequence[str]],
) -> AsyncIterator[Prepared | Delivery]:
    index = 0
    async for message in messages:
        yield prepare_item(server, message, index, mail_options, rcpt_options)
        index += 1
