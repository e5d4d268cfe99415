"""A fresh notebook session for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smtp_nb.notebook.session import Session, get_session, reset_session


@pytest.fixture(autouse=True)
def fresh_session() -> Iterator[None]:
    """Every test starts and ends without connections, server or loop thread."""
    reset_session()
    yield
    reset_session()


@pytest.fixture
def session() -> Session:
    return get_session()
