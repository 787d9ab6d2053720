"""Redis clients for tabguard's stores (optional extra ``tabguard[redis]``)."""

from __future__ import annotations

from typing import Any

from tabguard.errors import MissingDependencyError
from tabguard.storage._url import StoreURLError, redact_url, store_kind

#: Socket timeouts (s): a Redis that is down or unreachable must fail fast, not stall requests.
REDIS_TIMEOUT_S = 1.0


def create_redis_client(url: str, *, timeout: float = REDIS_TIMEOUT_S, **kwargs: Any) -> Any:
    """Create a ``redis.Redis`` client for a ``redis://`` URL.

    Parameters
    ----------
    url : str
        ``redis://host:port/db`` (``rediss://`` for TLS).
    timeout : float, default 1.0
        Connect and read timeout in seconds.
    **kwargs
        Passed to ``redis.Redis.from_url``.

    Returns
    -------
    redis.Redis
        A client with ``decode_responses=True``.

    Raises
    ------
    MissingDependencyError
        When redis-py is not installed.
    """
    if store_kind(url) != "redis":
        raise StoreURLError(f"store URL {redact_url(url)!r}: expected a redis:// URL")
    try:
        import redis
    except ImportError as exc:
        raise MissingDependencyError(
            "redis", "redis", f"the Redis store {redact_url(url)!r}"
        ) from exc
    options: dict[str, Any] = {
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "decode_responses": True,
        "health_check_interval": 30,
    }
    options.update(kwargs)
    return redis.Redis.from_url(url, **options)
