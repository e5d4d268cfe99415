"""One client shared by several tasks: sessions take turns, commands take turns, nobody closes another's connection."""

from __future__ import annotations

import asyncio

import pytest

from smtp_nb import SMTP, SMTPConnectTimeoutError, SMTPException, SMTPServerDisconnected, SMTPTimeoutError
from tests.conftest import client_for


async def test_tasks_each_with_their_own_async_with_all_succeed_one_after_another(any_server):
    client = client_for(any_server)
    ports = []

    async def one(i: int) -> str:
        async with client:
            ports.append(client.get_transport_info("sockname")[1])
            await asyncio.sleep(0)  # let the others try to take the client now
            _, reply = await client.sendmail("ada@example.com", ["bob@example.com"], f"Subject: {i}\r\n\r\nhi\r\n")
            assert (await client.noop()).code == 250
        return reply

    replies = await asyncio.gather(*(one(i) for i in range(3)))
    assert len(replies) == 3 and len(any_server.messages) == 3
    assert len(set(ports)) == 3  # three sessions, one after another
    assert not client.is_connected


async def test_connect_from_another_task_waits_for_the_open_session_to_close(server):
    client = client_for(server)
    entered = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with client:
            entered.set()
            await release.wait()
            assert (await client.noop()).code == 250  # still our connection

    holding = asyncio.ensure_future(holder())
    await entered.wait()
    mine = client.get_transport_info("sockname")
    second = asyncio.ensure_future(client.connect())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not second.done()
    assert client.get_transport_info("sockname") == mine and (await client.noop()).code == 250
    release.set()
    await holding
    await second
    assert client.is_connected and client.get_transport_info("sockname") != mine
    await client.quit()


async def test_connect_twice_in_one_task_still_refuses(server):
    client = client_for(server)
    async with client:
        try:
            await client.connect()
        except Exception as exc:
            assert "already connected" in str(exc)
        else:
            raise AssertionError("a second connect() in the same task must fail")


async def test_async_with_after_a_plain_connect_reuses_the_connection(server):
    client = client_for(server)
    await client.connect()
    mine = client.get_transport_info("sockname")
    async with client:
        assert client.get_transport_info("sockname") == mine
    assert not client.is_connected


async def test_a_connection_opened_by_a_finished_task_is_shared(server):
    client = client_for(server)
    await asyncio.ensure_future(client.connect())  # like a notebook session's loop: the opener is gone
    async with client:
        assert (await client.noop()).code == 250


async def test_many_commands_gathered_on_one_connected_client_all_succeed(any_server):
    async with client_for(any_server) as client:
        noops = await asyncio.gather(*(client.noop() for _ in range(20)))
        sent = await asyncio.gather(
            *(
                client.sendmail("ada@example.com", [f"r{i}@example.com"], f"Subject: {i}\r\n\r\nhi\r\n")
                for i in range(5)
            )
        )
        mixed = await asyncio.gather(client.vrfy("ada"), client.rset(), client.help(), client.noop())
    assert all(r.code == 250 for r in noops) and len(sent) == 5 and len(mixed) == 4
    assert sorted(m.rcpt_tos[0] for m in any_server.messages) == [f"r{i}@example.com" for i in range(5)]


async def test_gathered_sessions_on_clones_run_side_by_side(server):
    base = SMTP(**server.client_options(), timeout=10)
    clients = [base, base.clone(), base.clone()]

    async def one(client: SMTP, i: int) -> None:
        async with client:
            await client.sendmail("ada@example.com", ["bob@example.com"], f"Subject: {i}\r\n\r\nhi\r\n")

    await asyncio.gather(*(one(c, i) for i, c in enumerate(clients)))
    assert len(server.messages) == 3


async def test_a_task_whose_session_ended_cannot_send_on_the_next_one(server):
    """A's connection times out; B connects; A's next command must not land in B's mail transaction."""
    client = client_for(server)
    b_in_transaction = asyncio.Event()
    a_tried = asyncio.Event()

    async def a() -> BaseException | None:
        async with client:
            try:
                await client.noop(timeout=0)  # expires at once: A's connection is closed
            except SMTPTimeoutError:
                pass
            await b_in_transaction.wait()
            try:
                await client.rcpt("eve@example.com")
            except SMTPServerDisconnected as exc:
                return exc
            finally:
                a_tried.set()
        return None

    async def b() -> None:
        async with client:
            await client.mail("bob@example.com")
            await client.rcpt("carol@example.com")
            b_in_transaction.set()
            await a_tried.wait()
            await client.data("Subject: for carol only\r\n\r\nprivate\r\n")

    refused, _ = await asyncio.gather(a(), b())
    assert isinstance(refused, SMTPServerDisconnected) and "another task's session" in str(refused)
    assert [list(m.rcpt_tos) for m in server.messages] == [["carol@example.com"]]


async def test_gathered_sessions_on_a_connection_opened_by_a_finished_task_take_turns(server):
    client = client_for(server)
    await asyncio.ensure_future(client.connect())  # the opener is gone (a notebook's loop, ensure_future)

    async def one(i: int) -> None:
        async with client:
            await asyncio.sleep(0.01 * i)
            await client.sendmail("ada@example.com", ["bob@example.com"], f"Subject: {i}\r\n\r\nhi\r\n")

    await asyncio.gather(*(one(i) for i in range(3)))
    assert len(server.messages) == 3 and not client.is_connected


async def test_tasks_started_inside_a_session_share_it(server):
    """A parent holding the session waits for children that use ``async with``: they share it, none closes it."""
    client = client_for(server, timeout=5)

    async def child(i: int) -> None:
        async with client:
            await client.sendmail("ada@example.com", [f"r{i}@example.com"], f"Subject: {i}\r\n\r\nhi\r\n")

    async with client:
        mine = client.get_transport_info("sockname")
        await asyncio.wait_for(asyncio.gather(*(child(i) for i in range(3))), 5)
        assert client.get_transport_info("sockname") == mine and (await client.noop()).code == 250
        with pytest.raises(SMTPException, match="already connected"):
            await asyncio.ensure_future(client.connect())  # a child connecting again refuses, never waits
    assert len(server.messages) == 3 and not client.is_connected


async def test_waiting_for_another_tasks_session_is_bounded_by_the_timeout(server):
    client = client_for(server)
    release = asyncio.Event()

    async def holder() -> None:
        async with client:
            await release.wait()

    holding = asyncio.ensure_future(holder())
    await asyncio.sleep(0.05)
    with pytest.raises(SMTPConnectTimeoutError, match=r"another task's session on this client stayed open.*clone\(\)"):
        await client.connect(timeout=0.2)
    release.set()
    await holding
