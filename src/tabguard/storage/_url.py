"""Store URLs: one string chooses the backend of every store.

``sqlite:///path`` (relative to the working directory, as in SQLAlchemy),
``sqlite:////abs/path``, ``postgresql://user@host:5432/db``, ``redis://host:6379/0`` and
``memory://`` (in-process, for tests and single-process demos).
"""

from __future__ import annotations

import re
from typing import Literal, get_args
from urllib.parse import urlsplit, urlunsplit

from tabguard.errors import TabguardError

StoreKind = Literal["sqlite", "postgresql", "redis", "memory"]
STORE_KINDS: tuple[str, ...] = get_args(StoreKind)

_SCHEMES: dict[str, StoreKind] = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "postgresql+psycopg": "postgresql",
    "redis": "redis",
    "rediss": "redis",
    "memory": "memory",
}


class StoreURLError(TabguardError, ValueError):
    """A store URL has a scheme tabguard does not know, or one the store does not support."""


def store_kind(url: str) -> StoreKind:
    """Return which backend a store URL selects.

    Parameters
    ----------
    url : str
        A store URL such as ``sqlite:///.tabguard/state.db``.

    Returns
    -------
    {'sqlite', 'postgresql', 'redis', 'memory'}

    Raises
    ------
    StoreURLError
        When the scheme is not one of ``sqlite``, ``postgresql``, ``redis``, ``memory``.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    kind = _SCHEMES.get(scheme)
    if kind is None:
        raise StoreURLError(
            f"store URL {redact_url(url)!r}: scheme must be one of sqlite://, postgresql://, "
            f"redis://, memory://; got {scheme or 'no scheme'!r}"
        )
    return kind


def sqlalchemy_url(url: str) -> str:
    """Return the SQLAlchemy URL for a SQL store URL.

    ``postgresql://`` and ``postgres://`` are normalised to ``postgresql+psycopg://`` (psycopg
    3); ``sqlite:`` URLs pass through; ``memory://`` becomes an in-memory SQLite database.

    Raises
    ------
    StoreURLError
        When the URL does not select a SQL backend.
    """
    kind = store_kind(url)
    if kind == "memory":
        return "sqlite://"
    if kind == "sqlite":
        return url
    if kind == "postgresql":
        rest = url.split("://", 1)[1]
        return f"postgresql+psycopg://{rest}"
    raise StoreURLError(
        f"store URL {redact_url(url)!r}: this store needs a SQL database (sqlite:// or "
        f"postgresql://); got a {kind} URL"
    )


_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)([^\s@/]+)@")


def redact_text(text: str) -> str:
    """Mask every password of a URL inside free text (driver messages, tracebacks)."""
    return _USERINFO.sub(r"\1***@", text)


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (safe for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
