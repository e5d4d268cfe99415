"""Sharing one client between tasks: a lock its holder may take again, and the gate of a connected session.

Both are made for the event loop in use when first needed, so a client can move to another loop between sessions.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["SessionGate", "TaskLock"]


class TaskLock:
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


class SessionGate:
    """Who opened the current session, and a way to wait until it is over.

    A task that connects owns the session until ``close()``; another task that
    wants a session of its own waits at ``wait_turn()`` instead of taking over
    the connection.
    """

    def __init__(self) -> None:
        self.owner: asyncio.Task[Any] | None = None
        self._closed: asyncio.Future[None] | None = None

    def held_by_other(self) -> bool:
        """True if a task other than this one, still running, opened the session."""
        owner = self.owner
        return owner is not None and owner is not asyncio.current_task() and not owner.done()

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        self.owner = asyncio.current_task()
        self._closed = loop.create_future()

    def adopt(self) -> None:
        """This task takes on a session whose task has ended (it now closes it, and others wait for it)."""
        self.owner = asyncio.current_task()

    def close(self) -> None:
        closed = self._closed
        if closed is not None and not closed.done() and not closed.get_loop().is_closed():
            closed.set_result(None)
        self.owner = self._closed = None

    async def wait_closed(self, lost: asyncio.Future[None], timeout: float | None) -> bool | None:
        """Wait until the session is closed by its owner, or its connection is ``lost``: True.

        False if ``timeout`` passed first; None (at once) if the session lives on another
        event loop: nothing here can wait for it.
        """
        loop = asyncio.get_running_loop()
        waits = [f for f in (self._closed, lost) if f is not None and f.get_loop() is loop]
        if len(waits) < 2:
            return None
        done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)
