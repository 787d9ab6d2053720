"""Clocks: where "now" comes from.

Production code asks a :class:`Clock`; the default is the system clock. Tests and the traffic
simulator pass their own. Nothing a client sends over the API can move it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Anything with ``now() -> aware datetime``."""

    def now(self) -> datetime:
        """The current time (timezone-aware, UTC)."""
        ...


class SystemClock:
    """The machine's clock (UTC)."""

    def now(self) -> datetime:
        """``datetime.now(UTC)``."""
        return datetime.now(UTC)


class FixedClock:
    """A clock that moves only when told (tests).

    Parameters
    ----------
    at : datetime
        The initial time (naive times are taken as UTC).
    """

    def __init__(self, at: datetime) -> None:
        self._at = at if at.tzinfo else at.replace(tzinfo=UTC)

    def now(self) -> datetime:
        """The time it was set to."""
        return self._at

    def set(self, at: datetime) -> None:
        """Move to ``at``."""
        self._at = at if at.tzinfo else at.replace(tzinfo=UTC)

    def advance(self, delta: timedelta) -> None:
        """Move forward by ``delta``."""
        self._at += delta
