"""The thin async driver of ``transaction.Transactions``: it only moves bytes between the engine and the connection.

``sendmail()``, ``send_message()`` and ``send_many()`` all run through ``drive()``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Union, cast

from .connection import Connection
from .errors import SMTPException
from .transaction import Delivery, Prepared, Transactions

__all__ = ["drive"]

#: Data larger than this is drained (the write buffer waited on) before the replies are read.
_BIG = 65536

Items = Union[Iterator[Union[Prepared, Delivery]], AsyncIterator[Union[Prepared, Delivery]]]


async def drive(
    conn: Connection, engine: Transactions, items: Items, timeout: float | None
) -> AsyncGenerator[Delivery, None]:
    """Feed ``items`` to ``engine`` as it has room, write what it asks, read the replies; yield each delivery.

    An async source may wait between items, so whatever is due is written
    as soon as it does; one that has the next item at once adds it to the
    same write. If the connection fails, the deliveries
    in flight are yielded with the error and the iteration ends. Stopping
    early (the caller, a cancellation) inside a transaction closes the
    connection: only that ends it without delivering.
    """
    source = cast(AsyncIterator[Union[Prepared, Delivery]], items) if hasattr(items, "__anext__") else None
    exhausted = False
    try:
        while True:
            big = False
            while engine.room and not exhausted:
                item: Prepared | Delivery | None
                if source is not None:
                    # What is due goes out if the source makes us wait; if it has the next item at once (the
                    # merge's rows, mostly), the next one's commands join the same write: one for a window.
                    big = conn.queue_many(engine.send()) > _BIG or big
                    if conn.has_output:
                        conn.flush_soon()
                    item = await anext(source, None)
                else:
                    item = next(items, None)  # type: ignore[arg-type]
                if item is None:
                    exhausted = True
                else:
                    engine.add(item)
                    # its commands now, so that the next one finds room (a window of BDAT transactions)
                    big = conn.queue_many(engine.send()) > _BIG or big
                if conn.error is not None:
                    break  # the server hung up while the source kept us: the flush below judges what is in flight
            big = conn.queue_many(engine.send()) > _BIG or big
            if engine.awaiting:
                try:
                    conn.flush()
                    if big:
                        await conn.wait_writable(timeout)
                    replies = await conn.read(engine.awaiting, timeout)
                except SMTPException as exc:
                    if conn.error is None:
                        raise
                    engine.receive_many(conn.take_arrived())
                    engine.connection_lost(exc)
                else:
                    engine.receive_many(replies)
            conn.transaction_open = engine.transaction_open
            for delivery in engine.deliveries():
                yield delivery
            if engine.closed or (exhausted and engine.idle):
                return
    finally:
        conn.transaction_open = False
        if conn.is_open and engine.transaction_open:
            conn.close("send_many() stopped in the middle of a transaction")
