"""A short, reproducible run of benchmarks/fuzz_reply_parser.py inside the suite (its pure-Python engine).

The long runs (atheris, a million inputs) are for the command line; here a
fixed seed and 50,000 inputs take a few seconds, find no crash, reach both
outcomes (replies and protocol errors) and cover the parser; and the same
run finds a bug planted in the parser, which shows the oracle has teeth.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from types import ModuleType

import pytest

from smtp_nb.client import protocol
from tests.hardening.conftest import Figure

ITERATIONS = 50_000
SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_reply_parser.py"


@pytest.fixture(scope="module")
def fuzz() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_reply_parser", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_a_short_fuzz_run_finds_no_crash(fuzz, figures):
    result = fuzz.run_python(ITERATIONS, seed=7)
    case = f"fuzz: {ITERATIONS:,} inputs, pure-Python engine"
    figures.append(Figure(case, f"{result.crashes} crashes", result.seconds, note=f"{result.coverage} arcs"))
    print(result.line())
    assert result.crashes == 0, result.crash_inputs[:3]
    assert result.outcomes["ok"] > 1000 and result.outcomes["error"] > 1000
    assert result.coverage >= 50  # arcs of protocol.py: the feed() paths, the size checks, clear()


def test_the_fuzzer_finds_a_planted_bug(fuzz, monkeypatch):
    """A parser that forgets its continuation lines when it gives up on a reply is caught within the run."""

    def forgetful_clear(self: protocol.ReplyParser) -> None:
        self._partial = b""
        self._size = 0  # but self._lines stays

    monkeypatch.setattr(protocol.ReplyParser, "clear", forgetful_clear)
    result = fuzz.run_python(ITERATIONS, seed=7, max_crashes=1)
    assert result.crashes == 1 and result.iterations < ITERATIONS
