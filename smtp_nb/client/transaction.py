"""Mail transactions (MAIL, RCPT..., DATA or BDAT), one command at a time or pipelined.

``sendmail`` and ``send_many`` share this engine. With PIPELINING (RFC 2920)
a message costs two round trips on its own (envelope + DATA, then the data),
and about one when messages follow each other: the next envelope travels in
the same write as the previous message's data. With CHUNKING (RFC 3030) the
data goes in the same write as the envelope. Every reply is matched to the
command that asked for it, so each message gets exactly its own results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any, Literal, Union

from .connection import Connection
from .errors import (
    SMTPDataError,
    SMTPException,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from .response import SMTPResponse

__all__ = ["Delivery", "Prepared", "send_pipelined", "send_sequential"]

_RSET = b"RSET\r\n"
_DATA = b"DATA\r\n"
_BIG = 65536

Status = Literal["accepted", "refused", "unknown", "failed"]


@dataclasses.dataclass(eq=False, slots=True)
class Delivery:
    """What happened to one message: every reply it got, and the error if it was not delivered.

    ``status`` is ``accepted`` (the server took it for at least one recipient),
    ``refused`` (the server said no), ``unknown`` (the data was sent but the
    connection ended before the server's verdict: it may or may not have been
    delivered) or ``failed`` (nothing was accepted: the connection failed
    before the data went out, or the message was invalid).
    """

    index: int
    tag: Any
    sender: str
    recipients: tuple[str, ...]
    mail: SMTPResponse | None = None
    rcpt: dict[str, SMTPResponse] = dataclasses.field(default_factory=dict)
    data: SMTPResponse | None = None
    error: BaseException | None = None
    data_sent: bool = False
    data_start: SMTPResponse | None = dataclasses.field(default=None, repr=False)

    @property
    def accepted(self) -> list[str]:
        """Recipients the server accepted."""
        return [r for r, reply in self.rcpt.items() if reply.code in (250, 251)]

    @property
    def refused(self) -> dict[str, SMTPResponse]:
        """Recipients the server refused, with its reply to each."""
        return {r: reply for r, reply in self.rcpt.items() if reply.code not in (250, 251)}

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> Status:
        if self.error is None:
            return "accepted"
        if isinstance(self.error, (SMTPResponseException, SMTPRecipientsRefused)):
            return "refused"
        if self.data_sent and self.data is None:
            return "unknown"
        return "failed"

    @property
    def transient(self) -> bool:
        """True if trying again later may succeed (a 4xx reply, or a failure before the data was sent)."""
        error = self.error
        if error is None or self.status == "unknown":
            return False
        if isinstance(error, SMTPRecipientsRefused):
            return all(400 <= r.code < 500 for r in error.recipients)
        if isinstance(error, SMTPResponseException):
            return 400 <= error.code < 500
        return isinstance(error, (SMTPServerDisconnected, SMTPTimeoutError))


@dataclasses.dataclass(eq=False, slots=True)
class Prepared:
    """A validated message, its commands encoded, ready to go."""

    delivery: Delivery
    mail_line: bytes
    rcpt_lines: list[bytes]
    payload: bytes  # dot-stuffed, without the final ".\r\n" (DATA) or raw (BDAT)
    chunked: bool

    def queue_data(self, conn: Connection) -> None:
        shown = f"[message data: {len(self.payload):,} bytes]"
        if self.chunked:
            conn.queue_command(b"BDAT %d LAST\r\n" % len(self.payload))
            conn.queue_data(self.payload, expect=0, shown=shown)
        else:
            conn.queue_data(self.payload, expect=0, shown=shown)
            conn.queue_data(b".\r\n", expect=1, shown=".")
        self.delivery.data_sent = True


def _envelope_verdict(d: Delivery, chunked: bool) -> BaseException | None:
    """The envelope's error once its replies are in; None if it is good (or not yet answered)."""
    if d.mail is None:
        return None
    if d.mail.code != 250:
        return SMTPSenderRefused(d.mail.code, d.mail.message, d.sender)
    if len(d.rcpt) < len(d.recipients):
        return None
    refused = [SMTPRecipientRefused(reply.code, reply.message, r) for r, reply in d.refused.items()]
    if len(refused) == len(d.recipients):
        return SMTPRecipientsRefused(refused)
    start = d.data_start
    if not chunked and start is not None and start.code != 354:
        return SMTPDataError(start.code, start.message)
    return None


def _final_verdict(d: Delivery) -> BaseException | None:
    assert d.data is not None
    if d.data.code != 250:
        return SMTPDataError(d.data.code, d.data.message)
    return None


async def _ask(conn: Connection, line: bytes, timeout: float | None) -> SMTPResponse:
    conn.queue_command(line)
    conn.flush()
    return (await conn.read(1, timeout))[0]


async def _reset(conn: Connection, timeout: float | None) -> None:
    """RSET after a failed transaction; a failure here is not the caller's news."""
    if conn.is_open:
        try:
            await _ask(conn, _RSET, timeout)
        except SMTPException:
            pass


async def send_sequential(conn: Connection, p: Prepared, timeout: float | None) -> Delivery:
    """One message, one command per round trip (for servers without PIPELINING).

    Connection failures are recorded on the delivery, not raised; the
    connection is then closed (``conn.error`` is set).
    """
    d = p.delivery
    try:
        d.mail = await _ask(conn, p.mail_line, timeout)
        d.error = _envelope_verdict(d, p.chunked)
        if d.error is None:
            for recipient, line in zip(d.recipients, p.rcpt_lines, strict=True):
                d.rcpt[recipient] = await _ask(conn, line, timeout)
            d.error = _envelope_verdict(d, p.chunked)
        if d.error is None and not p.chunked:
            d.data_start = await _ask(conn, _DATA, timeout)
            d.error = _envelope_verdict(d, p.chunked)
        if d.error is None:
            p.queue_data(conn)
            conn.flush()
            await conn.wait_writable(timeout)
            d.data = (await conn.read(1, timeout))[0]
            d.error = _final_verdict(d)
    except SMTPException as exc:
        if conn.error is None:
            raise
        d.error = d.error or exc
        return d
    if d.error is not None:
        await _reset(conn, timeout)
    return d


async def send_pipelined(
    conn: Connection,
    items: Union[Iterator[Prepared | Delivery], AsyncIterator[Prepared | Delivery]],
    timeout: float | None,
) -> AsyncGenerator[Delivery, None]:
    """Deliveries for ``items``, in order, overlapping their round trips.

    Each item is a prepared message or a ready-made failed ``Delivery`` (a
    message that did not validate). An async source may wait between items, so
    the data already due is written before waiting for the next one. Each
    round writes the previous message's data, any RSET owed, and the
    next envelope in one go, then reads all their replies. If the connection
    fails, the deliveries in flight are yielded with the error (``unknown``
    where the data had been sent) and the iteration ends; nothing further is taken.
    """
    is_async = isinstance(items, AsyncIterator)
    in_body: Prepared | None = None  # DATA accepted with 354: its data goes next
    owed: list[bytes] = []  # ".\r\n" / RSET after a failed envelope
    exhausted = False
    in_flight = False  # commands written whose replies are not all read
    try:
        while True:
            expect: list[tuple[str, Delivery | None, str]] = []
            ready: list[Delivery] = []
            previous, in_body = in_body, None
            big = False
            if previous is not None:
                previous.queue_data(conn)
                expect.append(("data", previous.delivery, ""))
                ready.append(previous.delivery)
                big = len(previous.payload) > _BIG
                if is_async or big:
                    in_flight = True
                    conn.flush()
                    if big:
                        await conn.wait_writable(timeout)
            for line in owed:
                conn.queue_command(line)
                expect.append(("ignore", None, ""))
            owed = []
            current: Prepared | None = None
            while not exhausted:
                if is_async:
                    try:
                        item: Prepared | Delivery | None = await items.__anext__()  # type: ignore[union-attr]
                    except StopAsyncIteration:
                        item = None
                else:
                    item = next(items, None)  # type: ignore[arg-type]
                if item is None:
                    exhausted = True
                elif isinstance(item, Delivery):
                    ready.append(item)
                else:
                    current = item
                    break
            if current is not None:
                d = current.delivery
                conn.queue_command(current.mail_line)
                expect.append(("mail", d, ""))
                for recipient, line in zip(d.recipients, current.rcpt_lines, strict=True):
                    conn.queue_command(line)
                    expect.append(("rcpt", d, recipient))
                if current.chunked:
                    current.queue_data(conn)
                    expect.append(("data", d, ""))
                    big = big or len(current.payload) > _BIG
                else:
                    conn.queue_command(_DATA)
                    expect.append(("start", d, ""))
            if not expect:
                conn.transaction_open = in_body is not None or bool(owed)
                for delivery in ready:
                    yield delivery
                if exhausted:
                    return
                continue

            failure: SMTPException | None = None
            in_flight = True
            try:
                conn.flush()
                if big:
                    await conn.wait_writable(timeout)
                replies = await conn.read(len(expect), timeout)
            except SMTPException as exc:
                if conn.error is None:
                    raise
                failure = exc
                replies = conn.take_arrived()
            in_flight = False
            for (kind, target, recipient), reply in zip(expect, replies, strict=False):  # fewer after a failure
                if target is None:
                    pass
                elif kind == "mail":
                    target.mail = reply
                elif kind == "rcpt":
                    target.rcpt[recipient] = reply
                elif kind == "start":
                    target.data_start = reply
                else:
                    target.data = reply

            if previous is not None and previous.delivery.data is not None:
                previous.delivery.error = _final_verdict(previous.delivery)
                if previous.delivery.error is not None and current is None:
                    owed.append(_RSET)  # nothing else in flight: leave the session clean
            if current is not None:
                d = current.delivery
                d.error = _envelope_verdict(d, current.chunked)
                if d.error is None and d.data is not None:
                    d.error = _final_verdict(d)
                if d.error is not None:
                    if not current.chunked and d.data_start is not None and d.data_start.code == 354:
                        owed.append(b".\r\n")  # the server said 354 anyway: end the empty data
                    owed.append(_RSET)
                if d.error is None and not current.chunked and failure is None:
                    in_body = current  # its data goes out in the next round
                else:
                    ready.append(d)
            if failure is not None:
                for delivery in ready:
                    if delivery.error is None and delivery.data is None:
                        delivery.error = failure
            conn.transaction_open = in_body is not None or bool(owed)
            for delivery in ready:
                yield delivery
            if failure is not None or (exhausted and in_body is None and not owed):
                return
    finally:
        conn.transaction_open = False
        if conn.is_open and (in_flight or in_body is not None or owed):
            # Stopped early (by the caller or a cancellation) with a transaction
            # open: only closing the connection ends it without delivering.
            conn.close("send_many() stopped in the middle of a transaction")
