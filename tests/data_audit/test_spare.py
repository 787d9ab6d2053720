"""Work lent to an idle lane (``_spare``) gives what running it in place gives."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import lightgbm as lgb
import numpy as np
import pytest

from tabguard.data_audit._audit import _run_checks
from tabguard.data_audit._base import CheckResult
from tabguard.data_audit._context_model import predict
from tabguard.data_audit._matrix import nearest_distances
from tabguard.data_audit._spare import NO_SPARE, Spare


@contextmanager
def idle_lane(spare: Spare) -> Iterator[list[str]]:
    """A lane with nothing of its own: it runs every job lent while the block runs; yields
    the names of the jobs' threads as they start (``spare-lane`` for this lane)."""
    stop = threading.Event()

    def lane() -> None:
        while not stop.is_set():
            job = spare.take()
            if job is not None:
                job.run()
            else:
                with spare.cond:
                    spare.cond.wait(0.005)

    with spare.lanes():
        thread = threading.Thread(target=lane, name="spare-lane")
        thread.start()
        try:
            yield []
        finally:
            stop.set()
            thread.join()


def test_without_lanes_a_job_runs_where_its_result_is_asked() -> None:
    spare, where = Spare(), []
    job = spare.submit(lambda: where.append(threading.current_thread().name) or 7)
    assert spare.take() is None and where == []  # nothing queued: no lane to take it
    assert job.result() == 7 and job.result() == 7
    assert where == [threading.current_thread().name]  # once, here
    assert NO_SPARE.map(lambda i: i * i, 4) == [0, 1, 4, 9]


def test_an_idle_lane_runs_a_lent_job_and_its_error_is_raised_where_it_is_read() -> None:
    spare = Spare()
    ran = threading.Event()

    def boom() -> None:
        ran.set()
        raise ValueError("lent job failed")

    with idle_lane(spare):
        job = spare.submit(lambda: threading.current_thread().name)
        bad = spare.submit(boom)
        assert ran.wait(10)
        assert job.result() == "spare-lane"
        with pytest.raises(ValueError, match="lent job failed"):
            bad.result()


def test_map_puts_the_parts_together_in_their_order_whoever_ran_them() -> None:
    spare = Spare()
    threads: set[str] = set()

    def part(i: int) -> int:
        threads.add(threading.current_thread().name)
        time.sleep(0.01)  # long enough for the lane to join
        return i * i

    with idle_lane(spare):
        got = spare.map(part, 12)
    assert got == [i * i for i in range(12)]
    assert "spare-lane" in threads  # the lane took parts (it idles, so it joins at once)


def test_a_failing_part_is_raised_by_map_after_the_lanes_part_ends() -> None:
    spare = Spare()

    def part(i: int) -> int:
        if i == 3:
            raise ValueError("part 3")
        return i

    with idle_lane(spare), pytest.raises(ValueError, match="part 3"):
        spare.map(part, 8)


def test_the_lanes_lend_a_main_lane_checks_job_to_the_idle_side_lane() -> None:
    # The side lane's check ends at once; the main lane's lends a job and waits until it has
    # started elsewhere: the other lane, idle, stays and runs it.
    started = threading.Event()
    got: dict[str, object] = {}

    def make(name: str, concurrent: bool, run: object) -> type:
        attrs = {"name": name, "concurrent": concurrent, "reads_matrix": False, "after": ()}
        return type(name, (), {**attrs, "order": 0, "run": run})

    def scan(self: object, ctx: SimpleNamespace) -> CheckResult:
        def lent() -> str:
            started.set()
            return threading.current_thread().name.split("_")[0]

        got["scan in"] = threading.current_thread().name.split("_")[0]
        job = ctx.spare.submit(lent)
        assert started.wait(10)
        got["ran in"] = job.result()
        return CheckResult()

    checks = {
        "scan": make("scan", False, scan),
        "quick": make("quick", True, lambda self, ctx: CheckResult()),
    }
    ctx = SimpleNamespace(cache={}, data=[], spare=Spare())
    _run_checks(ctx, checks, 2)  # type: ignore[arg-type]
    # the other lane ran it (whichever of the two threads took the scan)
    assert got["ran in"] != got["scan in"]
    assert not ctx.spare.lending  # after the checks, jobs run where they are asked again


def test_a_search_shared_with_an_idle_lane_finds_the_same_rows_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    # a coarse grid: many references at one distance, where the first of them must be kept
    ref = rng.integers(0, 4, size=(5_000, 6)).astype(np.float32)
    q = rng.integers(0, 4, size=(40, 5)).astype(np.float32)
    mask = rng.random(len(ref)) > 0.1
    skip = np.where(rng.random(len(q)) < 0.5, rng.integers(0, len(ref), len(q)), -1)
    kwargs = {"columns": [0, 2, 3, 4, 5], "mask": mask, "exclude_self": skip, "chunk": 16}
    alone = nearest_distances(q, ref, return_index=True, **kwargs)  # type: ignore[arg-type]
    spare = Spare()
    with idle_lane(spare):
        shared = nearest_distances(
            q,
            ref,
            return_index=True,
            spare=spare,
            **kwargs,  # type: ignore[arg-type]
        )
    for a, b in zip(alone, shared, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert (alone[0] == 0).sum() > 10  # ties abound


def test_predictions_shared_with_an_idle_lane_are_the_same() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40_000, 4))
    y = (X[:, 0] + rng.normal(size=len(X)) > 0).astype(float)
    model = lgb.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1},
        lgb.Dataset(X[:2_000], label=y[:2_000]),
        num_boost_round=5,
    )
    spare = Spare()
    with idle_lane(spare):
        shared = predict(model, X, spare)
    assert np.array_equal(shared, predict(model, X))
