"""The package as it would be published: sdist and wheel build, the wheel installs into a fresh venv and works there.

The build runs without isolation and the venv sees the test environment's packages (through a ``.pth`` file)
with the wheel installed ``--no-deps``: nothing is downloaded, and the check is about smtp_nb's own files.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile

import pytest

import smtp_nb

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _clean_environment() -> dict[str, str]:
    """No PYTHONPATH: the installed copy, not this checkout, must be the one imported."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        env=_clean_environment(),
        cwd=out,
    )
    return out


@pytest.mark.timeout(300)
def test_sdist_and_wheel_carry_the_version_license_and_type_marker(dist):
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    assert wheel.name.startswith(f"smtp_nb-{smtp_nb.__version__}-py3-none-any")
    assert sdist.name == f"smtp_nb-{smtp_nb.__version__}.tar.gz"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "smtp_nb/py.typed" in names and "smtp_nb/notebook/magics/connections.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert f"Version: {smtp_nb.__version__}" in metadata and "License-Expression: MIT" in metadata
    assert "Provides-Extra: keyring" in metadata
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    assert f"smtp_nb-{smtp_nb.__version__}/LICENSE" in members


@pytest.mark.timeout(300)
def test_the_wheel_installs_in_a_fresh_venv_and_runs_the_demo(dist, tmp_path):
    (wheel,) = dist.glob("*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    python = env_dir / "bin" / "python"
    # what the test environment has installed (IPython, aiosmtpd, ...), after the venv's own packages; an
    # editable smtp_nb there is not seen (its hook is a .pth file, which only site-packages folders run)
    inner = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (pathlib.Path(inner) / "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    environment = _clean_environment()
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        env=environment,
    )
    where = subprocess.run(
        [str(python), "-c", "import smtp_nb, smtp_nb.notebook.magics; print(smtp_nb.__version__, smtp_nb.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
    ).stdout.split()
    assert where[0] == smtp_nb.__version__
    assert where[1].startswith(str(env_dir)) and not where[1].startswith(str(ROOT))
    demo = subprocess.run(
        [str(python), "-m", "smtp_nb"], capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=120
    )
    assert demo.returncode == 0, demo.stderr
    assert re.search(r"sent: OK queued as [0-9A-F]{10}", demo.stdout)
    assert "235 2.7.0 Authentication successful" in demo.stdout


def test_the_version_is_written_in_one_place():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'version = { attr = "smtp_nb.__version__" }' in pyproject
    assert smtp_nb.__version__ not in pyproject
