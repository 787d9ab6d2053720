"""Choose a flag store backend from its URL."""

from __future__ import annotations

from tabguard.flags._base import BaseFlagStore
from tabguard.storage import store_kind


def open_flag_store(url: str, *, redis_prefix: str = "tabguard:") -> BaseFlagStore:
    """Open the flag store a URL selects.

    Parameters
    ----------
    url : str
        ``sqlite:///path`` | ``postgresql://...`` (SQL tables), ``redis://...``, or
        ``memory://`` (in-process).
    redis_prefix : str, default "tabguard:"
        Key prefix for the Redis backend.

    Returns
    -------
    BaseFlagStore
        A :class:`~tabguard.flags.FlagStore`.

    Raises
    ------
    StoreURLError
        Unknown URL scheme.
    MissingDependencyError
        The backend's driver is not installed.
    BackendUnavailableError
        The SQL database cannot be reached to create the tables.
    """
    kind = store_kind(url)
    if kind == "memory":
        from tabguard.flags._memory import MemoryFlagStore

        return MemoryFlagStore()
    if kind == "redis":
        from tabguard.flags._redis import RedisFlagStore

        return RedisFlagStore(url, prefix=redis_prefix)
    from tabguard.flags._sql import SqlFlagStore

    return SqlFlagStore(url)
