"""smtp_nb against aiosmtplib and smtplib, in the same run, interleaved, as medians and ratios.

    python benchmarks/bench_clients.py            # every workload (a few minutes)
    python benchmarks/bench_clients.py --quick    # fewer messages and repetitions

The server is Postfix's smtp-sink when it is installed (apt-get install
postfix) and an aiosmtpd server in another process otherwise; the output says
which. aiosmtpd saturates near 2,000 messages/s whatever the client, so only
smtp-sink measures the clients at 0 ms. Round trips are added by a small proxy
in its own process that delays each chunk by half the round trip each way.
Each measurement is a fresh subprocess (so peak memory is its own); at 0 ms
the client and the server are pinned to one core with taskset, because
cross-core wake-ups otherwise dominate and make runs bimodal.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

CLIENTS = ["smtp_nb.send_many", "smtp_nb.sendmail", "aiosmtplib", "smtplib"]
SENDER = "bench@example.com"
BODY = "From: bench@example.com\r\nTo: list@example.com\r\nSubject: benchmark\r\n\r\n" + "hello world\r\n" * 20


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start listening on port {port}") from None
            time.sleep(0.02)


def _taskset(core: int | None) -> list[str]:
    return ["taskset", "-c", str(core)] if core is not None and shutil.which("taskset") else []


@contextlib.contextmanager
def start_server(kind: str, core: int | None) -> Iterator[tuple[str, int]]:
    """Start smtp-sink or aiosmtpd in another process; yield (description, port)."""
    port = _free_port()
    sink = shutil.which("smtp-sink") or ("/usr/sbin/smtp-sink" if os.path.exists("/usr/sbin/smtp-sink") else None)
    if kind == "auto":
        kind = "smtp-sink" if sink else "aiosmtpd"
    if kind == "smtp-sink":
        if not sink:
            raise SystemExit("smtp-sink is not installed (Debian: apt-get install postfix)")
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        command = [*_taskset(core), sink, *user, f"127.0.0.1:{port}", "1024"]
        description = "Postfix smtp-sink" + (f" pinned to core {core}" if core is not None else "")
    else:
        code = (
            "import sys, threading; from smtp_nb.server import LocalServer; "
            f"s = LocalServer(port={port}).start(); print('ready', flush=True); sys.stdin.read()"
        )
        command = [*_taskset(core), sys.executable, "-c", code]
        description = "aiosmtpd (smtp-sink not installed: aiosmtpd limits every client near 2,000 msg/s)"
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        _wait_listening(port, description)
        yield description, port
    finally:
        process.terminate()
        process.wait(10)


# -- the delay proxy --------------------------------------------------------------------------


class _Delayed(asyncio.Protocol):
    """One direction of a proxied connection: each chunk leaves ``delay`` seconds after it came."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.peer: _Delayed | None = None
        self.transport: asyncio.Transport | None = None
        self.pending: collections.deque[tuple[float, bytes]] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None
        self.peer.push(data)

    def push(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.pending.append((loop.time() + self.delay, data))
        if self.timer is None:
            self.timer = loop.call_at(self.pending[0][0], self._flush)

    def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        self.timer = None
        now = loop.time()
        while self.pending and self.pending[0][0] <= now:
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(self.pending.popleft()[1])
            else:
                self.pending.popleft()
        if self.pending:
            self.timer = loop.call_at(self.pending[0][0], self._flush)
        elif self.closing and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.peer.closing = True
            if not self.peer.pending and self.peer.transport is not None:
                self.peer.transport.close()


async def _proxy_main(listen: int, target: int, delay: float) -> None:
    loop = asyncio.get_running_loop()

    class Front(_Delayed):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            transport.pause_reading()  # type: ignore[attr-defined]
            self.connecting = loop.create_task(self._connect(transport))

        async def _connect(self, transport: asyncio.BaseTransport) -> None:
            back = _Delayed(delay)
            await loop.create_connection(lambda: back, "127.0.0.1", target)
            back.peer, self.peer = self, back
            transport.resume_reading()  # type: ignore[attr-defined]

    server = await loop.create_server(lambda: Front(delay), "127.0.0.1", listen)
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


@contextlib.contextmanager
def start_proxy(target: int, rtt_ms: float) -> Iterator[int]:
    """A proxy that adds ``rtt_ms`` to every round trip (half each way), in its own process."""
    if not rtt_ms:
        yield target
        return
    port = _free_port()
    command = [sys.executable, __file__, "--proxy", str(port), str(target), str(rtt_ms / 2000)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        process.stdout.readline()
        yield port
    finally:
        process.terminate()
        process.wait(10)


# -- one measured run (in its own process) ---------------------------------------------------------


def _recipients(count: int, offset: int) -> list[str]:
    return [f"rcpt{offset}-{i}@example.com" for i in range(count)]


async def _smtp_nb(port: int, messages: int, rcpts: int, many: bool) -> None:
    import smtp_nb

    async with smtp_nb.SMTP(hostname="127.0.0.1", port=port, local_hostname="bench.example.com") as client:
        if many:
            batch = ((SENDER, _recipients(rcpts, i), BODY) for i in range(messages))
            async for delivery in client.send_many(batch):
                if delivery.error is not None:
                    raise delivery.error
        else:
            for i in range(messages):
                await client.sendmail(SENDER, _recipients(rcpts, i), BODY)


async def _aiosmtplib(port: int, messages: int, rcpts: int) -> None:
    import aiosmtplib

    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="bench.example.com") as client:
        for i in range(messages):
            await client.sendmail(SENDER, _recipients(rcpts, i), BODY)


def _smtplib(port: int, messages: int, rcpts: int) -> None:
    import smtplib

    with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.example.com") as client:
        for i in range(messages):
            client.sendmail(SENDER, _recipients(rcpts, i), BODY)


def measure(client: str, port: int, messages: int, rcpts: int, connections: int) -> dict[str, float]:
    """Send ``messages`` over ``connections`` connections; return wall time, CPU and peak memory."""
    share = [messages // connections + (i < messages % connections) for i in range(connections)]
    import smtplib  # noqa: F401

    import aiosmtplib  # noqa: F401 - imported before the clock starts, for every client alike

    import smtp_nb  # noqa: F401
    from smtp_nb.client.connection import Connection

    waits = [0]  # smtp_nb's waits for replies: one per round trip (counted, not inferred from the clock)
    read = Connection.read

    async def counted(self: Connection, count: int, timeout: float | None) -> Any:
        waits[0] += 1
        return await read(self, count, timeout)

    Connection.read = counted  # type: ignore[method-assign]
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    if client == "smtplib":
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(connections) as pool:
            list(pool.map(lambda n: _smtplib(port, n, rcpts), share))
    else:

        async def run_all() -> None:
            if client == "aiosmtplib":
                jobs = [_aiosmtplib(port, n, rcpts) for n in share]
            else:
                jobs = [_smtp_nb(port, n, rcpts, many=client.endswith("send_many")) for n in share]
            await asyncio.gather(*jobs)

        asyncio.run(run_all())
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "peak_mb": after.ru_maxrss / 1024, "waits": waits[0]}


def run_once(client: str, port: int, messages: int, rcpts: int, connections: int, core: int | None) -> dict[str, float]:
    command = [
        *_taskset(core),
        sys.executable,
        __file__,
        "--measure",
        json.dumps([client, port, messages, rcpts, connections]),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=1800).stdout
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- the whole benchmark ------------------------------------------------------------------------------


def workloads(quick: bool) -> list[dict[str, Any]]:
    scale = 0.25 if quick else 1
    return [
        {"rtt": 0, "rcpts": 1, "connections": 1, "messages": int(8000 * scale)},
        {"rtt": 0, "rcpts": 5, "connections": 1, "messages": int(4000 * scale)},
        {"rtt": 10, "rcpts": 1, "connections": 1, "messages": int(200 * scale)},
        {"rtt": 10, "rcpts": 5, "connections": 1, "messages": int(100 * scale)},
        {"rtt": 10, "rcpts": 1, "connections": 4, "messages": int(800 * scale)},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a quarter of the messages, 3 repetitions")
    parser.add_argument("--reps", type=int, help="repetitions of each measurement (default 5, quick 3)")
    parser.add_argument("--server", choices=["auto", "smtp-sink", "aiosmtpd"], default="auto")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the 0 ms runs to one core")
    parser.add_argument("--json", help="also write the medians to this file")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--proxy", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*json.loads(args.measure))))
        return
    if args.proxy:
        listen, target, delay = args.proxy
        asyncio.run(_proxy_main(int(listen), int(target), float(delay)))
        return

    reps = args.reps or (3 if args.quick else 5)
    core = None if args.no_pin else 0
    results: list[dict[str, Any]] = []
    with start_server(args.server, core) as (description, server_port):
        print(f"server: {description}; {reps} repetitions, interleaved; medians\n")
        for load in workloads(args.quick):
            with start_proxy(server_port, load["rtt"]) as port:
                pin = core if load["rtt"] == 0 else None
                runs: dict[str, list[dict[str, float]]] = {c: [] for c in CLIENTS}
                for _ in range(reps):
                    for client in CLIENTS:
                        runs[client].append(
                            run_once(client, port, load["messages"], load["rcpts"], load["connections"], pin)
                        )
            rows = {}
            for client, samples in runs.items():
                rate = statistics.median(load["messages"] / s["wall"] for s in samples)
                cpu = statistics.median(1000 * s["cpu"] / load["messages"] for s in samples)
                peak = statistics.median(s["peak_mb"] for s in samples)
                rows[client] = {"msgs_per_s": rate, "cpu_s_per_1000": cpu, "peak_mb": peak}
            base = rows["aiosmtplib"]["msgs_per_s"]
            title = (
                f"{load['rtt']} ms round trip, {load['rcpts']} recipient(s), "
                f"{load['connections']} connection(s), {load['messages']} messages"
            )
            print(title)
            print(f"  {'client':20s} {'msg/s':>9s} {'CPU s/1000':>11s} {'peak MB':>8s} {'vs aiosmtplib':>14s}")
            for client, row in rows.items():
                print(
                    f"  {client:20s} {row['msgs_per_s']:9.0f} {row['cpu_s_per_1000']:11.3f} "
                    f"{row['peak_mb']:8.1f} {row['msgs_per_s'] / base:13.2f}x"
                )
            print()
            results.append({**load, "server": description, "clients": rows})
    _report_targets(results)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)


def _report_targets(results: list[dict[str, Any]]) -> None:
    """The targets of the performance issue, met or not, from this run's medians."""

    def find(rtt: int, rcpts: int, connections: int) -> dict[str, Any] | None:
        for r in results:
            if (r["rtt"], r["rcpts"], r["connections"]) == (rtt, rcpts, connections):
                return r["clients"]  # type: ignore[no-any-return]
        return None

    def ratio(rows: dict[str, Any], client: str) -> float:
        return rows[client]["msgs_per_s"] / rows["aiosmtplib"]["msgs_per_s"]  # type: ignore[no-any-return]

    checks = []
    for rcpts, loop_target, many_target in ((1, 1.9, 3.5), (5, 3.7, 7.0)):
        rows = find(10, rcpts, 1)
        if rows:
            checks.append(
                (f"10 ms, {rcpts} rcpt, sendmail loop >= {loop_target}x", ratio(rows, "smtp_nb.sendmail"), loop_target)
            )
            checks.append(
                (f"10 ms, {rcpts} rcpt, send_many >= {many_target}x", ratio(rows, "smtp_nb.send_many"), many_target)
            )
    rows = find(0, 1, 1)
    if rows:
        checks.append(("0 ms, send_many >= 3x aiosmtplib msg/s", ratio(rows, "smtp_nb.send_many"), 3.0))
        cpu = rows["smtp_nb.send_many"]["cpu_s_per_1000"] / rows["smtplib"]["cpu_s_per_1000"]
        checks.append(("0 ms, smtplib CPU / send_many CPU >= 1", 1 / cpu if cpu else 0, 1.0))
    one, four = find(10, 1, 1), find(10, 1, 4)
    if one and four:
        scale = four["smtp_nb.send_many"]["msgs_per_s"] / one["smtp_nb.send_many"]["msgs_per_s"]
        checks.append(("10 ms, 4 connections >= 3.5x one (send_many)", scale, 3.5))
    print("targets:")
    for name, value, target in checks:
        print(f"  {'met ' if value >= target else 'MISS'} {name}: {value:.2f}")


if __name__ == "__main__":
    main()
