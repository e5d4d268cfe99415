"""nbval runs each notebook here in a kernel and compares its outputs with the stored ones.

Progress bars change as they run, so they are turned off for the kernels nbval
starts (``TQDM_DISABLE=1``, which the mail merge also honours); the variable is
set only while the notebooks' own cells run. The sanitize file named in
pyproject.toml's addopts is relative to the repository's root, also when pytest
starts in another folder.
"""

from __future__ import annotations

import os

import pytest

_saved: dict[str, str | None] = {}


def pytest_configure(config: pytest.Config) -> None:
    sanitize = config.getoption("nbval_sanitize_with", None)
    if sanitize and not os.path.isabs(sanitize) and not os.path.exists(sanitize):
        config.option.nbval_sanitize_with = str(config.rootpath / sanitize)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # tryfirst: before the setup that starts the notebook's kernel, which inherits the environment
    _saved.setdefault("TQDM_DISABLE", os.environ.get("TQDM_DISABLE"))
    os.environ["TQDM_DISABLE"] = "1"


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if nextitem is not None and nextitem.path.parent == item.path.parent:
        return  # the next cell (or notebook) of this folder needs it too
    previous = _saved.pop("TQDM_DISABLE", None)
    if previous is None:
        os.environ.pop("TQDM_DISABLE", None)
    else:
        os.environ["TQDM_DISABLE"] = previous
