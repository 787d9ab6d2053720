"""One flag-store fixture, parametrised over every backend (the shared suite runs on each)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tabguard.flags import BaseFlagStore, open_flag_store

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]


@pytest.fixture(params=BACKENDS)
def flag_backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str, str]:
    """(backend name, store URL, redis prefix) for one backend."""
    kind = request.param
    prefix = "tabguard:"
    if kind == "memory":
        url = "memory://"
    elif kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    elif kind == "postgres":
        url = request.getfixturevalue("postgres_url")
    else:
        url = request.getfixturevalue("redis_server_url")
        prefix = request.getfixturevalue("redis_prefix")
    return kind, url, prefix


@pytest.fixture
def open_store(flag_backend: tuple[str, str, str]) -> Iterator[Callable[[], BaseFlagStore]]:
    """Open (another) store on the backend's URL; all are closed after the test."""
    _, url, prefix = flag_backend
    opened: list[BaseFlagStore] = []
    shared: list[BaseFlagStore] = []

    def factory() -> BaseFlagStore:
        # memory:// is per instance: hand back the same one so "two stores" share state.
        if url == "memory://" and shared:
            return shared[0]
        store = open_flag_store(url, redis_prefix=prefix)
        opened.append(store)
        shared.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], BaseFlagStore]) -> BaseFlagStore:
    """A fresh, empty flag store on the backend under test."""
    return open_store()
