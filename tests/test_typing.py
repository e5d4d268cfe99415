"""The client stays ``mypy --strict`` clean (STYLE.md), the rest type-checks."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def mypy(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_client_is_strict_clean():
    result = mypy("--strict", "--follow-imports=silent", "smtp_nb/client")
    assert result.returncode == 0, result.stdout


def test_package_type_checks():
    result = mypy("--ignore-missing-imports", "smtp_nb")
    assert result.returncode == 0, result.stdout
