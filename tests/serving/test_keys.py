"""API keys on every SQL backend and in memory: hashed storage, verify, revoke, scopes."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tabguard.serving import (
    ApiClient,
    ApiKeyError,
    KeyCache,
    KeyStore,
    MemoryKeyStore,
    SqlKeyStore,
    open_key_store,
    parse_scopes,
)
from tabguard.serving._keys import _LOOKUP
from tabguard.storage import StoreURLError, sqlalchemy_url


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def key_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def keys(key_url: str) -> Iterator[SqlKeyStore | MemoryKeyStore]:
    store = open_key_store(key_url)
    yield store
    store.close()


def test_create_then_verify(keys: SqlKeyStore | MemoryKeyStore) -> None:
    assert isinstance(keys, KeyStore)
    key_id, key = keys.create("bank-a", "decide,score")
    assert key.startswith(f"tg_{key_id}_") and len(key) > 50
    client = keys.verify(key)
    assert client == ApiClient("bank-a", frozenset({"decide", "score"}), key_id, client.created_at)
    assert client is not None and client.can("score") and not client.can("admin")


def test_default_scope_is_decide_only(keys: SqlKeyStore | MemoryKeyStore) -> None:
    _, key = keys.create("app")
    client = keys.verify(key)
    assert client is not None and client.scopes == frozenset({"decide"})
    assert not client.can("score")


MANGLES = [
    lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),  # right id, wrong secret
    lambda k: "tg_000000000000_" + k.split("_", 2)[2],  # unknown id
    lambda k: k.upper(),
    lambda k: "",
    lambda k: "Bearer " + k,
    lambda k: k + "\x00",
    lambda k: "tg_" + "z" * 12 + "_x",
    lambda k: k * 5,
]


def test_wrong_or_malformed_keys_are_refused(keys: SqlKeyStore | MemoryKeyStore) -> None:
    _, key = keys.create("bank-a")
    for mangle in MANGLES:
        assert keys.verify(mangle(key)) is None, mangle(key)
    assert keys.verify(key) is not None


def test_revoke_blocks_the_key_and_frees_the_name(keys: SqlKeyStore | MemoryKeyStore) -> None:
    _, old_key = keys.create("bank-a")
    assert keys.revoke("bank-a") == 1
    assert keys.verify(old_key) is None
    _, new_key = keys.create("bank-a", "admin")
    assert keys.verify(new_key) is not None and keys.verify(old_key) is None
    listed = keys.list()
    assert [c.name for c in listed] == ["bank-a", "bank-a"]
    assert listed[0].revoked_at is not None and listed[1].revoked_at is None
    assert [c.scopes for c in keys.list(include_revoked=False)] == [frozenset({"admin"})]


def test_duplicate_active_name_and_unknown_revoke_are_clear_errors(
    keys: SqlKeyStore | MemoryKeyStore,
) -> None:
    keys.create("bank-a")
    with pytest.raises(ApiKeyError, match=r"'bank-a'.*active key .* revoke it first"):
        keys.create("bank-a")
    with pytest.raises(ApiKeyError, match="'nobody': no active key"):
        keys.revoke("nobody")


BAD_CREATES = [
    ("", "decide", "1-128 characters"),
    ("a b", "decide", "spaces"),
    ("x" * 129, "decide", "1-128"),
    ("ok", "decide,write", "scopes"),
    ("ok", " , ", "scopes"),
]


def test_bad_name_or_scope(keys: SqlKeyStore | MemoryKeyStore) -> None:
    for name, scopes, needle in BAD_CREATES:
        with pytest.raises(ApiKeyError, match=needle):
            keys.create(name, scopes)
    assert keys.list() == []


def test_only_a_hash_is_stored(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with open_key_store(url) as store:
        _, key = store.create("bank-a")
    secret = key.split("_", 2)[2]
    engine = sa.create_engine(sqlalchemy_url(url))
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select * from tg_api_keys")).all()
    engine.dispose()
    dumped = repr(rows)
    assert secret not in dumped
    assert hashlib.sha256(key.encode()).hexdigest() in dumped
    raw_file = (tmp_path / "state.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("state.db-*")
    )
    assert secret.encode() not in raw_file


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def sql_keys(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlKeyStore]:
    url = (
        f"sqlite:///{tmp_path / 'state.db'}"
        if request.param == "sqlite"
        else str(request.getfixturevalue("postgres_url"))
    )
    store = SqlKeyStore(url)
    yield store
    store.close()


def test_an_unknown_key_id_runs_the_same_query_and_fetches_a_row_like_a_known_one(
    sql_keys: SqlKeyStore,
) -> None:
    """No timing may tell key ids apart: both cases run one statement returning one row.

    (The cost itself is measured in benchmarks/hardening.py --only keys.)
    """
    keys = sql_keys
    key_id, _ = keys.create("bank-a")
    seen: list[str] = []

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    unknown = f"tg_{'f' * 12}_{'x' * 43}"
    wrong = f"tg_{key_id}_{'x' * 43}"
    with keys._engine.connect() as conn:  # the same statement, fetched here to count rows
        for probe, probe_id in ((unknown, "f" * 12), (wrong, key_id)):
            rows = conn.execute(_LOOKUP, {"key_id": probe_id}).mappings().all()
            assert len(rows) == 1 and rows[0]["found"] is (probe == wrong)
    sa.event.listen(keys._engine, "after_cursor_execute", after)
    try:
        assert keys.verify(unknown) is None and keys.verify(wrong) is None
    finally:
        sa.event.remove(keys._engine, "after_cursor_execute", after)
    lookups = [s for s in seen if "tg_api_keys" in s]
    assert len(lookups) == 2 and lookups[0] == lookups[1]


def test_two_stores_on_one_database_agree(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with open_key_store(url) as cli_side, open_key_store(url) as service_side:
        _, key = cli_side.create("bank-a")
        assert service_side.verify(key) is not None
        cli_side.revoke("bank-a")
        assert service_side.verify(key) is None


def test_redis_is_not_a_key_store() -> None:
    with pytest.raises(StoreURLError, match="API keys need a SQL database"):
        open_key_store("redis://127.0.0.1:6379/0")


def test_parse_scopes() -> None:
    assert parse_scopes(None) == {"decide"}
    assert parse_scopes(["Score", "decide"]) == {"score", "decide"}
    with pytest.raises(ApiKeyError, match="decide, score, monitor, admin"):
        parse_scopes("root")


class CountingKeys(MemoryKeyStore):
    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    def verify(self, key: str) -> ApiClient | None:
        self.lookups += 1
        return super().verify(key)


def test_cache_answers_repeats_and_sees_revocation_after_ttl() -> None:
    store = CountingKeys()
    _, key = store.create("bank-a")
    cache = KeyCache(store, ttl=3600)
    for _ in range(20):
        assert cache.verify(key) is not None
        assert cache.verify("tg_000000000000_guess") is None
    assert store.lookups == 2
    store.revoke("bank-a")
    assert cache.verify(key) is not None  # still cached within the TTL
    cache.ttl = 0
    assert cache.verify(key) is None


def test_cache_is_bounded_and_a_flood_of_unknown_keys_cannot_evict_valid_ones() -> None:
    store = MemoryKeyStore()
    valid = [store.create(f"c{i}")[1] for i in range(30)]
    cache = KeyCache(store, ttl=3600, max_size=10, max_unknown=5)
    for key in valid:
        cache.verify(key)
    for i in range(50):
        cache.verify(f"tg_{i:012x}_x")
    assert len(cache._entries) == 10 and len(cache._unknown) == 5
    assert all(cache.known(key) is not None for key in valid[-10:])


def test_async_verify_uses_the_cache() -> None:
    store = CountingKeys()
    _, key = store.create("bank-a")
    cache = KeyCache(store, ttl=3600)

    async def main() -> list[ApiClient | None]:
        return [await cache.averify(key) for _ in range(5)] + [await cache.averify("nope")]

    results = asyncio.run(main())
    assert all(r is not None and r.name == "bank-a" for r in results[:5]) and results[5] is None
    assert store.lookups == 2
