"""API keys (S1): created by an operator, stored hashed, checked on every request.

A key looks like ``tg_<key id>_<secret>``. The key id (12 hex digits) is the table's primary
key, so verification is one indexed lookup, never a scan; only the SHA-256 of the whole key is
stored, and the comparison is constant-time. SHA-256 (not a slow password hash) is right here
because the secret is 256 random bits: there is nothing to brute-force.

Scopes: ``decide`` (ask for decisions, the default), ``score`` (responses may include the
score), ``monitor`` (the monitoring dashboard's data), ``admin`` (operator endpoints; implies
the others).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, Self, runtime_checkable

import sqlalchemy as sa

from tabguard.errors import TabguardError
from tabguard.serving._scopes import DEFAULT_SCOPES, SCOPES
from tabguard.storage import (
    api_keys_table,
    backend_errors,
    create_sql_engine,
    ensure_schema,
    redact_url,
    store_kind,
)
from tabguard.storage._url import StoreURLError

KEY_PREFIX = "tg_"
_KEY_ID_HEX = 12
_NAME_MAX = 128


class ApiKeyError(TabguardError, ValueError):
    """An API key operation was given a bad name or scope, or names an unknown key."""


@dataclass(frozen=True)
class ApiClient:
    """Who a valid API key belongs to.

    Attributes
    ----------
    name : str
        The client's name (given at creation).
    scopes : frozenset of str
        What the key may do.
    key_id : str
        The public part of the key (safe to log).
    created_at : datetime or None
        When the key was created.
    revoked_at : datetime or None
        When it was revoked (only set in :meth:`KeyStore.list`).
    """

    name: str
    scopes: frozenset[str]
    key_id: str
    created_at: datetime | None = None
    revoked_at: datetime | None = field(default=None, compare=False)

    def can(self, scope: str) -> bool:
        """Whether the key holds ``scope`` (``admin`` implies every scope)."""
        return scope in self.scopes or "admin" in self.scopes


def parse_scopes(
    scopes: str | list[str] | tuple[str, ...] | frozenset[str] | None,
) -> frozenset[str]:
    """Validate scopes given as ``"decide,score"`` or a list.

    Raises
    ------
    ApiKeyError
        When a scope is unknown or none is given.
    """
    if scopes is None:
        return frozenset(DEFAULT_SCOPES)
    items = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    names = {s.strip().lower() for s in items if s.strip()}
    unknown = sorted(names - set(SCOPES))
    if unknown or not names:
        raise ApiKeyError(
            f"scopes: each must be one of {', '.join(SCOPES)} (comma-separated); got {scopes!r}"
        )
    return frozenset(names)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > _NAME_MAX:
        raise ApiKeyError(f"key name: must be 1-{_NAME_MAX} characters; got {name!r}")
    if any(c.isspace() or not c.isprintable() for c in name.strip()):
        raise ApiKeyError(f"key name: must not contain spaces or control characters; got {name!r}")
    return name.strip()


def hash_key(key: str) -> str:
    """Return the SHA-256 hex digest stored for ``key``."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """Return ``(key_id, secret)`` for a well-formed key, else ``None``."""
    if not isinstance(key, str) or not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    parts = key[len(KEY_PREFIX) :].split("_", 1)
    if len(parts) != 2 or len(parts[0]) != _KEY_ID_HEX or not parts[1]:
        return None
    key_id = parts[0]
    if any(c not in "0123456789abcdef" for c in key_id):
        return None
    return key_id, parts[1]


def bearer_token(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, or ``None``."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def new_key() -> tuple[str, str]:
    """Return a fresh ``(key_id, key)``; the key carries 256 random bits."""
    key_id = secrets.token_hex(_KEY_ID_HEX // 2)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


# A hash to compare against when the key id is unknown, so a miss costs the same as a hit.
_DUMMY_HASH = hash_key("tg_000000000000_dummy")


@runtime_checkable
class KeyStore(Protocol):
    """Where API keys live (SQL in production, memory in tests)."""

    def create(self, name: str, scopes: str | list[str] | None = None) -> tuple[str, str]:
        """Create a key; return ``(key_id, key)``. The key is shown once, never stored."""
        ...

    def verify(self, key: str) -> ApiClient | None:
        """Return the client a key belongs to, or ``None`` (unknown, malformed, revoked)."""
        ...

    def list(self, include_revoked: bool = True) -> list[ApiClient]:
        """Return the keys (without secrets), oldest first."""
        ...

    def revoke(self, name: str) -> int:
        """Revoke the active key called ``name``; return how many were revoked."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class _BaseKeyStore(ABC):
    def create(self, name: str, scopes: str | list[str] | None = None) -> tuple[str, str]:
        """Create a key for client ``name`` with ``scopes`` (default ``decide``).

        Returns
        -------
        (key_id, key) : tuple of str
            Show ``key`` to the operator once; only its hash is stored.

        Raises
        ------
        ApiKeyError
            Bad name or scope, or an active key with that name exists.
        BackendUnavailableError
            When the store cannot be reached.
        """
        clean = _check_name(name)
        scope_set = parse_scopes(scopes)
        key_id, key = new_key()
        self._insert(key_id, clean, hash_key(key), scope_set, datetime.now(UTC))
        return key_id, key

    def verify(self, key: str) -> ApiClient | None:
        """Return the client of a valid, unrevoked key, else ``None``."""
        parts = split_key(key)
        if parts is None:
            return None
        found = self._lookup(parts[0])
        stored_hash = found[1] if found is not None else _DUMMY_HASH
        ok = hmac.compare_digest(stored_hash, hash_key(key))
        if found is None or not ok:
            return None
        client, _ = found
        return client if client.revoked_at is None else None

    @abstractmethod
    def _insert(
        self, key_id: str, name: str, secret_hash: str, scopes: frozenset[str], at: datetime
    ) -> None: ...

    @abstractmethod
    def _lookup(self, key_id: str) -> tuple[ApiClient, str] | None: ...

    @abstractmethod
    def list(self, include_revoked: bool = True) -> list[ApiClient]:
        """Return the keys (without secrets), oldest first."""

    @abstractmethod
    def revoke(self, name: str) -> int:
        """Revoke the active key called ``name``; return how many were revoked."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _duplicate(name: str) -> ApiKeyError:
    return ApiKeyError(
        f"key name {name!r}: an active key with this name exists; revoke it first "
        f"(`tabguard keys revoke {name}`) or choose another name"
    )


def _unknown(name: str) -> ApiKeyError:
    return ApiKeyError(
        f"key name {name!r}: no active key with this name (see `tabguard keys list`)"
    )


class MemoryKeyStore(_BaseKeyStore):
    """API keys in a dict, for tests."""

    def __init__(self) -> None:
        self.url = "memory://"
        self._rows: dict[str, tuple[ApiClient, str]] = {}
        self._lock = threading.Lock()

    def _insert(
        self, key_id: str, name: str, secret_hash: str, scopes: frozenset[str], at: datetime
    ) -> None:
        with self._lock:
            if any(c.name == name and c.revoked_at is None for c, _ in self._rows.values()):
                raise _duplicate(name)
            self._rows[key_id] = (ApiClient(name, scopes, key_id, at), secret_hash)

    def _lookup(self, key_id: str) -> tuple[ApiClient, str] | None:
        return self._rows.get(key_id)

    def list(self, include_revoked: bool = True) -> list[ApiClient]:
        """Return the keys, oldest first."""
        with self._lock:
            rows = [c for c, _ in self._rows.values()]
        return [c for c in rows if include_revoked or c.revoked_at is None]

    def revoke(self, name: str) -> int:
        """Revoke the active key called ``name``."""
        now = datetime.now(UTC)
        with self._lock:
            hits = [
                (k, c, h)
                for k, (c, h) in self._rows.items()
                if c.name == name and c.revoked_at is None
            ]
            for key_id, client, h in hits:
                self._rows[key_id] = (
                    ApiClient(client.name, client.scopes, key_id, client.created_at, now),
                    h,
                )
        if not hits:
            raise _unknown(name)
        return len(hits)


class SqlKeyStore(_BaseKeyStore):
    """API keys in a SQL table (SQLite by default, PostgreSQL by URL).

    Parameters
    ----------
    url : str
        ``sqlite:///path``, ``postgresql://...`` or ``memory://``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._what = f"key store {redact_url(url)}"
        self._engine = create_sql_engine(url)
        ensure_schema(self._engine, [api_keys_table], what=self._what)

    def _insert(
        self, key_id: str, name: str, secret_hash: str, scopes: frozenset[str], at: datetime
    ) -> None:
        row = {
            "key_id": key_id,
            "name": name,
            "secret_hash": secret_hash,
            "scopes": ",".join(sorted(scopes)),
            "created_at": at,
        }
        with backend_errors(self._what, f"create key {name!r}"):
            try:
                with self._engine.begin() as conn:
                    conn.execute(api_keys_table.insert().values(**row))
            except sa.exc.IntegrityError:
                # The partial unique index on active names: another active key has this name.
                raise _duplicate(name) from None

    def _lookup(self, key_id: str) -> tuple[ApiClient, str] | None:
        # One query that returns exactly one row either way: the key's, or (for an unknown
        # id) the dummy row, typed like a stored one. Both cases probe the index twice, fetch
        # and convert one row and build one client, so an unknown id costs what a wrong secret
        # costs (the hash comparison against a dummy is in verify): no timing tells ids apart.
        with backend_errors(self._what, "verify a key"), self._engine.connect() as conn:
            row = conn.execute(_LOOKUP, {"key_id": key_id}).mappings().first()
        if row is None:  # not expected: the dummy branch answers for every unknown id
            return None
        client = _client(row)
        return (client, row["secret_hash"]) if row["found"] else None

    def list(self, include_revoked: bool = True) -> list[ApiClient]:
        """Return the keys, oldest first."""
        t = api_keys_table
        query = sa.select(t).order_by(t.c.created_at, t.c.key_id)
        if not include_revoked:
            query = query.where(t.c.revoked_at.is_(None))
        with backend_errors(self._what, "list keys"), self._engine.connect() as conn:
            return [_client(r) for r in conn.execute(query).mappings()]

    def revoke(self, name: str) -> int:
        """Revoke the active key called ``name``.

        Raises
        ------
        ApiKeyError
            When no active key has that name.
        """
        t = api_keys_table
        stmt = (
            t.update()
            .where(t.c.name == name, t.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        with backend_errors(self._what, f"revoke key {name!r}"), self._engine.begin() as conn:
            count = conn.execute(stmt).rowcount
        if not count:
            raise _unknown(name)
        return int(count)

    def close(self) -> None:
        """Dispose of the connection pool."""
        self._engine.dispose()


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: What an unknown key id is turned into (and thrown away), like a real row.
_DUMMY_ROW: dict[str, Any] = {
    "name": "-",
    "scopes": "decide",
    "key_id": "000000000000",
    "secret_hash": _DUMMY_HASH,
    "created_at": datetime(2000, 1, 1, tzinfo=UTC),
    "revoked_at": None,
}


def _lookup_query() -> sa.CompoundSelect:
    """The key's row, else the dummy row: ``found`` says which (see ``SqlKeyStore._lookup``)."""
    t = api_keys_table
    key_id = sa.bindparam("key_id", type_=t.c.key_id.type)
    stored = sa.select(*t.columns, sa.literal(True, sa.Boolean).label("found")).where(
        t.c.key_id == key_id
    )
    dummy = sa.select(
        *(sa.literal(_DUMMY_ROW[c.name], c.type).label(c.name) for c in t.columns),
        sa.literal(False, sa.Boolean).label("found"),
    ).where(~sa.exists().where(t.c.key_id == key_id))
    return sa.union_all(stored, dummy)


_LOOKUP = _lookup_query()


def _client(row: Mapping[Any, Any]) -> ApiClient:
    return ApiClient(
        name=row["name"],
        scopes=frozenset(s for s in row["scopes"].split(",") if s),
        key_id=row["key_id"],
        created_at=_utc(row["created_at"]),
        revoked_at=_utc(row["revoked_at"]),
    )


def open_key_store(url: str) -> SqlKeyStore | MemoryKeyStore:
    """Open the key store a URL selects (``sqlite://``, ``postgresql://``, ``memory://``).

    Raises
    ------
    StoreURLError
        For ``redis://`` or an unknown scheme.
    """
    kind = store_kind(url)
    if kind == "memory":
        return MemoryKeyStore()
    if kind == "redis":
        raise StoreURLError(
            f"key store {redact_url(url)!r}: API keys need a SQL database (sqlite:// or "
            "postgresql://); got a redis URL"
        )
    return SqlKeyStore(url)


class KeyCache:
    """Remember :meth:`KeyStore.verify` results for ``ttl`` seconds.

    The service checks a key on every request; with the cache the database sees at most one
    lookup per key per ``ttl``, and a revocation takes effect within ``ttl``. Unknown keys are
    cached too, so repeating a bad key does not hammer the database — in a separate, smaller
    table, so a flood of random keys cannot push valid keys out. Entries are keyed by the
    key's hash.

    Parameters
    ----------
    store : KeyStore
        The store to ask on a miss.
    ttl : float, default 5.0
        Seconds a result stays valid.
    max_size : int, default 10000
        Valid keys kept (least recently used are dropped).
    max_unknown : int, default 1000
        Unknown or revoked keys kept.
    """

    def __init__(
        self, store: KeyStore, ttl: float = 5.0, max_size: int = 10_000, max_unknown: int = 1_000
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.max_size = max_size
        self.max_unknown = max_unknown
        self._entries: OrderedDict[str, tuple[float, ApiClient | None]] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def _cached(self, digest: str, now: float) -> tuple[bool, ApiClient | None]:
        hit = self._entries.get(digest)
        if hit is not None and now - hit[0] < self.ttl:
            self._entries.move_to_end(digest)
            return True, hit[1]
        at = self._unknown.get(digest)
        if at is not None and now - at < self.ttl:
            return True, None
        return False, None

    def verify(self, key: str) -> ApiClient | None:
        """Return the client of ``key`` (cached), or ``None``.

        Raises
        ------
        BackendUnavailableError
            On a miss when the store cannot be reached.
        """
        digest = hash_key(key) if isinstance(key, str) else ""
        now = time.monotonic()
        with self._lock:
            found, client = self._cached(digest, now)
        if found:
            return client
        client = self.store.verify(key)
        with self._lock:
            if client is not None:
                self._unknown.pop(digest, None)
                self._entries[digest] = (now, client)
                self._entries.move_to_end(digest)
                while len(self._entries) > self.max_size:
                    self._entries.popitem(last=False)
            else:
                self._entries.pop(digest, None)  # revoked: no longer known
                self._unknown[digest] = now
                self._unknown.move_to_end(digest)
                while len(self._unknown) > self.max_unknown:
                    self._unknown.popitem(last=False)
        return client

    def known(self, key: str | None) -> ApiClient | None:
        """The client ``key`` belonged to at its last check, however old (no store call).

        The failed-authentication limit lets such keys through to a normal check, so a
        legitimate client sharing an address with an attacker keeps working.
        """
        if not key:
            return None
        digest = hash_key(key)
        with self._lock:
            hit = self._entries.get(digest)
        return hit[1] if hit is not None else None

    async def averify(self, key: str) -> ApiClient | None:
        """Like :meth:`verify`, for the event loop: a miss is looked up in a worker thread."""
        digest = hash_key(key) if isinstance(key, str) else ""
        with self._lock:
            found, client = self._cached(digest, time.monotonic())
        if found:
            return client
        return await asyncio.to_thread(self.verify, key)

    def clear(self) -> None:
        """Forget every cached result."""
        with self._lock:
            self._entries.clear()
            self._unknown.clear()
