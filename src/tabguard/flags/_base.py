"""The :class:`FlagStore` protocol and the logic every backend shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import Any, Protocol, Self, runtime_checkable

from tabguard.flags._model import (
    FLAG_SPECS,
    FlagChange,
    FlagError,
    Flags,
    FlagSnapshot,
    flags_from_values,
    parse_flag,
)


@runtime_checkable
class FlagStore(Protocol):
    """Where runtime flags live; every backend (memory, SQL, Redis) has this shape.

    ``version()`` is cheap (one indexed read or one Redis GET) so a running service can poll it
    every few hundred milliseconds and re-read the flags only when it changed.
    """

    url: str

    def get_all(self) -> Flags:
        """Return the effective flags (defaults for flags never set)."""
        ...

    def get(self, name: str) -> Any:
        """Return one flag's effective canonical value."""
        ...

    def set(self, name: str, value: Any, actor: str, reason: str | None = None) -> FlagChange:
        """Validate and set a flag, recording who, when, old → new and why."""
        ...

    def history(self, limit: int = 50, name: str | None = None) -> list[FlagChange]:
        """Return the audit trail, newest first."""
        ...

    def version(self) -> int:
        """Return a counter that grows with every change (0 before the first)."""
        ...

    def snapshot(self) -> FlagSnapshot:
        """Return the flags with the version they were read at."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class BaseFlagStore(ABC):
    """Validation and derived reads shared by the backends; subclasses do the storage."""

    url: str

    @abstractmethod
    def _read_values(self) -> dict[str, Any]:
        """Return the stored canonical values by flag name (unset flags absent)."""

    @abstractmethod
    def _write(
        self, name: str, value: Any, actor: str, reason: str | None, at: datetime
    ) -> FlagChange:
        """Store a validated value and its history entry atomically; return the entry."""

    @abstractmethod
    def history(self, limit: int = 50, name: str | None = None) -> list[FlagChange]:
        """Return the audit trail, newest first."""

    @abstractmethod
    def version(self) -> int:
        """Return the change counter."""

    def close(self) -> None:  # noqa: B027 - optional hook, not every backend holds connections
        """Release connections (nothing to release by default)."""

    def get_all(self) -> Flags:
        """Return the effective flags (defaults for flags never set)."""
        return flags_from_values(self._read_values())

    def get(self, name: str) -> Any:
        """Return one flag's effective canonical value.

        Raises
        ------
        FlagError
            When ``name`` is not a known flag.
        """
        if name not in FLAG_SPECS:
            raise FlagError(name, f"unknown flag; known flags: {', '.join(FLAG_SPECS)}", name)
        return self.get_all().to_dict()[name]

    def set(self, name: str, value: Any, actor: str, reason: str | None = None) -> FlagChange:
        """Validate and set a flag, recording the change in the audit trail.

        Parameters
        ----------
        name : str
            A flag name (``flow``, ``model``, ``threshold``, ``neutralize``, ``delay``).
        value : Any
            The new value, as a command-line string or a Python value.
        actor : str
            Who makes the change (user name, service account).
        reason : str, optional
            Why, kept in the audit trail.

        Returns
        -------
        FlagChange
            The audit-trail entry, with the old and new values.

        Raises
        ------
        FlagError
            Unknown flag, bad value, or an empty actor.
        BackendUnavailableError
            When the store cannot be reached.
        """
        canonical = parse_flag(name, value)
        if not isinstance(actor, str) or not actor.strip():
            raise FlagError(name, "a change needs a non-empty actor (who made it)", actor)
        reason = reason.strip() or None if isinstance(reason, str) else None
        return self._write(name, canonical, actor.strip()[:256], reason, datetime.now(UTC))

    def snapshot(self) -> FlagSnapshot:
        """Return the flags with the version they were read at.

        The version is read first: if a change lands in between, the snapshot carries newer
        flags under an older version and the next poll simply reads them again.
        """
        version = self.version()
        return FlagSnapshot(self.get_all(), version)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def effective(values: dict[str, Any], name: str) -> Any:
    """Return the effective canonical value of ``name`` given stored ``values``."""
    return flags_from_values(values).to_dict()[name]
