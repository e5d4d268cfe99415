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
from typing import Any, TypeVar

__all__ = ["run_sync", "wait_threadsafe"]

T = TypeVar("T")


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


def wait_threadsafe(coro: Coroutine[Any, Any, T], loop: asyncio.AbstractEventLoop) -> T:
    """Run ``coro`` on ``loop`` (running in another thread) and wait; an interrupt cancels it."""
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        with _interruptible():
            return future.result()
    except KeyboardInterrupt:
        future.cancel()
        try:
            future.result(timeout=5)
        except BaseException:
            pass
        raise


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
