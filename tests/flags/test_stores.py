"""The flag-store suite: every test runs on memory, SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

import pytest

from tabguard.flags import BaseFlagStore, FlagError, Flags, FlagStore, FlagWatcher


def test_fresh_store_has_defaults_and_no_history(store: BaseFlagStore) -> None:
    assert isinstance(store, FlagStore)
    assert store.get_all() == Flags()
    assert store.version() == 0
    assert store.history() == []
    assert store.snapshot().version == 0


def test_set_each_flag_and_read_it_back(store: BaseFlagStore) -> None:
    store.set("flow", "disabled", actor="alice")
    store.set("model", "fallback", actor="alice")
    store.set("threshold", "0.35", actor="alice")
    store.set("neutralize", "AGE, PAY_AMT1", actor="alice")
    store.set("delay", "2.5", actor="alice")
    flags = store.get_all()
    assert flags == Flags(
        flow="disabled", model="fallback", threshold=0.35, neutralize=("AGE", "PAY_AMT1"), delay=2.5
    )
    assert store.get("neutralize") == ["AGE", "PAY_AMT1"]
    assert store.version() == 5


def test_change_records_who_when_old_new_and_why(store: BaseFlagStore) -> None:
    first = store.set("threshold", 0.4, actor="alice", reason="denials too low")
    second = store.set("threshold", "0.3", actor="bob")
    assert (first.old, first.new, first.actor, first.reason) == (
        None,
        0.4,
        "alice",
        "denials too low",
    )
    assert (second.old, second.new, second.actor, second.reason) == (0.4, 0.3, "bob", None)
    history = store.history()
    assert [c.version for c in history] == [second.version, first.version]
    assert history[0].version > history[1].version
    assert history[1].reason == "denials too low"
    assert history[0].changed_at >= history[1].changed_at
    assert history[0].changed_at.tzinfo is not None


def test_history_limit_and_filter(store: BaseFlagStore) -> None:
    for i in range(4):
        store.set("delay", i, actor="ops")
    store.set("flow", "disabled", actor="ops")
    assert len(store.history(limit=2)) == 2
    assert [c.new for c in store.history(limit=10, name="delay")] == [3.0, 2.0, 1.0, 0.0]
    assert [c.name for c in store.history(limit=1)] == ["flow"]
    assert store.history(limit=0) == []


BAD_VALUES = [
    ("flow", "off", "enabled, disabled"),
    ("model", "xgb", "main, fallback, rules"),
    ("threshold", "1.5", "[0, 1]"),
    ("threshold", "nan", "[0, 1]"),
    ("threshold", "abc", "[0, 1]"),
    ("delay", "-1", ">= 0"),
    ("neutralize", "AGE,,PAY", "non-empty"),
    ("speed", "fast", "unknown flag"),
]


def test_bad_values_are_refused_and_change_nothing(store: BaseFlagStore) -> None:
    # One store for all cases: a fresh database per case would cost more than the checks.
    for name, value, needle in BAD_VALUES:
        with pytest.raises(FlagError) as info:
            store.set(name, value, actor="alice")
        message = str(info.value)
        assert name in message and repr(value) in message and needle in message, message
    assert store.version() == 0
    assert store.history() == []
    assert store.get_all() == Flags()


def test_empty_actor_is_refused(store: BaseFlagStore) -> None:
    with pytest.raises(FlagError, match="actor"):
        store.set("flow", "disabled", actor="  ")
    assert store.version() == 0


def test_unset_returns_to_default(store: BaseFlagStore) -> None:
    store.set("threshold", "0.2", actor="a")
    store.set("neutralize", "AGE", actor="a")
    store.set("threshold", "unset", actor="a")
    store.set("neutralize", "none", actor="a")
    assert store.get_all() == Flags()
    assert store.history(limit=1)[0].old == ["AGE"]


def test_second_instance_sees_changes(open_store: Callable[[], BaseFlagStore]) -> None:
    writer, reader = open_store(), open_store()
    before = reader.version()
    writer.set("model", "rules", actor="ops")
    assert reader.version() > before
    assert reader.get_all().model == "rules"


def test_concurrent_changes_keep_an_unbroken_audit_chain(
    open_store: Callable[[], BaseFlagStore],
) -> None:
    # Several writers (own connections) change one flag at once: the trail must chain, each
    # entry's old value being the previous entry's new value, with no version used twice.
    stores = [open_store() for _ in range(4)]
    errors: list[BaseException] = []

    def work(s: BaseFlagStore, k: int) -> None:
        try:
            for j in range(5):
                s.set("delay", k * 10 + j, actor=f"w{k}")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s, k)) for k, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    trail = list(reversed(stores[0].history(limit=100)))
    assert len(trail) == 20
    assert len({c.version for c in trail}) == 20
    assert trail[0].old == 0.0
    for prev, cur in itertools.pairwise(trail):
        assert cur.old == prev.new
    assert stores[0].get("delay") == trail[-1].new


def test_watcher_picks_up_a_change_from_another_instance(
    open_store: Callable[[], BaseFlagStore],
) -> None:
    service_side, operator_side = open_store(), open_store()
    watcher = FlagWatcher(service_side, interval=0.05).start()
    try:
        assert watcher.current().flags.flow == "enabled"
        operator_side.set("flow", "disabled", actor="ops", reason="incident")
        deadline = time.monotonic() + 10
        while watcher.current().flags.flow != "disabled" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert watcher.current().flags.flow == "disabled"
        assert watcher.current().version == operator_side.version()
    finally:
        watcher.stop()
