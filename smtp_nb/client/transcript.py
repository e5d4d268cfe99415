"""The conversation with the server, line by line, with credentials redacted.

Every client keeps the last lines in memory (``client.transcript``), calls the
listeners it was given, and logs each line on the ``smtp_nb.client`` logger at
DEBUG level.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

__all__ = ["REDACTED", "Transcript", "TranscriptEntry"]

logger = logging.getLogger("smtp_nb.client")

REDACTED = "********"

#: ``>`` client to server, ``<`` server to client, ``*`` an event (connect, TLS, close).
Direction = str


class TranscriptEntry(NamedTuple):
    time: float
    direction: Direction
    text: str

    def __str__(self) -> str:
        return f"{self.direction} {self.text}"


class Transcript:
    """A bounded record of the conversation, and the hook others subscribe to."""

    def __init__(self, maxlen: int = 2000) -> None:
        self._entries: collections.deque[TranscriptEntry] = collections.deque(maxlen=maxlen)
        self._listeners: list[Callable[[TranscriptEntry], None]] = []

    def subscribe(self, listener: Callable[[TranscriptEntry], None]) -> None:
        """Call ``listener(entry)`` for every line from now on."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[TranscriptEntry], None]) -> None:
        self._listeners.remove(listener)

    def record(self, direction: Direction, text: str) -> None:
        entry = TranscriptEntry(time.time(), direction, text)
        self._entries.append(entry)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s", direction, text)
        for listener in self._listeners:
            listener(entry)

    def clear(self) -> None:
        self._entries.clear()

    def __iter__(self) -> Iterator[TranscriptEntry]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> TranscriptEntry:
        return self._entries[index]

    def lines(self) -> list[str]:
        """The conversation as text, one ``> command`` / ``< reply`` line per entry."""
        return [str(entry) for entry in self]

    def __repr__(self) -> str:
        return f"<Transcript of {len(self)} lines>"
