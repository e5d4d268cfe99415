"""The SMTP commands one at a time (EHLO, HELO, NOOP, VRFY, MAIL, RCPT, DATA...), and the session state they read.

``ESMTP`` is the base of ``smtp.SMTP``, which adds connecting, TLS, login and whole mail transactions.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, Optional, Union

from .addresses import check_argument, parse_address
from .connection import Connection
from .errors import (
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupported,
    SMTPRecipientRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from .locks import SessionGate, TaskLock
from .options import ConnectOptions, helo_name, local_fqdn
from .prepare import max_message_size, message_bytes
from .protocol import (
    dot_stuff,
    encode_command,
    has_option,
    mail_command,
    normalize_line_endings,
    options_bytes,
    parse_ehlo,
    rcpt_command,
)
from .response import SMTPResponse, SMTPStatus
from .transcript import Transcript

__all__ = ["ESMTP", "Timeout", "default"]


class _Default(enum.Enum):
    """Tells "not given" from None (which means "no timeout")."""

    token = 0


default = _Default.token
Timeout = Union[float, None, Literal[_Default.token]]
_NOT_CONNECTED = "Server not connected: call connect() first (or use `async with client:`)"
#: What VRFY and EXPN take: a name or an address, one word, no angle brackets (nothing to smuggle parameters in).
_LOOKUP_SEPARATORS = frozenset("<>")


class ESMTP:
    """The session's state (extensions, connection) and one method per SMTP command."""

    #: Authentication methods ``login()`` tries, preferred first.
    AUTH_METHODS: tuple[str, ...] = ("cram-md5", "plain", "login")

    def __init__(self, options: ConnectOptions) -> None:
        self._options = options
        self.transcript = Transcript()
        self._conn: Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = TaskLock()
        self._gate = SessionGate()
        #: The connection this task's context opened (or took on): tasks started inside a session share it,
        #: and a task whose session has ended cannot send on the next one (see ``_connection``).
        self._session: contextvars.ContextVar[Connection | None] = contextvars.ContextVar(
            "smtp_nb.session", default=None
        )
        self._pipeline_task: asyncio.Task[Any] | None = None
        self._reset_server_state()
        self.authenticated_as: str | None = None

    @property
    def options(self) -> ConnectOptions:
        """The connection options (``client.options.replace(...)`` makes a changed copy for ``connect()``)."""
        return self._options

    def _where(self) -> str:
        return self._options.where()

    def _resolve(self, timeout: Timeout) -> float | None:
        return self._options.timeout if timeout is default else timeout

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
        return max_message_size(self.esmtp_extensions)

    @property
    def is_tls(self) -> bool:
        """True if the connection is encrypted."""
        return self.is_connected and self._conn is not None and self._conn.is_tls

    def get_transport_info(self, key: str) -> Any:
        """Transport details: ``peername``, ``sockname``, ``socket``, ``sslcontext``,
        ``ssl_object``, ``peercert``, ``cipher``, ``compression``."""
        if not self.is_connected or self._conn is None:
            raise SMTPServerDisconnected(_NOT_CONNECTED)
        if key == "sslobject":
            key = "ssl_object"
        return self._conn.extra(key)

    def _connection(self) -> Connection:
        """The open connection, checked to belong to the running event loop."""
        conn = self._conn
        if conn is None or not self.is_connected:
            raise SMTPServerDisconnected(
                _NOT_CONNECTED
                if conn is None
                else "Server not connected: the connection is closed; call connect() to open a new one"
            )
        session = self._session.get()
        if session is not None and session is not conn:
            raise SMTPServerDisconnected(
                "Server not connected: this task's session on this client was closed, and the connection open "
                "now is another task's session; nothing was sent on it. Call connect() (or async with) again"
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

    def close(self) -> None:
        """Close the connection at once, without QUIT."""
        conn = self._conn
        if conn is not None and conn.is_open:
            if self._loop is not None and not self._loop.is_closed():
                conn.close()
        self._conn = None
        self._reset_server_state()
        self.authenticated_as = None
        self._gate.close()

    # -- one command ----------------------------------------------------------------

    async def _command(self, line: bytes, timeout: float | None) -> SMTPResponse:
        """Send one command line and read its reply; a timeout or cancellation closes the connection."""
        conn = self._conn
        if conn is None:
            raise SMTPServerDisconnected(_NOT_CONNECTED)
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

    async def execute_command(
        self,
        *args: Union[str, bytes, float, None],
        command: Union[str, bytes, None] = None,
        timeout: Timeout = default,
    ) -> SMTPResponse:
        """Send any command and return the reply, whatever its code.

        ``execute_command("NOOP")``, ``execute_command(b"MAIL", b"FROM:<a@example.com>")``
        and the spec's ``execute_command(command, timeout)``, positional or by keyword, all work.
        """
        parts = list(args)
        if len(parts) == 2 and (parts[1] is None or isinstance(parts[1], (int, float))):
            timeout = parts.pop()  # type: ignore[assignment]
        if command is not None:
            parts.insert(0, command)
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
        if self._options.local_hostname is None:
            if local_fqdn.cache_info().currsize:
                name = local_fqdn()
            else:  # the first lookup may wait on DNS: not on the event loop
                name = await asyncio.get_running_loop().run_in_executor(None, local_fqdn)
            if not ("." in name and name.isascii() and all(c.isalnum() or c in ".-_" for c in name)):
                sockname = self._conn.extra("sockname") if self._conn is not None else None
                if isinstance(sockname, tuple):
                    ip = ipaddress.ip_address(sockname[0].split("%", 1)[0])
                    name = f"[IPv6:{ip}]" if ip.version == 6 else f"[{ip}]"
                else:
                    name = "localhost"
            self._options = self._options.replace(local_hostname=name)
        assert self._options.local_hostname is not None
        return self._options.local_hostname

    async def _hello(self, verb: str, name: Optional[str], timeout: Timeout) -> SMTPResponse:
        """HELO or EHLO with ``name`` (None: this host's name); a refusal raises ``SMTPHeloError``."""
        self._connection()
        name = helo_name(name, f"{verb} name") if name is not None else await self._local_name()
        line = encode_command(verb.encode("ascii"), name.encode("utf-8"))
        async with self._lock:
            response = await self._command(line, self._resolve(timeout))
        if response.code != SMTPStatus.completed:
            raise SMTPHeloError(response.code, response.message)
        return response

    async def helo(
        self, name: Optional[str] = None, *, hostname: Optional[str] = None, timeout: Timeout = default
    ) -> SMTPResponse:
        """Send HELO (``name``, or ``hostname=``; None: this host's name). Raises ``SMTPHeloError``."""
        response = await self._hello("HELO", name if name is not None else hostname, timeout)
        self.last_helo_response = response
        self.last_ehlo_response = None  # after HELO the session is plain SMTP: no extensions
        return response

    async def ehlo(
        self, name: Optional[str] = None, *, hostname: Optional[str] = None, timeout: Timeout = default
    ) -> SMTPResponse:
        """Send EHLO and learn the server's extensions. Raises ``SMTPHeloError``."""
        response = await self._hello("EHLO", name if name is not None else hostname, timeout)
        self.last_ehlo_response = response
        return response

    async def _simple(
        self,
        line: bytes | Callable[[], bytes],
        ok: tuple[int, ...],
        timeout: Timeout,
        refusal: Callable[[SMTPResponse], SMTPResponseException] = lambda r: SMTPResponseException(r.code, r.message),
    ) -> SMTPResponse:
        """One command after EHLO/HELO; a reply code outside ``ok`` raises ``refusal(reply)``.

        ``line`` may be a function, called once the server's extensions are known.
        """
        self._connection()
        async with self._lock:
            await self._ehlo_or_helo_if_needed(self._resolve(timeout))
            command = line() if callable(line) else line
            response = await self._command(command, self._resolve(timeout))
        if response.code not in ok:
            raise refusal(response)
        return response

    async def help(self, command: Optional[str] = None, *, timeout: Timeout = default) -> SMTPResponse:
        """Send HELP (about ``command`` if given)."""
        parts = [b"HELP"] + ([check_argument(command, "HELP topic").encode("utf-8")] if command else [])
        return await self._simple(encode_command(*parts), (211, 214, 250), timeout)

    async def rset(self, *, timeout: Timeout = default) -> SMTPResponse:
        """Send RSET: abandon the current mail transaction."""
        return await self._simple(b"RSET\r\n", (250,), timeout)

    async def noop(self, *, timeout: Timeout = default) -> SMTPResponse:
        """Send NOOP: check the connection is alive."""
        return await self._simple(b"NOOP\r\n", (250,), timeout)

    def _lookup_line(self, verb: bytes, address: str, options: Optional[Iterable[str]]) -> Callable[[], bytes]:
        """VRFY/EXPN's line, checked now; the SMTPUTF8 check waits for the extensions (after EHLO)."""
        what = f"{verb.decode()} argument"
        check_argument(address, what)
        if not address or any(c.isspace() or c in _LOOKUP_SEPARATORS for c in address):
            raise ValueError(
                f"{what} {address!r} must be one word without spaces or '<' '>', "
                "such as a user name, a list name or user@example.com"
            )
        option_list = list(options or ())
        encoded = options_bytes(option_list, f"{verb.decode()} option")
        utf8 = has_option(option_list, "SMTPUTF8")
        if not address.isascii() and not utf8:
            raise ValueError(f"{address!r} is not ASCII: pass options=['SMTPUTF8'] (the server must offer SMTPUTF8)")

        def line() -> bytes:
            if utf8 and not self.supports_extension("smtputf8"):
                raise SMTPNotSupported(f"SMTPUTF8 is not supported by this server ({self._where()}); nothing was sent")
            return encode_command(verb, address.encode("utf-8"), *encoded)

        return line

    async def vrfy(
        self, address: str, /, *, options: Optional[Iterable[str]] = None, timeout: Timeout = default
    ) -> SMTPResponse:
        """Send VRFY: ask whether the server knows ``address``."""
        return await self._simple(self._lookup_line(b"VRFY", address, options), (250, 251, 252), timeout)

    async def expn(
        self, address: str, /, *, options: Optional[Iterable[str]] = None, timeout: Timeout = default
    ) -> SMTPResponse:
        """Send EXPN: ask the server to expand the mailing list ``address``."""
        return await self._simple(self._lookup_line(b"EXPN", address, options), (250,), timeout)

    @staticmethod
    def _address_line(
        build: Callable[[bytes, Sequence[bytes]], bytes],
        address: str,
        options: Sequence[str],
        encoding: str,
        null: bool,
    ) -> bytes:
        """MAIL FROM/RCPT TO with ``address`` encoded with ``encoding``: ``UnicodeEncodeError`` if it does not fit."""
        mailbox = parse_address(address, allow_empty=null)
        try:
            encoded = mailbox.encode(encoding)
        except UnicodeEncodeError as exc:
            raise UnicodeEncodeError(
                exc.encoding,
                exc.object,
                exc.start,
                exc.end,
                f"{exc.reason}; {address!r} is not ASCII: pass encoding='utf-8' (with the SMTPUTF8 option, "
                "which the server must offer), or use sendmail()/send_message(), which do this for you",
            ) from None
        return build(encoded, options_bytes(options, "option"))

    async def mail(
        self,
        sender: str,
        options: Optional[Sequence[str]] = None,
        *,
        encoding: str = "ascii",
        timeout: Timeout = default,
    ) -> SMTPResponse:
        """Send MAIL FROM: start a transaction. Raises ``SMTPSenderRefused``."""
        line = self._address_line(mail_command, sender, list(options or ()), encoding, True)
        return await self._simple(line, (250,), timeout, lambda r: SMTPSenderRefused(r.code, r.message, sender))

    async def rcpt(
        self,
        recipient: str,
        options: Optional[Sequence[str]] = None,
        *,
        encoding: str = "ascii",
        timeout: Timeout = default,
    ) -> SMTPResponse:
        """Send RCPT TO: add a recipient. Raises ``SMTPRecipientRefused``."""
        line = self._address_line(rcpt_command, recipient, list(options or ()), encoding, False)
        return await self._simple(
            line, (250, 251), timeout, lambda r: SMTPRecipientRefused(r.code, r.message, recipient)
        )

    async def data(self, message: Union[str, bytes], /, *, timeout: Timeout = default) -> SMTPResponse:
        """Send DATA and the message (dot-stuffed, CRLF line endings). Raises ``SMTPDataError``."""
        payload = dot_stuff(normalize_line_endings(message_bytes(message)))
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
