"""The conversation with the server, line by line (credentials are redacted before they get here).

Every client keeps the last lines in memory (``client.transcript``), calls the
listeners it was given, and logs each line on the ``smtp_nb.client`` logger at
DEBUG level.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple, Union

from .response import SMTPResponse

__all__ = ["Transcript", "TranscriptEntry", "render"]

logger = logging.getLogger("smtp_nb.client")

#: ``>`` client to server, ``<`` server to client, ``*`` an event (connect, TLS, close).
Direction = str
#: What the connection records: text, a raw command line (bytes, CRLF-terminated) or a reply.
Payload = Union[str, bytes, SMTPResponse]


class TranscriptEntry(NamedTuple):
    time: float
    direction: Direction
    text: str

    def __str__(self) -> str:
        return f"{self.direction} {self.text}"


def render(payload: Payload) -> str:
    """The text of a recorded payload: a command line without its CRLF, a reply as the server wrote it."""
    if isinstance(payload, str):
        return payload
    if isinstance(payload, bytes):
        return payload.rstrip(b"\r\n").decode("utf-8", "replace")
    if "\n" not in payload.message:
        return f"{payload.code} {payload.message}"
    lines = payload.message.split("\n")
    return "\n".join(f"{payload.code}-{line}" for line in lines[:-1]) + f"\n{payload.code} {lines[-1]}"


class Transcript:
    """A bounded record of the conversation, and the hook others subscribe to.

    Recording is on the client's hot path, so entries are kept raw and turned
    into text only when read, logged or passed to a listener.
    """

    def __init__(self, maxlen: int = 2000) -> None:
        self._entries: collections.deque[tuple[float, Direction, Payload]] = collections.deque(maxlen=maxlen)
        self._listeners: list[Callable[[TranscriptEntry], None]] = []

    def subscribe(self, listener: Callable[[TranscriptEntry], None]) -> None:
        """Call ``listener(entry)`` for every line from now on."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[TranscriptEntry], None]) -> None:
        self._listeners.remove(listener)

    @property
    def listeners(self) -> tuple[Callable[[TranscriptEntry], None], ...]:
        return tuple(self._listeners)

    def record(self, direction: Direction, payload: Payload) -> None:
        raw = (time.time(), direction, payload)
        self._entries.append(raw)
        if self._listeners or logger.isEnabledFor(logging.DEBUG):
            entry = TranscriptEntry(raw[0], direction, render(payload))
            logger.debug("%s %s", direction, entry.text)
            for listener in self._listeners:
                listener(entry)

    def record_many(self, direction: Direction, payloads: list[Payload]) -> None:
        """Record several lines that went the same way at the same moment (one write, one read)."""
        now = time.time()
        self._entries.extend([(now, direction, payload) for payload in payloads])
        if self._listeners or logger.isEnabledFor(logging.DEBUG):
            for payload in payloads:
                entry = TranscriptEntry(now, direction, render(payload))
                logger.debug("%s %s", direction, entry.text)
                for listener in self._listeners:
                    listener(entry)

    def clear(self) -> None:
        self._entries.clear()

    def __iter__(self) -> Iterator[TranscriptEntry]:
        return iter([TranscriptEntry(t, d, render(p)) for t, d, p in list(self._entries)])

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> TranscriptEntry:
        t, d, p = self._entries[index]
        return TranscriptEntry(t, d, render(p))

    def lines(self) -> list[str]:
        """The conversation as text, one ``> command`` / ``< reply`` line per entry."""
        return [str(entry) for entry in self]

    def __repr__(self) -> str:
        return f"<Transcript of {len(self)} lines>"
