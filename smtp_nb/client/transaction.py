"""Mail transactions as a sans-IO state machine: prepared messages in, bytes out; replies in, deliveries out.

No socket here: ``sending.drive`` moves the bytes, and the tests feed replies in every chunking.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
from collections.abc import Iterable
from typing import Any, Literal, Union

from .errors import (
    SMTPDataError,
    SMTPProtocolError,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from .protocol import ReplyParser, bdat_command
from .response import SMTPResponse

__all__ = ["Delivery", "Outgoing", "Prepared", "Transactions"]

Status = Literal["accepted", "refused", "unknown", "failed"]
#: One piece to write: its bytes, how many replies it asks for, and how the transcript shows it.
Outgoing = tuple[bytes, int, Union[bytes, str]]

_RSET = b"RSET\r\n"
_DATA = b"DATA\r\n"
_END = b".\r\n"
# What a reply answers (the first item of each expectation).
_MAIL, _RCPT, _START, _FINAL, _IGNORED = range(5)


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


class _Txn:
    """One message's progress: what has been sent, how many replies are outstanding, whether it is judged."""

    __slots__ = (
        "body_due",
        "body_sent",
        "delivery",
        "done",
        "last_sent",
        "mail_sent",
        "pending",
        "prepared",
        "rcpts_sent",
        "start_sent",
    )

    def __init__(self, prepared: Prepared | None, delivery: Delivery) -> None:
        self.prepared = prepared
        self.delivery = delivery
        self.done = prepared is None  # a message that did not validate is judged already
        #: True once its last command is on the wire (or it is judged): the next transaction may follow it.
        self.last_sent = self.done
        self.mail_sent = self.start_sent = self.body_sent = False
        #: True while the server's 354 is in and the data not yet sent: its last command is ready to go.
        self.body_due = False
        self.rcpts_sent = 0
        self.pending = 0


def _envelope_verdict(d: Delivery) -> BaseException | None:
    """The envelope's error once its replies are in; None if it is good (or not yet answered)."""
    if d.mail is None:
        return None
    if d.mail.code != 250:
        return SMTPSenderRefused(d.mail.code, d.mail.message, d.sender)
    rcpt = d.rcpt
    if len(rcpt) < len(d.recipients):
        return None
    refused = [SMTPRecipientRefused(reply.code, reply.message, r) for r, reply in rcpt.items() if reply.code > 251]
    if refused and len(refused) == len(d.recipients):
        return SMTPRecipientsRefused(refused)
    start = d.data_start
    if start is not None and start.code != 354:
        return SMTPDataError(start.code, start.message)
    return None


def _temporary(error: BaseException) -> bool:
    if isinstance(error, SMTPRecipientsRefused):
        return any(400 <= r.code < 500 for r in error.recipients)
    return isinstance(error, SMTPResponseException) and 400 <= error.code < 500


class Transactions:
    """The client's side of a series of mail transactions on one session.

    ``add()`` a prepared message (or a ready-made failed ``Delivery``), write
    what ``send()`` returns, ``receive()`` each reply, take the finished
    ``deliveries()`` in order. Without PIPELINING one command is outstanding
    at a time. With it, each message's envelope (MAIL, RCPT..., then DATA, or
    BDAT with the data) goes in one write, and up to ``window`` messages are
    in flight: a message may start once the one before it has sent its last
    command, so with DATA a window of two puts the next envelope in the same
    write as the previous message's data. After a refusal the engine owes the
    server an RSET (and the end of an empty data block if it said 354 anyway).

    With BDAT a message's last command is its data, so a window of W puts W
    whole transactions in one write. ``start`` makes the window adapt: it
    begins there, grows by one for each message accepted (doubling per round
    trip) up to ``window``, and falls back to 1 on a temporary (4xx) refusal,
    the usual sign of a server that wants the client to slow down.
    """

    def __init__(self, *, pipelining: bool, window: int = 1, start: int | None = None) -> None:
        if window < 1:
            raise ValueError(f"window must be 1 or more, not {window}")
        self.pipelining = pipelining
        self.most = window if pipelining else 1
        #: How many messages may be in flight now (adapts between 1 and ``most`` when ``start`` is given).
        self.window = self.most if start is None else max(1, min(start, self.most))
        self.closed = False
        self._txns: collections.deque[_Txn] = collections.deque()
        self._expect: collections.deque[tuple[int, _Txn | None, str]] = collections.deque()
        self._owed: list[bytes] = []
        self._in_flight = 0
        self._parser: ReplyParser | None = None

    # -- state --------------------------------------------------------------------

    @property
    def awaiting(self) -> int:
        """Replies written for and not yet received."""
        return len(self._expect)

    @property
    def room(self) -> bool:
        """True if a message added now could start with the next ``send()``: the driver should add one.

        Transactions start in order, each once the one before has sent its last
        command (without PIPELINING: once it is judged), so the newest one
        speaks for all; one whose data is due counts, as ``send()`` writes it first.
        """
        if self.closed:
            return False
        txns = self._txns
        if not txns:
            return True
        newest = txns[-1]
        if not self.pipelining:
            return newest.done
        return self._in_flight < self.window and (newest.last_sent or newest.body_due)

    @property
    def idle(self) -> bool:
        """Nothing in flight, owed or waiting to start."""
        return not self._expect and not self._owed and all(txn.done for txn in self._txns)

    @property
    def transaction_open(self) -> bool:
        """True while the session is inside a transaction: stopping now needs the connection closed."""
        return not self.closed and (bool(self._expect) or bool(self._owed) or self._in_flight > 0)

    # -- messages in, bytes out -------------------------------------------------------

    def add(self, item: Prepared | Delivery) -> None:
        """Queue a message; a ``Delivery`` (a message that did not validate) comes out in its turn."""
        if isinstance(item, Delivery):
            self._txns.append(_Txn(None, item))
        else:
            self._txns.append(_Txn(item, item.delivery))

    def send(self) -> list[Outgoing]:
        """What may be written now, in order (empty if the next step needs a reply first)."""
        out: list[Outgoing] = []
        if self.closed or (not self.pipelining and self._expect):
            return out
        while self._owed:
            line = self._owed.pop(0)
            out.append((line, 1, "." if line == _END else line))
            self._expect.append((_IGNORED, None, ""))
            if not self.pipelining:
                return out
        for txn in self._txns:
            if txn.done:
                continue
            if not txn.mail_sent and self._in_flight >= self.window:
                break
            self._steps(txn, out)
            if out and not self.pipelining:
                break
            if not txn.last_sent:
                break
        return out

    def _steps(self, txn: _Txn, out: list[Outgoing]) -> None:
        """Append ``txn``'s next commands: all that may go before a reply is needed (one without PIPELINING)."""
        p, d, expect = txn.prepared, txn.delivery, self._expect
        assert p is not None
        one = not self.pipelining
        if txn.body_due:  # the server said 354: the data and the final dot
            out.append((p.payload, 0, f"[message data: {len(p.payload):,} bytes]"))
            out.append((_END, 1, "."))
            expect.append((_FINAL, txn, ""))
            txn.pending += 1
            txn.body_due = False
            txn.body_sent = txn.last_sent = d.data_sent = True
            return
        if not txn.mail_sent:
            if p.chunked and self._in_flight:
                # Behind a BDAT transaction not yet judged, RSET first. If that transaction failed, a
                # server that kept it open would otherwise refuse this MAIL ("nested MAIL") and then
                # take this message's RCPT and data into the old envelope. After RSET a refused MAIL
                # leaves no transaction, so its RCPT and BDAT are refused too: its body is never accepted.
                out.append((_RSET, 1, _RSET))
                expect.append((_IGNORED, None, ""))
            txn.mail_sent = True
            self._in_flight += 1
            out.append((p.mail_line, 1, p.mail_line))
            expect.append((_MAIL, txn, ""))
            txn.pending += 1
            if one:
                return
        elif one and d.mail is None:
            return
        lines = p.rcpt_lines
        while txn.rcpts_sent < len(lines):
            line = lines[txn.rcpts_sent]
            out.append((line, 1, line))
            expect.append((_RCPT, txn, d.recipients[txn.rcpts_sent]))
            txn.pending += 1
            txn.rcpts_sent += 1
            if one:
                return
        if one and len(d.rcpt) < len(d.recipients):
            return
        if p.chunked:
            # The data goes with the envelope, before the RCPT replies are known. If every RCPT is
            # refused the server must still read the chunk and refuse the BDAT (RFC 3030: 554 "no
            # valid recipients" from Postfix), and the verdict comes from the envelope's replies
            # first (``_envelope_verdict``): refused, never accepted. Holding the data back would
            # cost a round trip per message, which is what the window is for.
            if not txn.body_sent:
                line = bdat_command(len(p.payload))
                out.append((line, 1, line))
                out.append((p.payload, 0, f"[message data: {len(p.payload):,} bytes]"))
                expect.append((_FINAL, txn, ""))
                txn.pending += 1
                txn.body_sent = txn.last_sent = d.data_sent = True
        elif not txn.start_sent:
            txn.start_sent = True
            out.append((_DATA, 1, _DATA))
            expect.append((_START, txn, ""))
            txn.pending += 1

    # -- replies in, deliveries out -------------------------------------------------------

    def receive(self, reply: SMTPResponse) -> None:
        """The next reply, matched to the command that asked for it."""
        self.receive_many((reply,))

    def receive_many(self, replies: Iterable[SMTPResponse]) -> None:
        """The next replies, in order, each matched to the command that asked for it."""
        expect = self._expect
        for reply in replies:
            if not expect:
                raise SMTPProtocolError(f"the server sent a reply nobody asked for: {reply.code} {reply.message}")
            kind, txn, recipient = expect.popleft()
            if txn is None:
                continue  # RSET, or the end of an empty data block: not the caller's news
            d = txn.delivery
            if kind == _RCPT:
                d.rcpt[recipient] = reply
            elif kind == _MAIL:
                d.mail = reply
            elif kind == _START:
                d.data_start = reply
            else:
                d.data = reply
            txn.pending -= 1
            if not txn.pending and not txn.done:
                self._judge(txn)

    def receive_data(self, data: bytes) -> None:
        """Bytes as they arrive from the server, in any chunking (for tests and sans-IO use)."""
        if self._parser is None:
            self._parser = ReplyParser()
        self.receive_many(self._parser.feed(data))

    def connection_lost(self, error: BaseException) -> None:
        """The connection ended: every message not yet judged gets ``error`` (``unknown`` if its data went out)."""
        for txn in self._txns:
            if not txn.done:
                txn.delivery.error = txn.delivery.error or error
                txn.done = txn.last_sent = True
        self._expect.clear()
        self._owed.clear()
        self._in_flight = 0
        self.closed = True

    def deliveries(self) -> list[Delivery]:
        """The messages judged since the last call, in the order they were added."""
        finished = []
        txns = self._txns
        while txns and txns[0].done:
            finished.append(txns.popleft().delivery)
        return finished

    def _judge(self, txn: _Txn) -> None:
        """Decide ``txn`` once the replies to everything sent for it are in."""
        d, data = txn.delivery, txn.delivery.data
        error: BaseException | None
        if data is not None and txn.start_sent:  # after DATA's 354: only the final reply is news
            error = None if data.code == 250 else SMTPDataError(data.code, data.message)
        else:
            error = _envelope_verdict(d)
            if error is None and data is not None and data.code != 250:
                error = SMTPDataError(data.code, data.message)
            if error is None and data is None:  # good so far: its next step goes out with the next send()
                start = d.data_start
                txn.body_due = start is not None and start.code == 354
                return
        d.error = error
        txn.done = txn.last_sent = True
        self._in_flight -= 1
        if error is None:
            if self.window < self.most:
                self.window += 1
            return
        if _temporary(error):
            self.window = 1
        if d.data_start is not None and d.data_start.code == 354 and not txn.body_sent:
            self._owed.append(_END)  # the server said 354 anyway: end the empty data block
        # A transaction already under way after this one shows the server is past it (with DATA that
        # is certain; whether every server ends a refused BDAT LAST transaction is for windows of BDAT to check).
        later = itertools.dropwhile(lambda t: t is not txn, self._txns)
        if not any(t.mail_sent for t in itertools.islice(later, 1, None)):
            self._owed.append(_RSET)  # leave the session clean for the next message
