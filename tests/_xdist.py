"""The pytest-xdist scheduler of ``make test`` (``--dist loadgroup``, see tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling


class GroupScheduling(LoadScopeScheduling):
    """xdist's scope scheduling with the scopes of ``group`` (a function of the test id), in
    the order the workers collected them (tests/conftest.py puts the costliest first).

    Each worker is given whole groups, the next one whenever it has two tests or fewer left:
    a group's module and session fixtures are built by one worker.
    """

    def __init__(
        self, config: pytest.Config, log: Any = None, *, group: Callable[[str], str]
    ) -> None:
        super().__init__(config, log)
        self._group = group
        # The collection's order, not xdist's (the largest groups by test count first). The
        # work is sent as indices into each worker's collection, so the order is set where
        # the tests are collected, not here.
        config.option.loadscopereorder = False

    def _split_scope(self, nodeid: str) -> str:
        return self._group(nodeid)
