"""Import time of smtp_nb against aiosmtplib, in the same run: fresh interpreters, interleaved, minimum of N.

    python benchmarks/bench_import.py            # 15 fresh interpreters each
    python benchmarks/bench_import.py --reps 30

Three things are timed: ``import smtp_nb``; ``from smtp_nb import SMTP`` (the whole client, which
``import smtp_nb`` leaves for first use); and ``import aiosmtplib`` (which imports its client at once).

Both packages are timed from their bytecode, as an installed package runs: pip compiled aiosmtplib's
when it installed it, and this script compiles smtp_nb's first (``compileall``) even where
PYTHONDONTWRITEBYTECODE is set (it is on these machines, and it made every run compile smtp_nb anew).
"""

from __future__ import annotations

import argparse
import compileall
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = {
    "import smtp_nb": "import smtp_nb",
    "from smtp_nb import SMTP": "from smtp_nb import SMTP",
    "import aiosmtplib": "import aiosmtplib",
}


def once(code: str) -> float:
    probe = f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
    env = {**os.environ, "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    compileall.compile_dir(os.path.join(ROOT, "smtp_nb"), quiet=1)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.reps):
        for name, code in CASES.items():
            times[name].append(once(code))
    base = min(times["import aiosmtplib"])
    print(f"import time, minimum of {args.reps} fresh interpreters each, interleaved")
    for name, samples in times.items():
        print(f"  {name:26s} {1000 * min(samples):7.1f} ms  {min(samples) / base:5.2f}x aiosmtplib")


if __name__ == "__main__":
    main()
