"""A 10,000-row merge into a local server: memory stays flat as rows grow, and 4 connections against 1.

    python benchmarks/bench_merge.py           # 1,000 and 10,000 rows, 1 and 4 connections
    python benchmarks/bench_merge.py --quick   # 500 and 5,000 rows

Rows come from a CSV file (read as a stream, as a user's large file would be).
Each merge runs in a fresh process, so its peak RSS (ru_maxrss) is its own;
one more run per size traces Python's allocations (tracemalloc) for their
peak, apart from the timed runs because tracing slows every allocation. The server is smtp-sink when
installed (aiosmtpd otherwise; the output says which), started as in
bench_clients.py. The journal is a real SQLite file (synchronous=FULL).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_clients import start_proxy, start_server

TEMPLATE = """From: Course Office <office@example.com>
To: {{ email | mailbox(name) }}
Subject: Your results, {{ name }}

Dear {{ name }},

your grade in {{ course }} is {{ grade }}.

-- the course office
"""


def write_rows(path: str, count: int) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "email", "course", "grade"])
        for i in range(count):
            writer.writerow([i, f"Student {i}", f"student{i}@example.com", f"Course {i % 17}", "ABCDE"[i % 5]])


def measure(port: int, rows: str, concurrency: int, traced: bool, window: int = 1) -> dict[str, float]:
    """One merge; with ``traced``, Python's allocations are traced (slower: no timing then).

    The merge's modules (jinja2 among them) are imported before the clock starts, as the clients'
    are in bench_clients.py: CPU per row is the rows' cost, not a one-off import spread over them.
    """
    import smtp_nb
    import smtp_nb.mailmerge

    if traced:
        tracemalloc.start()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_SELF)
        result = smtp_nb.merge_sync(
            TEMPLATE,
            rows,
            send=True,
            key="id",
            smtp={"hostname": "127.0.0.1", "port": port, "local_hostname": "bench.example.com"},
            concurrency=concurrency,
            window=window,
            journal=os.path.join(folder, "journal.sqlite"),
            progress=False,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        accepted = result.counts["accepted"]
    _, traced_peak = tracemalloc.get_traced_memory() if traced else (0, 0)
    return {
        "accepted": accepted,
        "wall": wall,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "rss_mb": after.ru_maxrss / 1024,
        "traced_mb": traced_peak / 2**20,
    }


def run_once(port: int, rows: str, concurrency: int, traced: bool = False, window: int = 1) -> dict[str, float]:
    command = [sys.executable, __file__, "--measure", json.dumps([port, rows, concurrency, traced, window])]
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=3600).stdout
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--server", choices=["auto", "smtp-sink", "aiosmtpd"], default="auto")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*json.loads(args.measure))))
        return
    small, large = (500, 5000) if args.quick else (1000, 10000)
    with tempfile.TemporaryDirectory() as folder, start_server(args.server, None) as (description, port):
        files = {}
        for count in (small, large):
            files[count] = os.path.join(folder, f"rows-{count}.csv")
            write_rows(files[count], count)
        print(f"server: {description}; {args.reps} repetitions, medians\n")
        columns = f"{'rows':>6s} {'conns':>5s} {'msg/s':>8s} {'CPU s/1000':>11s}"
        print(f"  {columns} {'peak RSS MB':>12s} {'peak traced MB':>15s}")
        medians = {}
        for count, concurrency in ((small, 1), (large, 1), (large, 4)):
            samples = [run_once(port, files[count], concurrency) for _ in range(args.reps)]
            traced = run_once(port, files[count], concurrency, traced=True)
            assert all(s["accepted"] == count for s in [*samples, traced]), samples
            m = {
                "rate": statistics.median(count / s["wall"] for s in samples),
                "cpu": statistics.median(1000 * s["cpu"] / count for s in samples),
                "rss": statistics.median(s["rss_mb"] for s in samples),
                "traced": traced["traced_mb"],
            }
            medians[(count, concurrency)] = m
            print(
                f"  {count:6d} {concurrency:5d} {m['rate']:8.0f} {m['cpu']:11.3f} {m['rss']:12.1f} {m['traced']:15.1f}"
            )
        growth = medians[(large, 1)]["rss"] / medians[(small, 1)]["rss"] - 1
        speedup = medians[(large, 4)]["rate"] / medians[(large, 1)]["rate"]
        print(f"\npeak RSS, {large} rows against {small}: {growth:+.1%} (target: within 20%)")
        print(f"4 connections against 1, {large} rows, 0 ms: {speedup:.2f}x (one process: CPU-bound here)")
        with start_proxy(port, 10) as delayed:
            rates = {}
            for concurrency in (1, 4):
                samples = [run_once(delayed, files[small], concurrency) for _ in range(args.reps)]
                rates[concurrency] = statistics.median(small / s["wall"] for s in samples)
            print(
                f"4 connections against 1, {small} rows, 10 ms round trip: {rates[4] / rates[1]:.2f}x "
                f"({rates[1]:.0f} and {rates[4]:.0f} msg/s)"
            )


if __name__ == "__main__":
    main()
