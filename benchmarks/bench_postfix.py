"""The clients and the merge against a real Postfix (a private instance, discard transport), at 0 and 10 ms.

    python benchmarks/bench_postfix.py            # 3 repetitions, interleaved; medians
    python benchmarks/bench_postfix.py --quick    # fewer messages, 1 repetition

Needs root and /usr/sbin/postfix (tests/postfix.py starts the instance on a loopback port). Postfix
offers PIPELINING and CHUNKING, so send_many puts a window of BDAT transactions in each round trip.
Round trips are added by bench_clients.py's delay proxy. "round trips/msg" is counted for smtp_nb (its
waits for replies, the connection's greeting, EHLO and QUIT included); "wall/RTT" is the wall time at
10 ms divided by 10 ms per message, for every client: an upper bound on round trips, which also holds
Postfix's own time per message (about 3 ms here: it fsyncs each queue file). Each measurement is a
fresh process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
import bench_clients  # noqa: E402
import bench_merge  # noqa: E402

from tests import postfix  # noqa: E402

WINDOWS = (1, 8)  # the merge's default, and windows of BDAT transactions as send_many uses them


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a quarter of the messages, one repetition")
    parser.add_argument("--reps", type=int, help="repetitions of each measurement (default 3, quick 1)")
    args = parser.parse_args()
    reps = args.reps or (1 if args.quick else 3)
    scale = 0.25 if args.quick else 1
    loads = {0: int(2000 * scale), 10: int(400 * scale)}
    with postfix.running(discard=True) as pf:
        print(f"server: a private Postfix (discard transport) on port {pf.port}; {reps} repetitions, medians\n")
        rows: dict[int, dict[str, dict[str, float]]] = {}
        for rtt, messages in loads.items():
            with bench_clients.start_proxy(pf.port, rtt) as port:
                runs: dict[str, list[dict[str, float]]] = {c: [] for c in bench_clients.CLIENTS}
                for _ in range(reps):
                    for client in bench_clients.CLIENTS:
                        runs[client].append(bench_clients.run_once(client, port, messages, 1, 1, None))
            rows[rtt] = {
                client: {
                    "rate": statistics.median(messages / s["wall"] for s in samples),
                    "cpu_ms": statistics.median(1000 * s["cpu"] / messages for s in samples),
                    "trips": statistics.median(s["wall"] / (rtt / 1000) / messages for s in samples) if rtt else 0,
                    "waits": statistics.median(s["waits"] / messages for s in samples),
                }
                for client, samples in runs.items()
            }
            print(f"{rtt} ms round trip, 1 recipient, 1 connection, {messages} messages")
            print(
                f"  {'client':20s} {'msg/s':>8s} {'CPU ms/msg':>11s} {'round trips/msg':>16s} {'wall/RTT':>9s} "
                f"{'vs aiosmtplib':>14s}"
            )
            base = rows[rtt]["aiosmtplib"]["rate"]
            for client, row in rows[rtt].items():
                waits = f"{row['waits']:16.2f}" if client.startswith("smtp_nb") else f"{'-':>16s}"
                trips = f"{row['trips']:9.2f}" if rtt else f"{'-':>9s}"
                print(
                    f"  {client:20s} {row['rate']:8.0f} {row['cpu_ms']:11.3f} {waits} {trips} "
                    f"{row['rate'] / base:13.2f}x"
                )
            print()
        merge_rows = loads[0]
        with tempfile.TemporaryDirectory() as folder:
            csv_path = os.path.join(folder, "rows.csv")
            bench_merge.write_rows(csv_path, merge_rows)
            merged: dict[tuple[int, int], dict[str, float]] = {}
            for rtt in (0, 10):
                count = merge_rows if rtt == 0 else loads[10]
                bench_merge.write_rows(csv_path, count)
                with bench_clients.start_proxy(pf.port, rtt) as port:
                    for window in WINDOWS:
                        samples = [bench_merge.run_once(port, csv_path, 1, window=window) for _ in range(reps)]
                        assert all(s["accepted"] == count for s in samples), samples
                        merged[rtt, window] = {
                            "rate": statistics.median(count / s["wall"] for s in samples),
                            "cpu_ms": statistics.median(1000 * s["cpu"] / count for s in samples),
                            "trips": statistics.median(s["wall"] / (rtt / 1000) / count for s in samples) if rtt else 0,
                        }
        many = rows[0]["smtp_nb.send_many"]
        print(f"merge, text rows, journal on disk, 1 connection ({merge_rows} rows at 0 ms, {loads[10]} at 10 ms)")
        for window in WINDOWS:
            at0, at10 = merged[0, window], merged[10, window]
            print(
                f"  window={window}: 0 ms {at0['rate']:.0f} rows/s, CPU {at0['cpu_ms']:.3f} ms/row "
                f"({at0['cpu_ms'] / many['cpu_ms']:.2f}x send_many per message); "
                f"10 ms {at10['rate']:.0f} rows/s, {at10['trips']:.2f} round trips/row (wall)"
            )
        ratio = min(merged[0, w]["cpu_ms"] for w in WINDOWS) / many["cpu_ms"]
        print(f"  merge CPU per row / send_many CPU per message, best window: {ratio:.2f} (target: at most 3)\n")
        trips = rows[10]["smtp_nb.send_many"]["waits"]
        wall = rows[10]["smtp_nb.send_many"]["trips"]
        print("targets:")
        print(f"  {'met ' if trips <= 0.4 else 'MISS'} 10 ms, send_many round trips per message <= 0.4: {trips:.2f}")
        print(f"  {'met ' if wall <= 0.4 else 'MISS'} the same from the clock (wall / 10 ms per message): {wall:.2f}")
        print(f"  {'met ' if ratio <= 3 else 'MISS'} merge CPU per row <= 3x send_many CPU per message: {ratio:.2f}")


if __name__ == "__main__":
    main()
