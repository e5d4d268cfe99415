"""One client shared by several tasks: sessions take turns, commands take turns, nobody closes another's connection."""

from __future__ import annotations

import asyncio

from smtp_nb import SMTP
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
