"""The transaction engine without a socket, as h11 is tested: replies fed in every chunking, verdicts checked.

Each test is a conversation in rounds: what the engine writes, then the server's replies to it.
Within a round the replies are fed whole, split at every byte, and one byte at a time.
"""

from __future__ import annotations

import pytest

from smtp_nb import (
    SMTPDataError,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from smtp_nb.client.prepare import Server, prepare
from smtp_nb.client.transaction import Delivery, Transactions

PIPELINING = {"pipelining": ""}
CHUNKING = {"pipelining": "", "chunking": ""}


def message(i: int = 0, recipients=("bob@example.com",), extensions=PIPELINING):
    return prepare(
        Server(extensions, "test"),
        "ada@example.com",
        list(recipients),
        f"Subject: {i}\r\n\r\nhi\r\n",
        None,
        None,
        index=i,
    )


def chunkings(data: bytes):
    """``data`` whole, in two pieces split at every position, and byte by byte."""
    yield [data]
    for cut in range(1, len(data)):
        yield [data[:cut], data[cut:]]
    yield [data[i : i + 1] for i in range(len(data))]


def converse(engine: Transactions, rounds: list[bytes], split=lambda index, data: [data]):
    """Write what the engine gives, then feed that round's replies (as ``split`` cuts them); writes and deliveries."""
    writes: list[bytes] = []
    done: list[Delivery] = []
    for index, replies in enumerate(rounds):
        writes.append(b"".join(data for data, _, _ in engine.send()))
        for piece in split(index, replies):
            engine.receive_data(piece)
        done += engine.deliveries()
    writes.append(b"".join(data for data, _, _ in engine.send()))
    return writes, done


def every_chunking(build, rounds):
    """Writes and verdicts of the conversation, the same whichever round is cut and wherever."""
    results = []
    for cut_round in range(len(rounds)):
        for pieces in chunkings(rounds[cut_round]):
            writes, done = converse(
                build(), rounds, lambda index, data, r=cut_round, p=pieces: p if index == r else [data]
            )
            results.append((writes, [(d.index, d.status, type(d.error).__name__, d.data) for d in done]))
    assert all(result == results[0] for result in results)
    return results[0]


def one(items, pipelining=True, window=2):
    def build():
        engine = Transactions(pipelining=pipelining, window=window)
        for item in items():
            engine.add(item)
        return engine

    return build


def test_pipelined_message_two_rounds_in_any_chunking():
    writes, verdicts = every_chunking(
        one(lambda: [message()]),
        [b"250 2.1.0 ok\r\n250-2.1.5 ok\r\n250 go on\r\n354 send it\r\n", b"250-2.0.0 queued\r\n250 as 12\r\n"],
    )
    assert writes[0] == b"MAIL FROM:<ada@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
    assert writes[1] == b"Subject: 0\r\n\r\nhi\r\n.\r\n"
    assert writes[2] == b""
    assert verdicts == [(0, "accepted", "NoneType", (250, "2.0.0 queued\nas 12"))]


def test_sequential_one_command_per_round_in_any_chunking():
    rounds = [b"250 ok\r\n", b"250 ok\r\n", b"251 forwarded\r\n", b"354 go\r\n", b"250 queued\r\n"]
    writes, verdicts = every_chunking(
        one(lambda: [message(recipients=("bob@example.com", "eve@example.com"))], pipelining=False), rounds
    )
    assert writes[:5] == [
        b"MAIL FROM:<ada@example.com>\r\n",
        b"RCPT TO:<bob@example.com>\r\n",
        b"RCPT TO:<eve@example.com>\r\n",
        b"DATA\r\n",
        b"Subject: 0\r\n\r\nhi\r\n.\r\n",
    ]
    assert verdicts == [(0, "accepted", "NoneType", (250, "queued"))]


def test_refused_sender_is_judged_and_reset_before_the_next_message():
    rounds = [
        b"550 no\r\n503 need MAIL\r\n503 need RCPT\r\n",
        b"250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n",
        b"250 queued\r\n",
    ]
    writes, verdicts = every_chunking(one(lambda: [message(0), message(1)], window=1), rounds)
    assert writes[1] == b"RSET\r\nMAIL FROM:<ada@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
    assert verdicts[0][:3] == (0, "refused", "SMTPSenderRefused") and verdicts[1][:2] == (1, "accepted")


def test_all_recipients_refused_and_a_354_anyway_ends_the_empty_data_then_resets():
    rounds = [b"250 ok\r\n550 no bob\r\n354 go anyway\r\n", b"250 ok\r\n250 reset\r\n"]
    writes, verdicts = every_chunking(one(lambda: [message()]), rounds)
    assert writes[1] == b".\r\nRSET\r\n"
    assert verdicts == [(0, "refused", "SMTPRecipientsRefused", None)]


def test_some_recipients_refused_still_delivers_to_the_rest():
    engine = Transactions(pipelining=True, window=2)
    engine.add(message(recipients=("bob@example.com", "eve@example.com")))
    _, done = converse(engine, [b"250 ok\r\n250 ok\r\n550 no eve\r\n354 go\r\n", b"250 queued\r\n"])
    (delivery,) = done
    assert delivery.ok and delivery.accepted == ["bob@example.com"] and delivery.refused["eve@example.com"].code == 550


def test_refused_data_is_a_data_error_and_resets_when_nothing_follows():
    engine = Transactions(pipelining=True, window=2)
    engine.add(message())
    writes, done = converse(engine, [b"250 ok\r\n250 ok\r\n354 go\r\n", b"554 spam\r\n"])
    assert isinstance(done[0].error, SMTPDataError) and done[0].status == "refused"
    assert writes[-1] == b"RSET\r\n" and engine.transaction_open


def test_window_of_two_puts_the_next_envelope_with_the_previous_data():
    envelope = b"MAIL FROM:<ada@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
    engine = Transactions(pipelining=True, window=2)
    for i in range(3):
        engine.add(message(i))
    writes, done = converse(
        engine,
        [b"250 a\r\n250 b\r\n354 c\r\n"] + [b"250 q\r\n250 a\r\n250 b\r\n354 c\r\n"] * 2 + [b"250 q\r\n"],
    )
    assert writes[0] == envelope
    assert writes[1] == b"Subject: 0\r\n\r\nhi\r\n.\r\n" + envelope
    assert writes[2] == b"Subject: 1\r\n\r\nhi\r\n.\r\n" + envelope
    assert [d.index for d in done] == [0, 1, 2] and all(d.ok for d in done)


def test_window_of_one_waits_for_each_verdict():
    engine = Transactions(pipelining=True, window=1)
    engine.add(message(0))
    engine.add(message(1))
    writes, done = converse(engine, [b"250 a\r\n250 b\r\n354 c\r\n", b"250 q\r\n"] * 2)
    assert writes[1] == b"Subject: 0\r\n\r\nhi\r\n.\r\n" and writes[2].startswith(b"MAIL")
    assert [d.index for d in done] == [0, 1]


def test_chunking_sends_envelope_and_data_in_one_write_and_maps_mixed_refusals():
    engine = Transactions(pipelining=True, window=1)
    for i, rcpt in enumerate(["bob@example.com", "nobody@example.com", "eve@example.com"]):
        engine.add(message(i, (rcpt,), CHUNKING))
    rounds = [
        b"250 a\r\n250 b\r\n250 queued 0\r\n",
        b"250 a\r\n550 no such user\r\n554 no valid recipients\r\n",
        b"250 reset\r\n250 a\r\n250 b\r\n250 queued 2\r\n",
    ]
    writes, done = converse(engine, rounds)
    assert (
        writes[0]
        == b"MAIL FROM:<ada@example.com>\r\nRCPT TO:<bob@example.com>\r\nBDAT 18 LAST\r\nSubject: 0\r\n\r\nhi\r\n"
    )
    assert writes[2].startswith(b"RSET\r\nMAIL FROM")
    assert [(d.index, d.status) for d in done] == [(0, "accepted"), (1, "refused"), (2, "accepted")]
    assert isinstance(done[1].error, SMTPRecipientsRefused) and done[2].data.message == "queued 2"


def test_a_failed_item_keeps_its_place_in_the_order():
    engine = Transactions(pipelining=True, window=2)
    engine.add(message(0))
    engine.add(Delivery(index=1, tag=None, sender="", recipients=(), error=ValueError("bad address")))
    engine.add(message(2))
    _, done = converse(engine, [b"250 a\r\n250 b\r\n354 c\r\n", b"250 q\r\n250 a\r\n250 b\r\n354 c\r\n", b"250 q\r\n"])
    assert [(d.index, d.status) for d in done] == [(0, "accepted"), (1, "failed"), (2, "accepted")]


@pytest.mark.parametrize("cut", range(0, 12))
def test_a_close_in_the_middle_of_a_reply(cut):
    """The data went out; the connection ends while its verdict is arriving: unknown, never accepted."""
    engine = Transactions(pipelining=True, window=2)
    engine.add(message(0))
    engine.add(message(1))
    engine.send()
    engine.receive_data(b"250 a\r\n250 b\r\n354 c\r\n")
    engine.send()  # data of 0 and the envelope of 1
    engine.receive_data(b"250-queued\r\n250 as 7\r\n"[:cut])
    engine.connection_lost(SMTPServerDisconnected("the server closed the connection"))
    first, second = engine.deliveries()
    assert first.status == "unknown" and isinstance(first.error, SMTPServerDisconnected)
    assert second.status == "failed" and not second.data_sent
    assert engine.closed and not engine.transaction_open and engine.send() == []


def test_a_close_after_the_verdict_keeps_it():
    engine = Transactions(pipelining=True, window=2)
    engine.add(message(0))
    engine.send()
    engine.receive_data(b"250 a\r\n250 b\r\n354 c\r\n")
    engine.send()
    engine.receive_data(b"250 queued\r\n")
    engine.connection_lost(SMTPServerDisconnected("gone"))
    (delivery,) = engine.deliveries()
    assert delivery.ok and delivery.data.message == "queued"


def test_sender_refused_without_pipelining_stops_at_mail():
    engine = Transactions(pipelining=False)
    engine.add(message())
    writes, done = converse(engine, [b"550 go away\r\n", b"250 reset\r\n"])
    assert writes == [b"MAIL FROM:<ada@example.com>\r\n", b"RSET\r\n", b""]
    assert isinstance(done[0].error, SMTPSenderRefused) and engine.idle


def test_a_reply_nobody_asked_for_is_a_protocol_error():
    engine = Transactions(pipelining=True)
    with pytest.raises(Exception, match="nobody asked for"):
        engine.receive_data(b"250 surprise\r\n")


BODY = b"BDAT 18 LAST\r\nSubject: %d\r\n\r\nhi\r\n"


def bdat_window(recipients, window=None, start=None):
    """An engine with one BDAT message per recipient list, every one startable in the first write."""

    def build():
        engine = Transactions(pipelining=True, window=window or len(recipients), start=start)
        for i, rcpts in enumerate(recipients):
            engine.add(message(i, rcpts, CHUNKING))
        return engine

    return build


def test_a_window_of_bdat_transactions_goes_in_one_write_each_behind_an_rset():
    engine = bdat_window([("bob@example.com",)] * 3)()
    assert not engine.room
    writes, done = converse(engine, [b"250 a\r\n250 b\r\n250 q0\r\n" + b"250 r\r\n250 a\r\n250 b\r\n250 q\r\n" * 2])
    mail = b"MAIL FROM:<ada@example.com>\r\nRCPT TO:<bob@example.com>\r\n"
    assert writes[0] == mail + BODY % 0 + b"RSET\r\n" + mail + BODY % 1 + b"RSET\r\n" + mail + BODY % 2
    assert [(d.index, d.status) for d in done] == [(0, "accepted"), (1, "accepted"), (2, "accepted")]
    assert writes[1] == b"" and engine.idle


def test_mixed_refusals_inside_one_window_map_to_their_messages_in_any_chunking():
    """Accepted, one RCPT of two refused, sender refused, all RCPTs refused, data refused: one write, one flight.

    The replies are Postfix's: a refused MAIL leaves no transaction (503 to its RCPT and BDAT), all RCPTs
    refused make the BDAT a 554. Whatever a late BDAT reply says, the envelope's refusal is the verdict.
    """
    build = bdat_window(
        [
            ("bob@example.com",),
            ("bob@example.com", "nobody@example.com"),
            ("eve@example.com",),
            ("nobody@example.com",),
            ("carol@example.com",),
            ("dan@example.com",),
        ]
    )
    replies = (
        b"250 a\r\n250 b\r\n250 q0\r\n"
        b"250 r\r\n250 a\r\n250 b\r\n550 no such user\r\n250 q1\r\n"
        b"250 r\r\n501 bad sender\r\n503 need MAIL\r\n503 need RCPT\r\n"
        b"250 r\r\n250 a\r\n550 no such user\r\n554 no valid recipients\r\n"
        b"250 r\r\n250 a\r\n250 b\r\n552 too big\r\n"
        b"250 r\r\n250 a\r\n250 b\r\n250 q5\r\n"
    )
    writes, verdicts = every_chunking(build, [replies])
    assert writes[0].count(b"MAIL FROM") == 6 and writes[0].count(b"RSET") == 5 and writes[1] == b""
    assert [v[:3] for v in verdicts] == [
        (0, "accepted", "NoneType"),
        (1, "accepted", "NoneType"),
        (2, "refused", "SMTPSenderRefused"),
        (3, "refused", "SMTPRecipientsRefused"),
        (4, "refused", "SMTPDataError"),
        (5, "accepted", "NoneType"),
    ]
    assert verdicts[1][3].message == "q1" and verdicts[5][3].message == "q5"


def test_a_refused_envelope_is_never_accepted_even_if_its_data_is():
    """A server that says 250 to the BDAT of a refused MAIL (or of no valid recipient): still refused."""
    engine = bdat_window([("bob@example.com",), ("nobody@example.com",)])()
    _, done = converse(engine, [b"550 no\r\n503 a\r\n250 q0\r\n250 r\r\n250 a\r\n550 no\r\n250 q1\r\n"])
    assert [(d.status, type(d.error).__name__) for d in done] == [
        ("refused", "SMTPSenderRefused"),
        ("refused", "SMTPRecipientsRefused"),
    ]


@pytest.mark.parametrize("cut", [0, 10, 20, 21, 30, 45, 50, 60])
def test_a_close_in_the_middle_of_a_window(cut):
    """Cut anywhere in a window's replies: the judged keep their verdict, the rest whose data went out are unknown."""
    engine = bdat_window([("bob@example.com",)] * 4)()
    engine.send()
    replies = b"250 a\r\n250 b\r\n250 q0\r\n" + b"250 r\r\n250 a\r\n250 b\r\n250 q\r\n" * 3
    engine.receive_data(replies[:cut])
    judged = len(engine.deliveries())
    engine.connection_lost(SMTPServerDisconnected("the server closed the connection"))
    rest = engine.deliveries()
    assert judged + len(rest) == 4 and all(d.status == "unknown" and d.data_sent for d in rest)
    assert judged == sum(line.startswith(b"250 q") for line in replies[:cut].split(b"\r\n")[:-1])
    assert engine.closed and not engine.transaction_open and engine.send() == []


def test_the_window_grows_with_acceptances_and_falls_back_to_one_on_a_temporary_refusal():
    engine = Transactions(pipelining=True, window=4, start=2)
    for i in range(12):
        engine.add(message(i, ("bob@example.com",), CHUNKING))
    ok, rset = b"250 a\r\n250 b\r\n250 q\r\n", b"250 r\r\n"
    sizes = []
    for replies in [
        ok + rset + ok,
        ok + (rset + ok) * 3,
        ok + (rset + ok) * 2 + rset + b"451 slow\r\n503 a\r\n503 b\r\n",
    ]:
        sizes.append(b"".join(data for data, _, _ in engine.send()).count(b"MAIL FROM"))
        engine.receive_data(replies)
    assert sizes == [2, 4, 4] and engine.window == 1
    assert b"".join(data for data, _, _ in engine.send()).count(b"MAIL FROM") == 1


def test_a_window_is_1_or_more():
    with pytest.raises(ValueError, match="window must be 1 or more"):
        Transactions(pipelining=True, window=0)
