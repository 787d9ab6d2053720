"""Work a check lends to the audit's other lane while that lane has nothing of its own to run.

On large data the audit runs its checks in two lanes (:func:`tabguard.data_audit._audit.
_run_checks`) whose shares of the work differ: the trigger scan, in the main lane, is the
longest, and the other lane runs out of checks before it ends. A part of a check that is a pure
function of what is already computed (a search with a seed of its own, the predictions of a
block of rows, a block of a nearest-neighbour search) can be handed to :class:`Spare`:

* :meth:`Spare.submit` queues a job; a lane picks it up when it finishes its current task (the
  lanes take lent jobs before their own), and the check takes it back and runs it itself when
  no lane has started it by the time it needs the result (:meth:`Job.result`).
* :meth:`Spare.map` splits a computation into parts that the caller and an idle lane pull from
  one counter; the parts' results are put together in their order.

Whoever runs a job or a part, its result is the same: only pure functions are lent, each with
its own random state when it draws. Without lanes (one lane, or a check run outside an audit),
every job runs where its result is asked, as if it had never been lent.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from typing import Generic, TypeVar

_T = TypeVar("_T")


class Job(Generic[_T]):
    """A lent computation (:meth:`Spare.submit`): run once, by a lane or by its caller."""

    def __init__(self, spare: Spare, fn: Callable[[], _T]) -> None:
        self._spare, self._fn = spare, fn
        self._future: Future[_T] = Future()
        self._claimed = False  # under the spare's lock: started by someone

    def _claim(self) -> bool:
        # the caller holds ``self._spare.cond``
        if self._claimed:
            return False
        self._claimed = True
        return True

    def run(self) -> None:
        """Run it here (by whoever claimed it); its error is raised where the result is read."""
        try:
            self._future.set_result(self._fn())
        except BaseException as exc:  # raised by :meth:`result`
            self._future.set_exception(exc)
        self._fn = _done  # type: ignore[assignment]  # drop what the computation holds

    def result(self) -> _T:
        """The job's result: run here if no lane has started it, else waited for."""
        with self._spare.cond:
            mine = self._claim()
        if mine:
            self.run()
        return self._future.result()


def _done() -> None:  # pragma: no cover - a job is run once
    raise AssertionError("a lent job ran twice")


class Spare:
    """Jobs lent to an idle lane (see the module docstring).

    ``cond`` is the lanes' condition: they wait on it for their own tasks and for lent jobs.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self._jobs: deque[Job[object]] = deque()
        self._lanes = 0  # lanes that may take jobs (0: jobs run where they are asked)

    @property
    def lending(self) -> bool:
        """Whether a lane may take jobs (else each runs where its result is asked)."""
        return self._lanes > 0

    @contextmanager
    def lanes(self) -> Iterator[Spare]:
        """While the block runs, lanes take jobs (:meth:`take`); jobs left unstarted at its end
        run where their results are asked."""
        with self.cond:
            self._lanes += 1
        try:
            yield self
        finally:
            with self.cond:
                self._lanes -= 1
                self._jobs.clear()

    def submit(self, fn: Callable[[], _T]) -> Job[_T]:
        """Lend ``fn`` (a pure function: its result must not depend on who runs it or when)."""
        job: Job[_T] = Job(self, fn)
        with self.cond:
            if self._lanes:
                self._jobs.append(job)  # type: ignore[arg-type]
                self.cond.notify_all()
        return job

    def take(self) -> Job[object] | None:
        """The oldest job nobody has started, claimed (for a lane; None: none waits)."""
        with self.cond:
            while self._jobs:
                job = self._jobs.popleft()
                if job._claim():
                    return job
            return None

    def map(self, fn: Callable[[int], _T], parts: int) -> list[_T]:
        """``[fn(0), ..., fn(parts - 1)]``, the parts pulled by the caller and, when one is idle,
        a lane, from one counter (``fn`` pure, each part of about the same cost)."""
        if parts <= 1 or not self.lending:
            return [fn(i) for i in range(parts)]
        out: list[_T | None] = [None] * parts
        lock = threading.Lock()
        nxt = [0]

        def pull() -> None:
            while True:
                with lock:
                    i = nxt[0]
                    if i >= parts:
                        return
                    nxt[0] = i + 1
                out[i] = fn(i)

        helper = self.submit(pull)
        try:
            pull()
        except BaseException:
            with lock:  # no further part starts; the lane's part in hand ends
                nxt[0] = parts
            with suppress(BaseException):
                helper.result()
            raise
        helper.result()  # run here (returns at once) if no lane joined, else its last part
        return out  # type: ignore[return-value]


#: A spare without lanes: every job runs where its result is asked.
NO_SPARE = Spare()
