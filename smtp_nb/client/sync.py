"""Run a coroutine to completion from synchronous code, even inside a running event loop.

Jupyter runs every cell inside an event loop, where ``asyncio.run()`` fails
with "cannot be called from a running event loop". There the coroutine runs on
a short-lived worker thread with a loop of its own; Ctrl-C (or the notebook's
stop button) cancels it cleanly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Generic, TypeVar

from .errors import SMTPException

__all__ = ["CANCEL_GRACE", "ThreadsafeJob", "call_sync", "run_sync", "wait_threadsafe"]

T = TypeVar("T")
#: How long a cancelled operation may take to clean up (close its socket) before the interrupt goes on.
CANCEL_GRACE = 10.0


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Let Ctrl-C raise ``KeyboardInterrupt`` in a blocking wait on the main thread.

    ``asyncio.run()`` (3.11+) replaces the SIGINT handler with one that only
    cancels its main task, which a blocking call inside that task never
    notices; Jupyter's kernel already uses the default handler while a cell
    runs. The previous handler is restored afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    swap = previous is not None and previous is not signal.default_int_handler
    if swap:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if swap:
            signal.signal(signal.SIGINT, previous)


class ThreadsafeJob(Generic[T]):
    """A coroutine for the session loop, and a thread-safe handle on its outcome.

    Unlike ``asyncio.run_coroutine_threadsafe``, ``finished`` is set only once
    the task has really ended, so a canceller can wait for the cleanup (the
    client closing its connection) before it moves on. Everything that
    touches the task runs on the loop, in the order it was asked for, so a
    cancel is right whether it comes before or after the start.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> None:
        self.future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self.finished = threading.Event()
        self._loop = loop
        self._coro = coro
        self._task: asyncio.Task[T] | None = None
        self.future.add_done_callback(self._on_future_done)

    def start(self) -> None:
        self._loop.call_soon_threadsafe(self._start)

    def _start(self) -> None:
        if self._task is not None or self.finished.is_set():
            return
        if self.future.cancelled():
            self._drop()
            return
        self._task = self._loop.create_task(self._coro)
        self._task.add_done_callback(self._on_task_done)

    def _drop(self) -> None:
        """Close a coroutine that never started (cancelled first)."""
        if self._task is None and not self.finished.is_set():
            self._coro.close()
            self.finished.set()

    def _on_task_done(self, task: asyncio.Task[T]) -> None:
        try:
            if task.cancelled():
                self.future.cancel()
            elif self.future.set_running_or_notify_cancel():
                exc = task.exception()
                if exc is not None:
                    self.future.set_exception(exc)
                else:
                    self.future.set_result(task.result())
            else:
                task.exception()  # retrieved: the waiter has gone, nobody else will look
        finally:
            self.finished.set()

    def _on_future_done(self, future: concurrent.futures.Future[T]) -> None:
        if future.cancelled() and not self.finished.is_set():
            with contextlib.suppress(RuntimeError):  # the loop is already closed: nothing left to cancel
                self._loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
        else:
            self._drop()

    def run(self, timeout: float | None = None) -> T:
        """Start, and block for the outcome; Ctrl-C cancels the operation, waits for its cleanup, and is raised.

        The start is inside the guarded region: an interrupt that lands just
        after the command went out still cancels it.
        """
        try:
            self.start()
            return self._wait(timeout)
        except KeyboardInterrupt:
            self._interrupt()
            raise

    def wait(self, timeout: float | None = None) -> T:
        """Block for the outcome of a started job; Ctrl-C cancels it as ``run()`` does."""
        try:
            return self._wait(timeout)
        except KeyboardInterrupt:
            self._interrupt()
            raise

    def _wait(self, timeout: float | None) -> T:
        with _interruptible():
            return self.future.result(timeout)

    def _interrupt(self) -> None:
        self.future.cancel()
        self.finished.wait(CANCEL_GRACE)


def wait_threadsafe(coro: Coroutine[Any, Any, T], loop: asyncio.AbstractEventLoop) -> T:
    """Run ``coro`` on ``loop`` (running in another thread) and wait.

    Ctrl-C cancels it and returns only once the cancelled coroutine has
    cleaned up (a cancelled command closes its connection).
    """
    return ThreadsafeJob(loop, coro).run()


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine ``factory()`` makes, whether or not this thread runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    loop = asyncio.new_event_loop()
    started = concurrent.futures.Future[None]()

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set_result, None)
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    thread = threading.Thread(target=main, name="smtp_nb-sync", daemon=True)
    thread.start()
    started.result()
    try:
        return wait_threadsafe(factory(), loop)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()


def call_sync(
    loop: asyncio.AbstractEventLoop | None,
    operation: Callable[[], Coroutine[Any, Any, T]],
    one_shot: Callable[[], Coroutine[Any, Any, T]],
    name: str,
) -> T:
    """Run an operation of a client whose connection lives on ``loop`` (None: no usable connection).

    If ``loop`` runs in another thread (a session's background loop), the
    operation is handed to it and waited for. Without a usable loop,
    ``one_shot()`` (connect, run, quit) runs on a loop of its own. Calling
    from the thread that runs ``loop`` would freeze it: ``SMTPException``.
    """
    if loop is not None and not loop.is_closed():
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is running:
            raise SMTPException(
                f"{name}_sync() cannot use this connection: it belongs to the event loop running in this "
                f"thread, which a blocking call would freeze. Use `await client.{name}(...)` here instead"
            )
        if loop.is_running():
            return wait_threadsafe(operation(), loop)
    return run_sync(one_shot)
