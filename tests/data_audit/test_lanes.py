"""The two-lane runner gives the same audit as running the checks one after the other."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pandas as pd
import pytest

from tabguard.contract import Contract
from tabguard.data_audit import DataAuditResult, audit_data
from tabguard.data_audit._audit import _run_checks
from tabguard.data_audit._base import CheckResult
from tabguard.data_audit._spare import Spare
from tabguard.redteam import poison


def _ctx(cache: dict[str, object]) -> SimpleNamespace:
    """The context the lanes read: the cache, the rows and where jobs are lent."""
    return SimpleNamespace(cache=cache, data=[], spare=Spare())


def _essence(result: DataAuditResult) -> tuple[object, ...]:
    return (
        result.suspicious_rows,
        sorted(
            (f.check, f.severity, tuple(f.features), tuple(map(str, f.values)))
            for f in result.report.findings
        ),
        len(result.clean),
        len(result.quarantine),
    )


def test_two_lanes_match_one_lane(credit_df: pd.DataFrame, credit_contract: Contract) -> None:
    # 2,000 rows: the lanes do not depend on the size below PARALLEL_ROWS (n_jobs is explicit)
    df = poison(credit_df.iloc[:2000], credit_contract, {"AGE": 999}, rate=0.2).data
    one = audit_data(df, credit_contract, n_jobs=1)
    two = audit_data(df, credit_contract, n_jobs=2)
    assert _essence(one) == _essence(two)
    assert set(two.report.summary["seconds"]) == set(one.report.summary["seconds"])
    assert [f.check for f in two.report.findings] == [f.check for f in one.report.findings]
    assert any(f.check == "trigger_scan" and f.features == ["AGE"] for f in two.report.findings)


def _fake_checks(ran: list[str]) -> dict[str, type]:
    """A trigger scan and RONI in the main lane; label noise (reads the matrix, RONI waits
    for it) and descriptive statistics (does not read it) in the side lane."""

    def make(name: str, concurrent: bool, reads: bool, after: tuple[str, ...] = ()) -> type:
        def run(self: object, ctx: object) -> CheckResult:
            ran.append(name)
            return CheckResult()

        attrs = {"name": name, "concurrent": concurrent, "reads_matrix": reads, "after": after}
        return type(name, (), {**attrs, "order": 0, "run": run})

    return {
        "scan": make("scan", False, True),
        "descriptive": make("descriptive", True, False),
        "noise": make("noise", True, True),
        "roni": make("roni", False, True, ("noise",)),
    }


def test_the_side_lane_runs_what_does_not_read_the_matrix_while_it_is_built() -> None:
    ran: list[str] = []
    ctx = _ctx({})
    _run_checks(ctx, _fake_checks(ran), 2)  # type: ignore[arg-type]
    side = [n for n in ran if n in ("descriptive", "noise")]
    assert side == ["descriptive", "noise"]
    assert ran.index("roni") > ran.index("noise")


def test_once_the_matrix_is_built_the_side_lane_runs_what_is_awaited_first() -> None:
    ran: list[str] = []
    ctx = _ctx({"matrix": object()})
    _run_checks(ctx, _fake_checks(ran), 2)  # type: ignore[arg-type]
    assert [n for n in ran if n in ("descriptive", "noise")] == ["noise", "descriptive"]


def _with_prepare(ran: list[str], prepare_after: tuple[str, ...]) -> dict[str, type]:
    """The fake checks, RONI with a prepare step reading ``prepare_after``."""
    checks = _fake_checks(ran)

    def prepare(self: object, ctx: object) -> None:
        import threading

        ran.append(f"prepare roni in {threading.current_thread().name.split('_')[0]}")

    checks["roni"] = type(
        "roni", (checks["roni"],), {"prepare": prepare, "prepare_after": prepare_after}
    )
    return checks


def test_a_prepare_step_runs_in_the_side_lane_after_its_inputs_before_the_check() -> None:
    ran: list[str] = []
    ctx = _ctx({"matrix": object()})
    checks = _with_prepare(ran, ("noise",))
    # The main lane steals waiting side tasks when it is idle (by design), so on a loaded
    # machine where the side thread starts late it could run the step itself: its scan keeps
    # it busy until the step has run (at most 10 s).
    prepared = threading.Event()
    prepare = checks["roni"].prepare  # type: ignore[attr-defined]

    def prepare_and_tell(self: object, ctx: object) -> None:
        prepare(self, ctx)
        prepared.set()

    def scan(self: object, ctx: object) -> CheckResult:
        prepared.wait(10)
        ran.append("scan")
        return CheckResult()

    checks["roni"] = type("roni", (checks["roni"],), {"prepare": prepare_and_tell})
    checks["scan"] = type("scan", (checks["scan"],), {"run": scan})
    _run_checks(ctx, checks, 2)  # type: ignore[arg-type]
    step = "prepare roni in tabguard-audit"
    assert step in ran
    assert ran.index("noise") < ran.index(step) < ran.index("roni")
    # right after its input, before the side lane's other checks
    assert ran.index(step) < ran.index("descriptive")


def test_a_prepare_step_reading_a_main_lane_check_is_left_to_the_check() -> None:
    ran: list[str] = []
    ctx = _ctx({"matrix": object()})
    _run_checks(ctx, _with_prepare(ran, ("scan",)), 2)  # type: ignore[arg-type]
    assert not any(r.startswith("prepare") for r in ran)  # run() computes what it needs
    ran.clear()
    _run_checks(ctx, _with_prepare(ran, ("noise",)), 1)  # type: ignore[arg-type]
    assert not any(r.startswith("prepare") for r in ran)


def _blocking_checks(
    ran: list[tuple[str, str]], waits: dict[str, threading.Event], sets: dict[str, threading.Event]
) -> dict[str, type]:
    """Fake checks recording (name, lane); ``waits[name]`` is awaited before it returns (at most
    10 s), ``sets[name]`` set when it starts."""

    def make(name: str, concurrent: bool, after: tuple[str, ...] = ()) -> type:
        def run(self: object, ctx: object) -> CheckResult:
            ran.append((name, threading.current_thread().name.split("_")[0]))
            if name in sets:
                sets[name].set()
            if name in waits:
                assert waits[name].wait(10)
            return CheckResult()

        attrs = {"name": name, "concurrent": concurrent, "reads_matrix": True, "after": after}
        return type(name, (), {**attrs, "order": 0, "run": run})

    return {
        "scan": make("scan", False),
        "noise": make("noise", True),
        "slow": make("slow", True),
        "roni": make("roni", False, ("noise",)),
    }


def test_a_waiting_main_lane_runs_the_side_lanes_last_task() -> None:
    # noise (awaited by RONI) does not end before slow has started: the main lane, whose RONI
    # waits for noise, takes slow (the side lane's last task) instead of idling
    ran: list[tuple[str, str]] = []
    started = threading.Event()
    checks = _blocking_checks(ran, waits={"noise": started}, sets={"slow": started})
    ctx = _ctx({"matrix": object()})
    results, _ = _run_checks(ctx, checks, 2)  # type: ignore[arg-type]
    assert ("slow", "MainThread") in ran
    assert ("noise", "tabguard-audit") in ran
    assert [n for n, _ in ran].index("roni") > [n for n, _ in ran].index("noise")
    assert list(results) == ["scan", "noise", "slow", "roni"]


def test_an_idle_side_lane_runs_the_main_lanes_next_check_once_it_is_ready() -> None:
    # the main lane is held in slow until RONI has run: the side lane, done with noise, runs it
    ran: list[tuple[str, str]] = []
    started, roni_ran = threading.Event(), threading.Event()
    checks = _blocking_checks(
        ran, waits={"noise": started, "slow": roni_ran}, sets={"slow": started, "roni": roni_ran}
    )
    ctx = _ctx({"matrix": object()})
    _run_checks(ctx, checks, 2)  # type: ignore[arg-type]
    assert ("slow", "MainThread") in ran
    assert ("roni", "tabguard-audit") in ran
    assert [n for n, _ in ran].index("roni") > [n for n, _ in ran].index("noise")


def test_an_error_in_a_check_is_raised_and_its_readers_do_not_run() -> None:
    ran: list[str] = []
    checks = _fake_checks(ran)

    def fail(self: object, ctx: object) -> CheckResult:
        raise ValueError("noise failed")

    checks["noise"] = type("noise", (checks["noise"],), {"run": fail})
    ctx = _ctx({"matrix": object()})
    with pytest.raises(ValueError, match="noise failed"):
        _run_checks(ctx, checks, 2)  # type: ignore[arg-type]
    assert "roni" not in ran  # it reads noise's result
    assert "descriptive" in ran


def test_masked_nearest_search_warns_nothing_and_skips_masked_rows() -> None:
    """Masked reference rows carry an infinite norm; in the last, partial block BLAS raised
    numpy's invalid flag on them (a RuntimeWarning a user saw on stderr) though no NaN reached
    the distances."""
    import warnings

    import numpy as np

    from tabguard.data_audit._matrix import nearest_distances

    rng = np.random.default_rng(0)
    ref = rng.random((5221, 22), dtype=np.float32)  # 2 full blocks of 2048 and a partial one
    q = rng.random((306, 21), dtype=np.float32)
    mask = np.ones(len(ref), dtype=bool)
    mask[-223:] = False  # masked rows in the partial block
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d, arg = nearest_distances(q, ref, mask=mask, columns=np.arange(21), return_index=True)
    assert np.all(arg < len(ref) - 223)
    kept = ref[: len(ref) - 223, :21].astype(np.float64)
    brute = np.sqrt(((q[:, None, :] - kept[None, :, :]) ** 2).sum(-1)).min(axis=1)
    np.testing.assert_allclose(d, brute, rtol=1e-3, atol=1e-3)
