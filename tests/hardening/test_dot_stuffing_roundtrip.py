"""Any message, sent through a real aiosmtpd server, arrives byte for byte as it was given.

The client dot-stuffs the data (RFC 5321 4.5.2) and the server un-stuffs
it; in between, lines that start with '.', a lone '.', long lines, 8-bit
bytes (BODY=8BITMIME) and the bytes of an end-of-data sequence inside the
message must all survive. The input is CRLF-normalized, as the client
sends it; one case gives bare LF endings and expects CRLF.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_nb import SMTP
from smtp_nb.server import LocalServer


class Wire:
    """A LocalServer and one client connected to it over a debug event loop, for many examples."""

    def __init__(self) -> None:
        self.server = LocalServer().start()
        self.loop = asyncio.new_event_loop()
        self.loop.set_debug(True)
        self.problems: list[str] = []
        self.loop.set_exception_handler(lambda loop, context: self.problems.append(str(context.get("message"))))
        self.client = SMTP(**self.server.client_options(), timeout=10, local_hostname="client.example")
        self.run(self.client.connect())

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 30))

    def send(self, data: bytes) -> bytes:
        """``data`` as the server stored it."""
        self.server.clear()
        self.run(self.client.sendmail("a@example.com", "b@example.com", data))
        (message,) = self.server.messages
        if not data.isascii():
            assert "BODY=8BITMIME" in message.mail_options
        return message.data

    def close(self) -> None:
        try:
            self.run(self.client.quit())
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()
            self.server.stop()
        assert not self.problems, self.problems


@pytest.fixture(scope="module")
def wire() -> Iterator[Wire]:
    connection = Wire()
    yield connection
    connection.close()


# A line's content: anything but CR and LF, up to RFC 5321's 998 octets.
ANY_BYTES = st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
LINES = st.one_of(
    st.sampled_from([b"", b".", b"..", b"...", b". ", b".\t", b"From me", b"\x00", b"\xff\xfe"]),
    ANY_BYTES,
    ANY_BYTES.map(lambda b: b"." + b),  # a line that starts with a dot
    st.builds(lambda n, c: c * n, st.integers(900, 998), st.sampled_from([b"a", b".", b"\xe9"])),  # long lines
    st.builds(lambda n: b"." + b"x" * n, st.integers(990, 997)),  # long, with a dot to double: 999 on the wire
)
MESSAGES = st.lists(LINES, min_size=1, max_size=25).map(lambda lines: b"\r\n".join(lines) + b"\r\n")


@settings(max_examples=150, deadline=None)
@given(data=MESSAGES)
def test_any_message_round_trips_through_a_real_server(wire, data):
    assert wire.send(data) == data


@pytest.mark.parametrize(
    "body",
    [
        b".\r\n",  # the message is a lone dot
        b"..\r\n.\r\n.\r\n",
        b"a\r\n.\r\nMAIL FROM:<smuggled@example.com>\r\n",  # an end of data inside the message
        b"a\r\n.\r\n\r\n.\r\n",
    ],
)
def test_end_of_data_lookalikes_are_content(wire, body):
    assert wire.send(body) == body


def test_bare_lf_endings_arrive_as_crlf(wire):
    assert wire.send(b"Subject: lf\n\n.one\n..two\nend") == b"Subject: lf\r\n\r\n.one\r\n..two\r\nend\r\n"
