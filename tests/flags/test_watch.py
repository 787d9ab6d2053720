"""FlagWatcher: cached, refreshed at most every interval, resilient to store outages."""

from __future__ import annotations

import asyncio

import pytest

from tabguard.errors import BackendUnavailableError
from tabguard.flags import Flags, FlagSnapshot, FlagWatcher, MemoryFlagStore


class CountingStore(MemoryFlagStore):
    """A memory store that counts reads and can be switched off."""

    def __init__(self) -> None:
        super().__init__()
        self.version_calls = 0
        self.snapshot_calls = 0
        self.down = False

    def version(self) -> int:
        self.version_calls += 1
        if self.down:
            raise BackendUnavailableError("flag store down (test)")
        return super().version()

    def snapshot(self) -> FlagSnapshot:
        self.snapshot_calls += 1
        return super().snapshot()


def test_reads_within_the_interval_hit_the_cache() -> None:
    store = CountingStore()
    watcher = FlagWatcher(store, interval=3600)
    store.set("flow", "disabled", actor="ops")
    calls = store.version_calls
    for _ in range(100):
        assert watcher.current().flags.flow == "enabled"  # cached, not yet refreshed
    assert store.version_calls == calls
    assert watcher.refresh().flags.flow == "disabled"


def test_unchanged_version_does_not_reread_flags() -> None:
    store = CountingStore()
    watcher = FlagWatcher(store, interval=0)
    before = store.snapshot_calls
    for _ in range(10):
        watcher.current()
    assert store.snapshot_calls == before
    store.set("model", "rules", actor="ops")
    assert watcher.current().flags.model == "rules"
    assert store.snapshot_calls == before + 1
    assert watcher.refreshes == 1


def test_outage_keeps_last_good_flags_and_recovers() -> None:
    store = CountingStore()
    store.set("threshold", "0.2", actor="ops")
    watcher = FlagWatcher(store, interval=0)
    store.down = True
    snap = watcher.current()
    assert snap.flags.threshold == 0.2
    assert watcher.stale and "down" in (watcher.last_error or "")
    store.down = False
    store.set("threshold", "0.3", actor="ops")
    assert watcher.current().flags.threshold == 0.3
    assert not watcher.stale


def test_first_read_failure_is_loud() -> None:
    store = CountingStore()
    store.down = True
    with pytest.raises(BackendUnavailableError):
        FlagWatcher(store)


def test_async_read_refreshes_off_the_event_loop() -> None:
    store = CountingStore()
    watcher = FlagWatcher(store, interval=0)

    async def main() -> Flags:
        store.set("delay", "5", actor="ops")
        return (await watcher.acurrent()).flags

    assert asyncio.run(main()).delay == 5.0


def test_background_mode_never_touches_the_store_on_read() -> None:
    store = CountingStore()
    with FlagWatcher(store, interval=3600) as watcher:
        assert watcher.running
        calls = store.version_calls
        for _ in range(50):
            watcher.current()
        assert store.version_calls == calls
    assert not watcher.running


def test_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="interval"):
        FlagWatcher(MemoryFlagStore(), interval=-1)
