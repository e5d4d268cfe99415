"""One connection's I/O: queue command lines, write them in one go, read their replies in order.

The protocol counts how many replies it expects; a reply nobody asked for is
dropped (a 421 closes the connection), so a server cannot slip an answer in
ahead of a command. Every wait is bounded by a timer instead of
``asyncio.wait_for``, which keeps the per-reply cost low.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Sequence
from typing import Any, cast

from .errors import (
    SMTPException,
    SMTPProtocolError,
    SMTPReadTimeoutError,
    SMTPServerDisconnected,
    SMTPTimeoutError,
    tls_error,
)
from .protocol import ReplyParser
from .redaction import Scrubber, redact_command
from .response import SMTPResponse
from .transcript import Payload, Transcript, render

__all__ = ["Connection", "describe_tls_error", "duration"]


def duration(seconds: float | None) -> str:
    """``1 second``, ``0.5 seconds``, ``30 seconds``: a timeout in a message."""
    if seconds is None:
        return "its time limit"
    return "1 second" if seconds == 1 else f"{seconds:g} seconds"


#: Characters of one reply the transcript keeps. It holds 2,000 entries; without
#: this cap a server sending 64 KiB replies (even ones nobody asked for, to an
#: idle client) would pin over 120 MB per connection in it.
TRANSCRIPT_REPLY_LIMIT = 1000


def _kept(reply: SMTPResponse) -> Payload:
    """The reply as the transcript keeps it: whole, or cut to ``TRANSCRIPT_REPLY_LIMIT`` characters."""
    if len(reply.message) <= TRANSCRIPT_REPLY_LIMIT:
        return reply
    text = render(reply)
    return f"{text[:TRANSCRIPT_REPLY_LIMIT]} [... {len(text) - TRANSCRIPT_REPLY_LIMIT:,} more characters not kept]"


def describe_tls_error(exc: BaseException, host: str | None) -> str:
    """A sentence on why TLS failed, and what to do about it."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or str(exc)
        return (
            f"the TLS certificate of {host or 'the server'} failed verification ({reason}); "
            "pass cert_bundle='ca.pem' to trust its issuer, or validate_certs=False to "
            "skip verification on a network you trust"
        )
    hint = ""
    if "certificate" in str(exc).lower() or "handshake failure" in str(exc).lower():
        hint = "; if the server asks for a client certificate, pass client_cert= and client_key="
    return f"the TLS handshake with {host or 'the server'} failed: {exc}{hint}"


class Connection(asyncio.Protocol):
    """Bytes in and out of one socket, and the replies the client is waiting for."""

    def __init__(self, loop: asyncio.AbstractEventLoop, transcript: Transcript) -> None:
        self.loop = loop
        self.transcript = transcript
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = loop.create_future()
        self.error: SMTPException | None = None
        #: What ended the connection, as the transport said (an ``ssl.SSLError`` for a TLS alert).
        self.lost: BaseException | None = None
        self.quit_sent = False
        #: Set by send_many() while it waits for its caller with a transaction
        #: open (data still due, or an RSET owed).
        self.transaction_open = False
        self._parser = ReplyParser()
        self._replies: collections.deque[SMTPResponse] = collections.deque()
        self._expected = 1  # the greeting
        self._outgoing: list[bytes] = []
        self._shown: list[Payload] = []
        self._flush_due = False  # flush_soon() has a write scheduled
        self._waiter: asyncio.Future[None] | None = None
        self._want = 0
        self._paused = False
        self._writable: asyncio.Future[None] | None = None
        self._discarding = False
        self._in_auth = False
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._timeout = 0.0
        #: Set by the client during AUTH: echoes of the credentials are removed from every reply.
        self.scrubber: Scrubber | None = None

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._discarding or self.error is not None:
            return
        try:
            replies = self._parser.feed(data)
        except SMTPProtocolError as exc:
            self.transcript.record("*", f"protocol error: {exc.message}")
            self._fail(exc)
            return
        shown: list[Payload] = []
        scrubber = self.scrubber
        for reply in replies:
            if scrubber is not None:
                reply = scrubber.reply(reply)
            if self._expected:
                self._expected -= 1
                self._replies.append(reply)
                if len(reply.message) <= TRANSCRIPT_REPLY_LIMIT:
                    shown.append(reply)
                else:
                    shown.append(_kept(reply))
                if reply.code != 334:
                    self._in_auth = False
            elif reply.code == 421:
                self.transcript.record_many("<", [*shown, _kept(reply)])
                self._fail(SMTPServerDisconnected(f"the server is closing the connection: {reply}"))
                return
            else:
                self.transcript.record_many("<", shown)
                shown = []
                self.transcript.record("*", f"ignored a reply nobody asked for: {render(_kept(reply))}")
        if shown:
            self.transcript.record_many("<", shown)
        waiter = self._waiter
        if waiter is not None and len(self._replies) >= self._want and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        return False  # let the transport close; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc
        if self.quit_sent and self._expected:
            # The server closed after QUIT without its 221: that is what QUIT asks for.
            self._expected -= 1
            self._replies.append(SMTPResponse(221, "connection closed after QUIT"))
            waiter = self._waiter
            if waiter is not None and len(self._replies) >= self._want and not waiter.done():
                waiter.set_result(None)
        detail = f": {exc}" if exc else ""
        mid = " in the middle of a reply" if self._parser.has_partial else ""
        self._fail(SMTPServerDisconnected(f"the server closed the connection{mid}{detail}"))
        self.transcript.record("*", "connection closed")
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # -- state ----------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        transport = self.transport
        return self.error is None and transport is not None and not transport.is_closing()

    @property
    def is_tls(self) -> bool:
        return self.extra("sslcontext") is not None

    def extra(self, key: str) -> Any:
        return self.transport.get_extra_info(key) if self.transport is not None else None

    def _fail(self, exc: SMTPException) -> None:
        """Make the connection unusable: wake the waiter with ``exc`` and close the transport."""
        if self.error is None:
            self.error = exc
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        writable = self._writable
        if writable is not None and not writable.done():
            writable.set_exception(exc)
        if self.transport is not None and not self.transport.is_closing():
            self._close_transport()

    def _close_transport(self) -> None:
        assert self.transport is not None
        if self.is_tls:
            self.transport.abort()  # no close_notify exchange that could hang
        else:
            self.transport.close()

    def close(self, reason: str = "the connection was closed by the client") -> None:
        self._fail(SMTPServerDisconnected(reason))

    # -- writing --------------------------------------------------------------

    def queue_command(self, line: bytes) -> None:
        """Queue one CRLF-terminated command line that expects one reply."""
        self._outgoing.append(line)
        self._expected += 1
        if self._in_auth or line[:5].upper() == b"AUTH ":
            shown, self._in_auth = redact_command(line, self._in_auth)
            self._shown.append(shown)
        else:
            self._shown.append(line)

    @property
    def has_output(self) -> bool:
        """True if something is queued and not yet written."""
        return bool(self._outgoing)

    def queue_many(self, pieces: Sequence[tuple[bytes, int, Payload]]) -> int:
        """Queue ``(bytes, replies expected, as shown)`` pieces in order; return the size of the largest."""
        largest = 0
        outgoing, shown = self._outgoing, self._shown
        for data, expect, text in pieces:
            outgoing.append(data)
            shown.append(text)
            self._expected += expect
            if len(data) > largest:
                largest = len(data)
        return largest

    def queue_data(self, payload: bytes, *, expect: int = 1, shown: Payload) -> None:
        """Queue message data (after DATA, or a BDAT chunk) that expects ``expect`` replies."""
        self._outgoing.append(payload)
        self._expected += expect
        self._shown.append(shown)

    def flush(self) -> None:
        """Write everything queued in one call."""
        outgoing, shown = self._outgoing, self._shown
        if self.error is not None:
            outgoing.clear()
            shown.clear()
            raise self.error
        transport = self.transport
        if transport is None or transport.is_closing():
            outgoing.clear()
            shown.clear()
            self._fail(SMTPServerDisconnected("the connection is closed"))
            assert self.error is not None
            raise self.error
        if len(outgoing) == 1:
            transport.write(outgoing[0])
        else:
            transport.write(b"".join(outgoing))
        outgoing.clear()
        self.transcript.record_many(">", shown)
        shown.clear()

    def flush_soon(self) -> None:
        """Write what is queued when the event loop next runs, unless ``flush()`` comes first.

        For a caller about to await something that may or may not wait: if it
        waits, the data goes out at once; if it does not, what it queues next
        shares the same write. A failure is kept in ``error``, for the next
        ``flush()`` or ``read()`` to raise.
        """
        if not self._flush_due:
            self._flush_due = True
            self.loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_due = False
        if self._outgoing and self.error is None:
            try:
                self.flush()
            except SMTPException:
                pass  # in self.error now: raised by the next flush() or read()

    async def wait_writable(self, timeout: float | None) -> None:
        """Wait while the write buffer is over its high-water mark.

        The timeout bounds a period without progress, not the whole transfer,
        so a large message on a slow link is not cut off while it still moves.
        """
        while self._paused:
            if self.error is not None:
                raise self.error
            assert self.transport is not None
            before = self.transport.get_write_buffer_size()
            waiter = self._writable = self.loop.create_future()
            handle = self.loop.call_later(timeout, _settle, waiter) if timeout is not None else None
            try:
                await waiter
            finally:
                self._writable = None
                if handle is not None:
                    handle.cancel()
            if self._paused and self.transport.get_write_buffer_size() >= before:
                exc = SMTPTimeoutError(f"sending message data made no progress for {duration(timeout)}")
                self._fail(exc)
                raise exc

    # -- reading --------------------------------------------------------------

    async def read(self, count: int, timeout: float | None) -> list[SMTPResponse]:
        """The next ``count`` replies, waiting at most ``timeout`` seconds for them.

        On a timeout or a lost connection the error is raised and the replies
        that did arrive stay available to ``take_arrived()``.
        """
        replies = self._replies
        if len(replies) < count:
            if self.error is not None:
                raise self.error
            if timeout is not None and timeout <= 0:  # expired already, as asyncio.wait_for(..., 0) is
                self._timeout = timeout
                self._expire()
                assert self.error is not None
                raise self.error
            waiter = self._waiter = self.loop.create_future()
            self._want = count
            if timeout is not None:
                self._arm(timeout)
            try:
                await waiter
            finally:
                self._waiter = None
        if count == 1:
            return [replies.popleft()]
        return [replies.popleft() for _ in range(count)]

    def take_arrived(self) -> list[SMTPResponse]:
        """Replies that arrived before a failure, in order."""
        arrived = list(self._replies)
        self._replies.clear()
        return arrived

    def _arm(self, timeout: float) -> None:
        """Set the deadline of the current wait.

        One timer per connection checks it, re-arming itself when the deadline
        has moved on, so a read costs a clock read instead of a timer handle.
        """
        self._timeout = timeout
        self._deadline = self.loop.time() + timeout
        timer = self._timer
        if timer is None or timer.when() > self._deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(self._deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # nothing is waiting: the next wait arms a new timer
        if self.loop.time() >= self._deadline:
            self._expire()
        else:
            self._timer = self.loop.call_at(self._deadline, self._check_deadline)

    def _expire(self) -> None:
        self.transcript.record("*", f"no reply within {duration(self._timeout)}")
        self._fail(SMTPReadTimeoutError(f"the server did not reply within {duration(self._timeout)}"))

    # -- TLS --------------------------------------------------------------------

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str | None, timeout: float | None) -> None:
        """Upgrade to TLS after the server's 220 to STARTTLS.

        Whatever the server sent before the handshake is discarded (RFC 3207
        section 4.2): injected plaintext can never be read as a reply later.
        """
        assert self.transport is not None
        self._parser.clear()
        self._replies.clear()
        self._expected = 0
        self._discarding = True
        try:
            transport = await asyncio.wait_for(
                self.loop.start_tls(
                    self.transport,
                    self,
                    context,
                    server_hostname=server_hostname,
                    ssl_handshake_timeout=timeout or None,  # must be positive; wait_for enforces 0
                ),
                timeout,
            )
        except (asyncio.TimeoutError, ConnectionAbortedError) as exc:
            self.close()
            raise SMTPTimeoutError(f"the TLS handshake did not finish within {duration(timeout)}") from exc
        except ssl.SSLError as exc:
            self.close()
            raise tls_error(exc, describe_tls_error(exc, server_hostname)) from exc
        except OSError as exc:
            self.close()
            raise SMTPServerDisconnected(f"the connection was lost during the TLS handshake: {exc}") from exc
        finally:
            self._discarding = False
        if transport is None:  # the connection was closed during the handshake
            self.close()
            raise SMTPServerDisconnected("the connection was lost during the TLS handshake")
        self._parser.clear()
        self.transport = transport
        cipher = transport.get_extra_info("cipher")
        self.transcript.record("*", f"TLS started ({cipher[1]}, {cipher[0]})" if cipher else "TLS started")


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
