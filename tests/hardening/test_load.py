"""Load: 50 concurrent connections from one process, 5,000 messages, each delivered once, nothing leaked.

Once on the test's own event loop and once through the notebook session
(the connections on its background loop, reached through its proxies).
File descriptors (/proc/self/fd), threads and the loop's tasks are counted
before the server starts and after it stopped: the counts must match.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import threading
import time
from typing import Any

from smtp_nb import SMTP
from smtp_nb.notebook.session import get_session, reset_session
from smtp_nb.server import LocalServer
from tests.hardening.conftest import Figure

CONNECTIONS = 50
PER_CONNECTION = 100
TOTAL = CONNECTIONS * PER_CONNECTION
SEQ = re.compile(rb"\r\nX-Seq: (\d+)\r\n")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def messages(connection: int) -> list[tuple[str, list[str], bytes, int]]:
    first = connection * PER_CONNECTION
    return [
        (
            f"sender{connection}@example.com",
            [f"rcpt{n}@example.com"],
            f"Subject: load {n}\r\nX-Seq: {n}\r\n\r\nmessage {n} of {TOTAL}\r\n".encode(),
            n,
        )
        for n in range(first, first + PER_CONNECTION)
    ]


def check_delivered_once(server: LocalServer, deliveries: list[Any]) -> None:
    assert len(deliveries) == TOTAL
    assert collections.Counter(d.status for d in deliveries) == {"accepted": TOTAL}
    assert sorted(d.tag for d in deliveries) == list(range(TOTAL))
    seen = collections.Counter(int(SEQ.search(m.data).group(1)) for m in server.messages)
    assert len(server.messages) == TOTAL and seen == collections.Counter(range(TOTAL))
    for message in server.messages:  # each went to its own recipient
        assert message.rcpt_tos == (f"rcpt{int(SEQ.search(message.data).group(1))}@example.com",)


async def test_50_connections_5000_messages_on_one_loop(figures):
    loop = asyncio.get_running_loop()
    fds, threads, tasks = open_fds(), threading.active_count(), len(asyncio.all_tasks(loop))
    with LocalServer() as server:

        async def one_connection(number: int) -> list[Any]:
            async with SMTP(**server.client_options(), timeout=30, local_hostname="load.example") as client:
                return [d async for d in client.send_many(messages(number))]

        started = time.perf_counter()
        results = await asyncio.gather(*(one_connection(n) for n in range(CONNECTIONS)))
        elapsed = time.perf_counter() - started
        check_delivered_once(server, [d for result in results for d in result])
    after = (open_fds(), threading.active_count(), len(asyncio.all_tasks(loop)))
    assert after == (fds, threads, tasks)
    figures.append(
        Figure(
            f"load: {CONNECTIONS} connections, {TOTAL:,} messages, one loop",
            "all delivered once",
            elapsed,
            note=f"{TOTAL / elapsed:,.0f} msg/s; fds {fds}->{after[0]}, tasks {tasks}->{after[2]}",
        )
    )


async def _session_tasks() -> int:
    return len(asyncio.all_tasks()) - 1  # this one aside


def test_50_connections_5000_messages_through_the_notebook_session(figures):
    reset_session()
    session = get_session()
    try:
        session.loop  # noqa: B018  (starts the session's loop thread)
        fds, threads, tasks = open_fds(), threading.active_count(), session.run(_session_tasks())
        with LocalServer() as server:
            names = [f"load{n}" for n in range(CONNECTIONS)]
            for name in names:
                session.connect(name, **server.client_options(), timeout=30, local_hostname="load.example")
            assert len(session.connections()) == CONNECTIONS
            started = time.perf_counter()
            calls = [session.client(name).send_many(messages(n)) for n, name in enumerate(names)]  # all at once
            results = [call.result(timeout=120) for call in calls]
            elapsed = time.perf_counter() - started
            for name in names:
                session.quit(name)
            check_delivered_once(server, [d for result in results for d in result])
        after = (open_fds(), threading.active_count(), session.run(_session_tasks()))
        assert after == (fds, threads, tasks)
        figures.append(
            Figure(
                f"load: {CONNECTIONS} connections, {TOTAL:,} messages, notebook session",
                "all delivered once",
                elapsed,
                note=f"{TOTAL / elapsed:,.0f} msg/s; fds {fds}->{after[0]}, tasks {tasks}->{after[2]}",
            )
        )
    finally:
        reset_session()
