"""The thin async driver of ``transaction.Transactions``: it only moves bytes between the engine and the connection.

``sendmail()``, ``send_message()`` and ``send_many()`` all run through ``drive()``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Union

from .connection import Connection
from .errors import SMTPException
from .transaction import Delivery, Outgoing, Prepared, Transactions

__all__ = ["drive"]

#: Data larger than this is drained (the write buffer waited on) before the replies are read.
_BIG = 65536

Items = Union[Iterator[Union[Prepared, Delivery]], AsyncIterator[Union[Prepared, Delivery]]]


def _queue(conn: Connection, outgoing: list[Outgoing]) -> bool:
    """Queue ``outgoing`` on the connection; True if it holds a large block of data."""
    big = False
    for data, expect, shown in outgoing:
        conn.queue_data(data, expect=expect, shown=shown)
        big = big or len(data) > _BIG
    return big


async def drive(
    conn: Connection, engine: Transactions, items: Items, timeout: float | None
) -> AsyncGenerator[Delivery, None]:
    """Feed ``items`` to ``engine`` as it has room, write what it asks, read the replies; yield each delivery.

    An async source may wait between items, so whatever is due is written
    before waiting for the next one. If the connection fails, the deliveries
    in flight are yielded with the error and the iteration ends. Stopping
    early (the caller, a cancellation) inside a transaction closes the
    connection: only that ends it without delivering.
    """
    exhausted = False
    try:
        while True:
            big = _queue(conn, engine.send())
            while engine.room and not exhausted:
                item: Prepared | Delivery | None
                if isinstance(items, AsyncIterator):
                    if conn.has_output:
                        conn.flush()
                    item = await anext(items, None)
                else:
                    item = next(items, None)
                if item is None:
                    exhausted = True
                else:
                    engine.add(item)
                    big = _queue(conn, engine.send()) or big
            if engine.awaiting:
                try:
                    conn.flush()
                    if big:
                        await conn.wait_writable(timeout)
                    replies = await conn.read(engine.awaiting, timeout)
                except SMTPException as exc:
                    if conn.error is None:
                        raise
                    for reply in conn.take_arrived():
                        engine.receive(reply)
                    engine.connection_lost(exc)
                else:
                    for reply in replies:
                        engine.receive(reply)
            conn.transaction_open = engine.transaction_open
            for delivery in engine.deliveries():
                yield delivery
            if engine.closed or (exhausted and engine.idle):
                return
    finally:
        conn.transaction_open = False
        if conn.is_open and engine.transaction_open:
            conn.close("send_many() stopped in the middle of a transaction")
