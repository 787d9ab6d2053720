"""The worker supervisor's decision rules, with fake worker processes and an injected clock.

A new worker (at start or replacing a dead one) gets ``startup_timeout`` seconds to load the
model, during which it is only checked for being alive; once it says it is ready, the health
check applies; one that never gets ready is replaced; one whose app cannot start stops the
service instead of restarting forever. The real thing (a worker SIGKILLed under load) is in
``test_workers.py``.
"""

from __future__ import annotations

import itertools
import signal
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import uvicorn
from uvicorn.supervisors.multiprocess import SIGNALS

from tabguard.serving._server import Supervisor

_PIDS = itertools.count(1000)


class FakeWorker:
    """What the supervisor sees of a worker process."""

    made: ClassVar[list[FakeWorker]] = []

    def __init__(self, config: Any, sockets: Any) -> None:
        self.pid = next(_PIDS)
        self.alive = True  # the OS process exists
        self.ready = False  # its server finished starting
        self.answers = True  # it answers a health-check ping in time
        self.exitcode: int | None = None
        self.started = False
        self.health_checks: list[float] = []
        self.process = SimpleNamespace(is_alive=lambda: self.alive)
        FakeWorker.made.append(self)

    def start(self) -> None:
        self.started = True

    def is_ready(self, timeout: float = 5) -> bool:
        return self.alive and self.ready and self.answers

    def is_alive(self, timeout: float = 5) -> bool:
        self.health_checks.append(timeout)
        return self.alive and self.answers

    def kill(self) -> None:
        if self.alive:
            self.alive = False
            self.exitcode = -signal.SIGKILL

    def join(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def supervisor() -> Iterator[tuple[Supervisor, Clock]]:
    saved = {sig: signal.getsignal(sig) for sig in SIGNALS}  # Multiprocess installs its own
    FakeWorker.made = []
    clock = Clock()
    config = uvicorn.Config("tabguard.serving._app:app_from_env", workers=2)
    sup = Supervisor(config, [], startup_timeout=60, clock=clock)
    sup.processes = [FakeWorker(config, []), FakeWorker(config, [])]  # type: ignore[list-item]
    try:
        yield sup, clock
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def workers(sup: Supervisor) -> list[FakeWorker]:
    return list(sup.processes)  # type: ignore[arg-type]


def test_a_starting_worker_that_cannot_answer_pings_is_left_to_load(
    supervisor: tuple[Supervisor, Clock],
) -> None:
    sup, clock = supervisor
    first, second = workers(sup)
    first.answers = False  # busy importing and compiling: a ping would time out
    for _ in range(100):  # 59.5 s of checks every half second
        sup.keep_subprocess_alive()
        clock.t += 0.595
    assert workers(sup) == [first, second] and first.alive
    assert first.health_checks == []  # never pinged with the health-check timeout
    assert (sup.restarts, sup.startup_kills) == (0, 0)


def test_once_ready_the_health_check_applies(supervisor: tuple[Supervisor, Clock]) -> None:
    sup, clock = supervisor
    first, second = workers(sup)
    first.ready = second.ready = True
    sup.keep_subprocess_alive()  # both seen ready
    sup.keep_subprocess_alive()
    assert first.health_checks == [sup.config.timeout_worker_healthcheck]
    first.answers = False  # hung
    clock.t += 0.5
    sup.keep_subprocess_alive()
    [replacement, kept] = workers(sup)
    assert kept is second and replacement is not first and not first.alive
    assert replacement.started and sup.restarts == 1 and sup.startup_kills == 0


def test_a_dead_worker_is_replaced_and_its_replacement_gets_the_grace_period(
    supervisor: tuple[Supervisor, Clock],
) -> None:
    sup, clock = supervisor
    for w in workers(sup):
        w.ready = True
    sup.keep_subprocess_alive()
    victim = workers(sup)[0]
    victim.kill()  # SIGKILL, the OOM killer
    sup.keep_subprocess_alive()
    replacement = workers(sup)[0]
    assert replacement is not victim and replacement.started and sup.restarts == 1
    replacement.answers = False  # loading the model under load
    clock.t += 59
    sup.keep_subprocess_alive()
    assert workers(sup)[0] is replacement and replacement.health_checks == []
    replacement.answers = replacement.ready = True
    sup.keep_subprocess_alive()
    sup.keep_subprocess_alive()
    assert replacement.health_checks and sup.restarts == 1  # no restart loop


def test_a_worker_not_ready_within_the_startup_timeout_is_replaced(
    supervisor: tuple[Supervisor, Clock],
) -> None:
    sup, clock = supervisor
    stuck, fine = workers(sup)
    fine.ready = True
    sup.keep_subprocess_alive()
    clock.t += 60.5
    sup.keep_subprocess_alive()
    assert workers(sup)[0] is not stuck and not stuck.alive
    assert sup.startup_kills == 1 and sup.restarts == 1


def test_a_worker_whose_app_cannot_start_stops_the_service(
    supervisor: tuple[Supervisor, Clock],
) -> None:
    sup, _ = supervisor
    failure = getattr(uvicorn.config, "STARTUP_FAILURE", None)
    if failure is None:
        pytest.skip("this uvicorn release has no start-up failure exit code")
    broken, _ = workers(sup)
    broken.alive, broken.exitcode = False, failure  # a bad model or settings: exits at once
    sup.keep_subprocess_alive()
    assert sup.should_exit.is_set()
    assert workers(sup)[0] is broken and sup.restarts == 0  # no restart
    assert len(FakeWorker.made) == 2
