"""An in-process flag store, for tests and single-process demos."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from tabguard.flags._base import BaseFlagStore, effective
from tabguard.flags._model import FlagChange


class MemoryFlagStore(BaseFlagStore):
    """Flags in a dict guarded by a lock; lost when the process ends."""

    def __init__(self) -> None:
        self.url = "memory://"
        self._values: dict[str, Any] = {}
        self._history: list[FlagChange] = []
        self._lock = threading.Lock()

    def _read_values(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._values)

    def _write(
        self, name: str, value: Any, actor: str, reason: str | None, at: datetime
    ) -> FlagChange:
        with self._lock:
            old = effective(self._values, name)
            self._values[name] = value
            change = FlagChange(len(self._history) + 1, name, old, value, actor, reason, at)
            self._history.append(change)
            return change

    def history(self, limit: int = 50, name: str | None = None) -> list[FlagChange]:
        """Return the audit trail, newest first."""
        with self._lock:
            items = [c for c in reversed(self._history) if name is None or c.name == name]
        return items[: max(limit, 0)]

    def version(self) -> int:
        """Return the number of changes so far."""
        return len(self._history)
