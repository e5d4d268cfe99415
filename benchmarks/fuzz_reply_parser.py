"""Fuzz the SMTP reply parser (``smtp_nb.client.protocol.ReplyParser``) for a fixed number of iterations.

    python benchmarks/fuzz_reply_parser.py --iterations 1000000               # atheris if installed
    python benchmarks/fuzz_reply_parser.py --iterations 200000 --engine python

Engines: ``atheris`` (libFuzzer, coverage-guided; ``pip install atheris``),
run in a child process so that libFuzzer's exit does not end this one;
``python``, a coverage-guided mutational fuzzer in pure Python (line arcs of
protocol.py through ``sys.settrace``, a corpus of inputs that reached new
arcs, byte-level mutations and splices); ``auto`` (default) takes atheris
when it imports.

The oracle, for every input (the first 8 bytes choose where it is cut
into reads, the rest is what the server sent): only ``SMTPProtocolError``
may come out of ``feed()``; the input parses alike whole and cut (the same
replies, or an error both ways); every reply has a code from 200 to 599 and
text; the parser's buffers stay within its line and reply limits. Anything
else is a crash: its input is saved (``--crash-dir``) and the exit status
is 1. The last line printed is the figure: engine, iterations, seconds,
crashes, and coverage.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from smtp_nb.client import protocol
from smtp_nb.client.errors import SMTPProtocolError

SEEDS = [
    b"220 mx.example.com ESMTP ready\r\n",
    b"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 35882577\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
    b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n",
    b"250\n",
    b"250-sink\r\n250-PIPELINING\r\n250 \r\n",
    b"554 5.7.1 <x@example.com>: Relay access denied\r\n",
    b"421 4.4.2 timeout, closing\r\n",
    b"334 VXNlcm5hbWU6\r\n",
    b"250 caf\xe9 \xff\xfe\r\n",
    b"250-" + b"x" * 200 + b"\r\n250 end\r\n",
    b"HTTP/1.1 400 Bad Request\r\n\r\n",
]
TOKENS = [b"\r\n", b"\n", b"\r", b"250", b"250-", b"250 ", b"5", b"-", b" ", b"\x00", b"\xff", b"\xc3\xa9", b"9"]
MAX_INPUT = 80_000  # room for lines over MAX_LINE_LENGTH and replies over MAX_REPLY_LENGTH
TRACED = 16_384  # longest input the python engine traces for coverage


class Crash(AssertionError):
    """The parser broke the oracle."""


def _cuts(head: bytes, size: int) -> list[int]:
    return sorted({(b * (i + 1) * 7919) % (size + 1) for i, b in enumerate(head)})


def _feed(chunks: list[bytes]) -> tuple[str, list[Any], bool]:
    parser = protocol.ReplyParser()
    replies: list[Any] = []
    for chunk in chunks:
        try:
            replies += parser.feed(chunk)
        except SMTPProtocolError as exc:
            if exc.code != -1 or parser.has_partial:
                raise Crash(f"a protocol error left state behind or has code {exc.code}") from exc
            return "error", replies, False
        if len(parser._partial) > protocol.MAX_LINE_LENGTH or parser._size > protocol.MAX_REPLY_LENGTH:
            raise Crash("the parser holds more than its limits")
    return "ok", replies, parser.has_partial


def check(data: bytes) -> str:
    """Run the oracle on one input; returns 'ok' or 'error' (a protocol error), raises Crash otherwise."""
    head, payload = data[:8], data[8:]
    bounds = [0, *_cuts(head, len(payload)), len(payload)]
    chunks = [payload[a:b] for a, b in itertools.pairwise(bounds)]
    try:
        whole = _feed([payload])
        cut = _feed(chunks)
    except (Crash, SMTPProtocolError):
        raise
    except Exception as exc:  # anything else escaping feed() is a crash
        raise Crash(f"{type(exc).__name__}: {exc}") from exc
    if whole[0] != cut[0] or (whole[0] == "ok" and whole != cut):
        raise Crash(f"whole and cut disagree: {whole[0]} / {cut[0]}")
    for reply in whole[1]:
        if not (200 <= reply.code <= 599 and isinstance(reply.message, str)):
            raise Crash(f"a reply out of range: {reply!r}")
    return whole[0]


# -- the pure-Python engine ----------------------------------------------------------------


@dataclasses.dataclass
class Figures:
    engine: str
    iterations: int
    seconds: float
    crashes: int
    coverage: int  # arcs of protocol.py (python) or libFuzzer's 'cov' (atheris)
    corpus: int = 0
    outcomes: dict[str, int] = dataclasses.field(default_factory=dict)
    crash_inputs: list[bytes] = dataclasses.field(default_factory=list)

    def line(self) -> str:
        rate = self.iterations / self.seconds if self.seconds else 0.0
        return (
            f"engine={self.engine} iterations={self.iterations} seconds={self.seconds:.2f} "
            f"execs_per_s={rate:,.0f} crashes={self.crashes} coverage={self.coverage} corpus={self.corpus}"
        )


class _Coverage:
    """Line arcs (previous line, line) executed in protocol.py, through sys.settrace."""

    def __init__(self) -> None:
        self.filename = protocol.__file__
        self.arcs: set[tuple[int, int]] = set()
        self.new = False

    def global_trace(self, frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        if frame.f_code.co_filename != self.filename:
            return None
        last = [frame.f_lineno]

        def local(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "line":
                arc = (last[0], frame.f_lineno)
                if arc not in self.arcs:
                    self.arcs.add(arc)
                    self.new = True
                last[0] = frame.f_lineno
            return local

        return local


def _mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(9)
        pos = rng.randint(0, len(buf))
        if choice == 0 and buf:  # flip a bit
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif choice == 1:  # insert a random byte
            buf[pos:pos] = bytes([rng.randrange(256)])
        elif choice == 2:  # insert a token
            buf[pos:pos] = rng.choice(TOKENS)
        elif choice == 3 and buf:  # delete a range
            end = min(len(buf), pos + rng.randint(1, 16))
            del buf[pos:end]
        elif choice == 4 and buf:  # repeat a range many times (long lines, endless replies)
            start = rng.randrange(len(buf))
            piece = bytes(buf[start : start + rng.randint(1, 64)])
            times = rng.choice([2, 8, 64]) if rng.random() < 0.97 else rng.choice([600, 3000])
            buf[pos:pos] = piece * times
        elif choice == 5:  # splice with another input
            other = rng.choice(corpus)
            cut = rng.randint(0, len(other))
            buf[pos:] = other[cut:] if rng.random() < 0.5 else other[:cut]
        elif choice == 6 and buf:  # a digit, a code, a line end where there was something else
            buf[rng.randrange(len(buf))] = rng.choice(b"0123456789\r\n -")
        elif choice == 7 and len(buf) > 8:  # new cut points
            buf[:8] = bytes(rng.randrange(256) for _ in range(8))
        elif choice == 8:  # truncate
            del buf[pos:]
    return bytes(buf[:MAX_INPUT])


def _parent(rng: random.Random, corpus: list[bytes]) -> bytes:
    """A corpus entry, the shorter of two drawn: long inputs are slow to trace and to mutate."""
    first, second = rng.choice(corpus), rng.choice(corpus)
    return first if len(first) <= len(second) else second


def run_python(
    iterations: int,
    seed: int = 0,
    crash_dir: str | None = None,
    check: Callable[[bytes], str] = check,
    max_crashes: int | None = None,
) -> Figures:
    """The pure-Python coverage-guided fuzzer: ``iterations`` inputs, reproducible from ``seed``.

    Inputs over ``TRACED`` bytes are checked without tracing (their lines cost a callback
    each), so only shorter ones join the corpus; ``max_crashes`` stops the run early.
    """
    rng = random.Random(seed)
    coverage = _Coverage()
    corpus = [bytes(rng.randrange(256) for _ in range(8)) + s for s in SEEDS]
    figures = Figures("python", iterations, 0.0, 0, 0)
    started = time.perf_counter()
    previous = sys.gettrace()
    for i in range(iterations):
        data = corpus[i] if i < len(corpus) else _mutate(rng, _parent(rng, corpus), corpus)
        coverage.new = False
        if len(data) <= TRACED:
            sys.settrace(coverage.global_trace)
        try:
            outcome = check(data)
        except Crash as exc:
            outcome = "crash"
            figures.crashes += 1
            figures.crash_inputs.append(data)
            print(f"crash at iteration {i}: {exc}; input {data[:120]!r}", file=sys.stderr)
            if crash_dir:
                os.makedirs(crash_dir, exist_ok=True)
                with open(os.path.join(crash_dir, f"crash-{i}.bin"), "wb") as handle:
                    handle.write(data)
        finally:
            sys.settrace(previous)
        figures.outcomes[outcome] = figures.outcomes.get(outcome, 0) + 1
        if coverage.new and i >= len(corpus):
            corpus.append(data)
        if max_crashes is not None and figures.crashes >= max_crashes:
            figures.iterations = i + 1
            break
    figures.seconds = time.perf_counter() - started
    figures.coverage = len(coverage.arcs)
    figures.corpus = len(corpus)
    return figures


# -- atheris ------------------------------------------------------------------------------------


def _atheris_child(argv: list[str]) -> None:
    import atheris

    # protocol.py is already imported (by this file): instrument its code in place for coverage.
    for function in (protocol.ReplyParser.feed, protocol.ReplyParser.clear, _feed, check):
        atheris.instrument_func(function)

    def one_input(data: bytes) -> None:
        check(data)  # a Crash propagates: libFuzzer reports it and saves the input

    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def run_atheris(iterations: int, seed: int, crash_dir: str | None, max_len: int) -> Figures:
    work = crash_dir or os.getcwd()
    os.makedirs(work, exist_ok=True)
    corpus = tempfile.mkdtemp(prefix="fuzz-reply-corpus-")  # the seeds; libFuzzer adds what it finds
    for number, seed_input in enumerate(SEEDS):
        with open(os.path.join(corpus, f"seed-{number}"), "wb") as handle:
            handle.write(bytes(8) + seed_input)
    argv = [
        sys.executable,
        os.path.abspath(__file__),
        "--engine",
        "atheris-child",
        "--",
        corpus,
        f"-runs={iterations}",
        f"-seed={seed or 1}",
        f"-max_len={max_len}",
        f"-artifact_prefix={os.path.join(work, '')}",
        "-print_final_stats=1",
    ]
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    finally:
        shutil.rmtree(corpus, ignore_errors=True)
    seconds = time.perf_counter() - started
    log = done.stderr
    runs = re.findall(r"Done (\d+) runs", log)
    cov = re.findall(r"cov: (\d+)", log)
    crashed = done.returncode != 0
    if crashed:
        print(log[-3000:], file=sys.stderr)
    return Figures(
        "atheris",
        int(runs[-1]) if runs else iterations,
        seconds,
        1 if crashed else 0,
        int(cov[-1]) if cov else 0,
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--" in args:
        args, rest = args[: args.index("--")], args[args.index("--") + 1 :]
    else:
        rest = []
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=100_000, help="inputs to run (default 100,000)")
    parser.add_argument("--engine", choices=["auto", "atheris", "python", "atheris-child"], default="auto")
    parser.add_argument("--seed", type=int, default=0, help="random seed (the python engine is reproducible)")
    parser.add_argument("--crash-dir", help="where inputs that crash are saved")
    parser.add_argument("--max-len", type=int, default=MAX_INPUT, help="longest input for atheris")
    options = parser.parse_args(args)
    if options.engine == "atheris-child":
        _atheris_child([sys.argv[0], *rest])
        return 0
    engine = options.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
        except ImportError:
            engine = "python"
        else:
            engine = "atheris"
    if engine == "atheris":
        figures = run_atheris(options.iterations, options.seed, options.crash_dir, options.max_len)
    else:
        figures = run_python(options.iterations, options.seed, options.crash_dir)
    print(figures.line())
    return 1 if figures.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
