"""Pick flag changes up in a running service within a second, without a restart."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from tabguard.flags._base import FlagStore
from tabguard.flags._model import FlagSnapshot
from tabguard.storage import driver_message

log = logging.getLogger(__name__)


class FlagWatcher:
    """A cached reader of a :class:`FlagStore` that refreshes at most every ``interval`` s.

    Two ways to use it:

    * **background** (the service): ``start()`` runs a daemon thread that polls the store's
      cheap ``version()`` every ``interval`` seconds and re-reads the flags when it changed;
      ``current()`` then only returns the cached snapshot and never touches the network, so
      it is safe to call on the event loop for every request.
    * **lazy** (scripts, tests): without ``start()``, ``current()`` refreshes inline when the
      cache is older than ``interval``; ``await acurrent()`` does the same in a worker thread.

    When the store becomes unreachable the last good snapshot stays in force (``stale`` is
    True and ``last_error`` says why) — a flag outage must not take decisions down.

    Parameters
    ----------
    store : FlagStore
        The store to watch.
    interval : float, default 0.5
        Seconds between polls; a change is seen within about this long.

    Raises
    ------
    BackendUnavailableError
        From the constructor when the first read fails: a service must not start on flags it
        could not read.

    Examples
    --------
    >>> from tabguard.flags import MemoryFlagStore
    >>> store = MemoryFlagStore()
    >>> watcher = FlagWatcher(store, interval=0.0)
    >>> _ = store.set("flow", "disabled", actor="ops")
    >>> watcher.current().flags.flow
    'disabled'
    """

    def __init__(self, store: FlagStore, interval: float = 0.5) -> None:
        if interval < 0:
            raise ValueError(f"FlagWatcher interval must be >= 0 seconds; got {interval!r}")
        self.store = store
        self.interval = float(interval)
        self._snapshot = store.snapshot()
        self._checked_at = time.monotonic()
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stale = False
        self.last_error: str | None = None
        self.refreshes = 0

    @property
    def running(self) -> bool:
        """Whether the background poller is running."""
        return self._thread is not None and self._thread.is_alive()

    def current(self) -> FlagSnapshot:
        """Return the flags in force (refreshing inline first only when not started)."""
        # The clock first: Thread.is_alive() takes a lock, and this runs on every request.
        if time.monotonic() - self._checked_at >= self.interval and not self.running:
            self.refresh()
        return self._snapshot

    async def acurrent(self) -> FlagSnapshot:
        """Like :meth:`current`, but an inline refresh runs in a worker thread."""
        if not self.running and time.monotonic() - self._checked_at >= self.interval:
            await asyncio.to_thread(self.refresh)
        return self._snapshot

    def refresh(self) -> FlagSnapshot:
        """Poll the store now; re-read the flags if the version moved. Never raises."""
        if not self._refresh_lock.acquire(blocking=False):
            return self._snapshot  # another thread is refreshing; its result is as fresh
        try:
            version = self.store.version()
            if version != self._snapshot.version:
                self._snapshot = self.store.snapshot()
                self.refreshes += 1
            self.stale, self.last_error = False, None
        except Exception as exc:  # any failure: keep serving the last good flags
            if not self.stale:
                log.warning(
                    "flag store unreachable, keeping the last flags: %s", driver_message(exc)
                )
            self.stale, self.last_error = True, str(exc)
        finally:
            self._checked_at = time.monotonic()
            self._refresh_lock.release()
        return self._snapshot

    def start(self) -> FlagWatcher:
        """Start the background poller (idempotent); returns ``self``."""
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tabguard-flag-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the background poller."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def __enter__(self) -> FlagWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
