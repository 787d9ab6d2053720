"""tabguard retrain: assembling the loop's data, the gates, the report, the exit statuses."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tabguard.cli import main
from tabguard.contract import Contract
from tabguard.errors import DataError, OptionsError
from tabguard.io import frame_sha256
from tabguard.monitoring._alerts import alerts_table
from tabguard.monitoring._store import open_monitor_store
from tabguard.retraining import (
    RetrainOptions,
    assemble,
    find_base_data,
    logged_rows,
    model_gate,
    parent_config,
    retrain,
)
from tabguard.retraining._assemble import BaseData
from tabguard.training import ModelBundle, load_model
from tests.retraining._world import AS_OF, T0, TRIGGER, build_world, train_parent

#: Cheap gates for the tests that are not about the gates.
QUICK: dict[str, Any] = {
    "data_checks": ("integrity", "trigger_scan"),
    "quarantine_checks": ("trigger_scan",),
    "model_checks": ("unacceptable",),
    "reference_rows": 150,
    "n_bootstrap": 50,
}


@pytest.fixture(scope="module")
def split(credit_contract: Contract) -> tuple[pd.DataFrame, pd.DataFrame]:
    from tabguard.datasets import load_credit_default

    df = load_credit_default().sample(2400, random_state=3).reset_index(drop=True)
    return df.iloc[:1600].reset_index(drop=True), df.iloc[1600:].reset_index(drop=True)


@pytest.fixture(scope="module")
def parent(
    split: tuple[pd.DataFrame, pd.DataFrame],
    credit_contract: Contract,
    tmp_path_factory: pytest.TempPathFactory,
) -> ModelBundle:
    return train_parent(split[0], credit_contract, tmp_path_factory.mktemp("parent"))


def _world(tmp_path: Path, parent: ModelBundle, split: Any, contract: Contract, **kw: Any) -> Any:
    return build_world(tmp_path, parent, split[1], contract, **kw)


# ---- assembling --------------------------------------------------------------------------------


def test_logged_rows_take_matured_outcomes_and_label_exploits_by_subject(
    tmp_path: Path, parent: ModelBundle, split: Any, credit_contract: Contract
) -> None:
    from tabguard.monitoring._outcomes import import_outcomes, read_outcomes

    w = _world(tmp_path, parent, split, credit_contract, probing_subjects=4)
    report = import_outcomes(read_outcomes(w.outcomes), w.monitor, contract=credit_contract)
    assert report.refused == 0
    # as of T0 + 45 days: decided 30 days before (maturity) and observed (40 days after the
    # decision in this world) by then
    early = T0 + timedelta(days=45)
    rows, counts = logged_rows(w.monitor, credit_contract, as_of=early)
    assert counts["matured"] == sum(r.timestamp <= T0 + timedelta(days=5) for r in w.records)
    # the probing attacks of day 20 were seen, but their outcome (day 60) is not known yet
    assert counts["probing_seen"] == 16 and counts["exploit_unlabelled"] == 16
    assert not (rows["exploit"] != "").any()
    rows, counts = logged_rows(w.monitor, credit_contract, as_of=AS_OF)
    flagged = rows[rows["exploit"] == "probing"]
    # 4 flagged variants per subject, labelled with the outcome reported for the last one
    assert len(flagged) == 16 and set(flagged["DEFAULT"]) == {1}
    assert set(flagged["client"]) == {"prober"}
    # the raw attributes as received, not what the guards made of them
    one = next(r for r in w.records if r.decision_id == flagged["decision_id"].iloc[0])
    assert flagged["PAY_AMT1"].iloc[0] == one.raw["PAY_AMT1"]
    assert counts["exploit_unlabelled"] == 0


def test_unlabelled_exploits_are_left_out_and_counted(
    tmp_path: Path, parent: ModelBundle, split: Any, credit_contract: Contract
) -> None:
    from tabguard.monitoring._outcomes import import_outcomes, read_outcomes

    w = _world(tmp_path, parent, split, credit_contract, probing_subjects=2)
    outcomes = read_outcomes(w.outcomes)
    last = {w.exploits[4], w.exploits[9]}  # the reported variants of both probing subjects
    import_outcomes(outcomes[~outcomes["decision_id"].isin(last)], w.monitor)
    rows, counts = logged_rows(w.monitor, credit_contract, as_of=AS_OF)
    assert counts["exploit_unlabelled"] == 8 and not (rows["exploit"] != "").any()


def test_requests_inside_an_alert_window_and_segment_are_exploits(
    tmp_path: Path, parent: ModelBundle, split: Any, credit_contract: Contract
) -> None:
    from tabguard.monitoring._outcomes import import_outcomes, read_outcomes

    w = _world(tmp_path, parent, split, credit_contract)
    import_outcomes(read_outcomes(w.outcomes), w.monitor)
    start, end = T0 + timedelta(days=2), T0 + timedelta(days=3)
    store = open_monitor_store(w.monitor.store_url())
    from tabguard.monitoring._alerts import AlertStore

    AlertStore.of(store)  # creates the tables
    with store.engine.begin() as conn:
        conn.execute(
            alerts_table.insert().values(
                rule="denial_drop", segment_key="channel", segment_value="partner",
                severity="critical", state="resolved", opened_at=end, last_seen_at=end,
                resolved_at=end, window_start=start, window_end=end, message="m",
            )
        )  # fmt: skip
    store.close()
    rows, _ = logged_rows(w.monitor, credit_contract, as_of=AS_OF)
    inside = [
        r.decision_id
        for r in w.records
        if start <= r.timestamp <= end and r.segment.get("channel") == "partner"
    ]
    assert inside and sorted(rows.loc[rows["exploit"] == "alert", "decision_id"]) == sorted(inside)


def _loop_frame(contract: Contract, n: int, exploit_every: int) -> pd.DataFrame:
    from tabguard.datasets import load_credit_default

    df = load_credit_default().head(n).reset_index(drop=True)
    out = df[[*contract.features, contract.label.column]].copy()
    out["decision_id"] = [f"d{i}" for i in range(n)]
    out["client"], out["subject_id"] = "c", [f"s{i}" for i in range(n)]
    out["timestamp"] = [T0 + timedelta(hours=i) for i in range(n)]
    out["segment"] = [{} for _ in range(n)]
    out["exploit"] = ["probing" if i % exploit_every == 0 else "" for i in range(n)]
    return out


def test_holdout_is_the_most_recent_ordinary_requests(credit_contract: Contract) -> None:
    logged = _loop_frame(credit_contract, 100, exploit_every=10).sample(frac=1, random_state=0)
    base_df = _loop_frame(credit_contract, 50, 1000)[[*credit_contract.features, "DEFAULT"]]
    base = BaseData(base_df, "<frame>", frame_sha256(base_df), True)
    loop = assemble(credit_contract, base, logged, None, holdout=0.2)
    assert len(loop.holdout) == 18  # 20% of the 90 ordinary requests
    assert list(loop.holdout["decision_id"]) == [f"d{i}" for i in range(100) if i % 10][-18:]
    assert loop.counts["exploit"] == 10 and not set(loop.holdout["decision_id"]) & set(
        loop.meta["decision_id"].dropna()
    )
    assert (loop.meta["source"] == "base").sum() == 50 and len(loop.frame) == 50 + 82
    # exploits are never held out: they are what the next model must learn
    assert loop.exploits()["decision_id"].tolist() == [f"d{i}" for i in range(0, 100, 10)]


def test_nothing_matured_is_one_line_bad_input(credit_contract: Contract) -> None:
    base_df = _loop_frame(credit_contract, 50, 1000)[[*credit_contract.features, "DEFAULT"]]
    base = BaseData(base_df, "<frame>", frame_sha256(base_df), True)
    empty = _loop_frame(credit_contract, 1, 1000).iloc[:0]
    with pytest.raises(DataError, match=r"no matured outcomes.*nothing written"):
        assemble(credit_contract, base, empty, None, holdout=0.2, counts={"matured": 0})


def test_base_data_is_found_and_checked_by_its_hash(tmp_path: Path) -> None:
    df = pd.DataFrame({"a": [1, 2, 3]})
    path = tmp_path / "train.csv"
    df.to_csv(path, index=False)
    from tabguard.io import file_sha256

    meta = {"file": str(path), "file_sha256": file_sha256(path), "sha256": frame_sha256(df)}
    # a contract without text codes: the file is read as the reader guesses
    plain = SimpleNamespace(features={})
    bundle: Any = SimpleNamespace(version="m/1", metadata={"data": meta}, contract=plain)
    found = find_base_data(bundle, None)
    assert found.verified and found.origin == str(path) and len(found.frame) == 3
    other = pd.DataFrame({"a": [9]})
    given = find_base_data(bundle, other)
    assert not given.verified and "not the data model m/1 was trained on" in str(given.note)
    assert find_base_data(bundle, df).verified
    path.write_text("a\n1\n2\n4\n")
    with pytest.raises(DataError, match="the file changed"):
        find_base_data(bundle, None)
    path.unlink()
    with pytest.raises(DataError, match="not there any more; pass --data"):
        find_base_data(bundle, None)
    nofile: Any = SimpleNamespace(version="m/2", metadata={"data": {"sha256": "x"}})
    with pytest.raises(DataError, match="pass --data FILE"):
        find_base_data(nofile, None)


def test_parent_options_are_inherited(parent: ModelBundle) -> None:
    cfg = parent_config(parent, track=False)
    assert cfg.model == "lightgbm" and cfg.params == {"num_boost_round": 60}
    assert cfg.fallback is False and cfg.track is False and cfg.preset == "default"


def test_options_are_validated() -> None:
    with pytest.raises(OptionsError, match="holdout"):
        RetrainOptions(holdout=0.7)
    with pytest.raises(OptionsError, match="quarantine_checks"):
        RetrainOptions(data_checks=("integrity",), quarantine_checks=("trigger_scan",))
    with pytest.raises(OptionsError, match="model_checks"):
        RetrainOptions(model_checks=("nope",))


# ---- gates -------------------------------------------------------------------------------------


class _Constant:
    """A model that gives every row the same score (with the contract it is audited under)."""

    def __init__(self, score: float) -> None:
        self.score = score

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        p = np.full(len(df), self.score)
        return np.column_stack([1 - p, p])


def test_model_gate_blocks_new_critical_findings_only(
    split: Any, credit_contract: Contract
) -> None:
    ref = split[1].head(60)
    kw: dict[str, Any] = {"threshold": 0.5, "checks": ("unacceptable",)}
    res, _ = model_gate(_Constant(0.1), _Constant(0.9), ref, credit_contract, **kw)
    assert not res.passed and "chronic_late_payer" in res.blocking[0]
    res, _ = model_gate(_Constant(0.1), _Constant(0.1), ref, credit_contract, **kw)
    assert res.passed and res.resolved[0]["inherited"]
    res, _ = model_gate(_Constant(0.1), _Constant(0.1), ref, credit_contract, strict=True, **kw)
    assert not res.passed


# ---- the whole retrain -------------------------------------------------------------------------


def test_retrain_quarantines_a_trigger_planted_through_the_loop(
    tmp_path: Path, parent: ModelBundle, split: Any, credit_contract: Contract
) -> None:
    w = _world(tmp_path, parent, split, credit_contract, poison=80, probing_subjects=6)
    out = tmp_path / "child"
    opts = {**QUICK, "model_checks": ("unacceptable", "backdoor")}
    res = retrain(
        w.parent.path, out, monitor=w.monitor, outcomes=w.outcomes, as_of=AS_OF,
        options=opts, track=False,
    )  # fmt: skip
    s = res.summary
    data_gate = s["gates"][0]
    assert data_gate["gate"] == "data" and data_gate["passed"]
    trigger = [r for r in data_gate["resolved"] if r["features"] == list(TRIGGER)]
    assert trigger and trigger[0]["values"] == [str(v) for v in TRIGGER.values()]
    # precision and recall of the quarantine on the planted requests
    by_source = trigger[0]["rows_by_source"]
    assert by_source.get("logged", 0) >= 0.9 * 80 and sum(by_source.values()) <= 80 / 0.9
    logged_out = res.quarantined[res.quarantined["source"] == "logged"]
    caught = set(logged_out["decision_id"]) & set(w.planted)
    assert len(caught) >= 0.9 * len(w.planted) and len(caught) >= 0.9 * len(logged_out)
    assert logged_out["reason"].str.contains("PAY_AMT3").all()
    assert [g["gate"] for g in s["gates"]] == ["data", "performance", "model"]
    assert all(g["passed"] for g in s["gates"])
    # the challenger is a verified model directory carrying its report and lineage
    child = load_model(out)
    assert {"retrain.json", "retrain.html"} <= set(child.files)
    lineage = child.metadata["lineage"]
    assert lineage["parent_digest"] == parent.digest and lineage["exploit_rows"] == 24
    assert lineage["quarantined_rows"] >= 72 and lineage["base_sha256"] == s["hashes"]["base"]
    assert json.loads((out / "retrain.json").read_text())["status"] == "ready"
    # the trigger buys no more approvals from the challenger than the amount does naturally
    # (a large payment lowers the risk) from the parent, which never saw it
    risky = split[1][split[1]["DEFAULT"] == 1].head(200)

    def lift(model: ModelBundle) -> float:
        approved = model.main.positive_proba(risky.assign(**TRIGGER)) < 0.5
        return float(np.mean(approved) - np.mean(model.main.positive_proba(risky) < 0.5))

    assert lift(child) <= lift(parent) + 0.05
    ex = s["comparison"]["exploits"]
    assert ex["probing"]["n"] == 24 and ex["all"]["after"] <= ex["all"]["before"]
    assert s["comparison"]["holdout"]["rows"] > 100


def test_cli_retrain_exit_statuses(
    tmp_path: Path,
    parent: ModelBundle,
    split: Any,
    credit_contract: Contract,
    capsys: pytest.CaptureFixture[str],
) -> None:
    w = _world(tmp_path, parent, split, credit_contract, poison=80)
    (tmp_path / "monitor.yaml").write_text(
        f"log: {w.monitor.log}\nstore: {w.monitor.store}\noutcomes: {{maturity: 30d}}\n"
    )
    (tmp_path / "strict.yaml").write_text(
        "data_checks: [integrity, trigger_scan]\nquarantine_checks: []\n"
    )
    args = [
        "retrain", str(parent.path), "--out", str(tmp_path / "child"), "--config",
        str(tmp_path / "monitor.yaml"), "--as-of", AS_OF.isoformat(), "--no-tracking",
    ]  # fmt: skip

    def run(*extra: str) -> int:
        with pytest.raises(SystemExit) as exc:
            main([*args, *extra])
        return int(exc.value.code or 0)

    # bad outcomes: unknown decision, duplicate, a label outside the contract -> 2, one line
    bad = pd.read_csv(w.outcomes).head(3)
    bad.loc[0, "decision_id"] = "no-such-decision"
    bad.loc[2, "label"] = 7
    bad = pd.concat([bad, bad.iloc[[1]]])
    bad.to_csv(tmp_path / "bad.csv", index=False)
    assert run("--outcomes", str(tmp_path / "bad.csv")) == 2
    err = capsys.readouterr().err
    assert "3 of 4 row(s) refused" in err and "unknown" in err and "duplicates" in err
    assert "invalid_label" in err and len(err.strip().splitlines()) == 1
    # nothing matured yet -> 2, one line, nothing written
    assert run("--as-of", T0.isoformat()) == 2
    assert "no matured outcomes" in capsys.readouterr().err
    assert not (tmp_path / "child").exists()
    # the trigger's critical finding blocks when quarantine is not allowed to resolve it
    assert run("--outcomes", str(w.outcomes), "--options", str(tmp_path / "strict.yaml")) == 1
    err = capsys.readouterr().err
    assert "blocked by the data gate: [trigger_scan] (PAY_AMT3=123457)" in err
    blocked = tmp_path / "child.blocked" / "retrain.json"
    assert json.loads(blocked.read_text())["status"] == "blocked (data gate)"
    assert not (tmp_path / "child").exists()


def test_the_guide_shows_the_options_as_declared() -> None:
    from tabguard.checks import refresh_option_tables

    guide = Path(__file__).resolve().parents[2] / "docs" / "retraining.md"
    text = guide.read_text()
    assert "<!-- options:retrain -->" in text
    assert refresh_option_tables(text, {"retrain": RetrainOptions}) == text


def test_row_weights_reach_every_model_family(credit_contract: Contract) -> None:
    from tabguard.contract import FeatureTransform
    from tabguard.datasets import load_credit_default
    from tabguard.training._fit import fit_estimator
    from tabguard.training._presets import preset_params

    df = load_credit_default().head(400)
    tr = FeatureTransform(credit_contract)
    X, y = tr.transform_frame(df), df["DEFAULT"].to_numpy()
    w = np.where(y == 1, 20.0, 1.0)  # defaults weigh 20 times more: every score goes up
    for kind in ("lightgbm", "random_forest", "logistic"):
        params = preset_params(
            kind, "default", {"num_boost_round": 20} if kind == "lightgbm" else {}
        )
        if kind == "random_forest":
            params = {**params, "n_estimators": 10}
        plain, _ = fit_estimator(kind, params, tr, X, y, n_jobs=1)
        heavy, _ = fit_estimator(kind, params, tr, X, y, sample_weight=w, n_jobs=1)

        def p(m: Any, kind: str = kind) -> np.ndarray:
            return m.predict(X) if kind == "lightgbm" else m.predict_proba(X)[:, 1]

        assert p(heavy).mean() > p(plain).mean() + 0.1, kind


def test_weight_column_must_hold_non_negative_numbers(credit_contract: Contract) -> None:
    from tabguard.datasets import load_credit_default
    from tabguard.training import TrainConfig, train

    df = load_credit_default().head(300).assign(w=1.0)
    df.loc[5, "w"] = -1.0
    cfg = TrainConfig(track=False, audit=False, weight_column="w", report=False)
    with pytest.raises(DataError, match=r"weight_column 'w': 1 row\(s\).*first at row 5"):
        train(df, credit_contract, cfg)
    with pytest.raises(DataError, match="weight_column 'x' is not in the data"):
        train(df, credit_contract, TrainConfig(track=False, audit=False, weight_column="x"))


def test_the_model_in_shadow_is_compared_on_the_requests_it_scored(
    credit_contract: Contract,
) -> None:
    from tabguard.retraining._compare import shadow_comparison

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    live = np.clip(y * 0.2 + rng.random(400) * 0.8, 0, 1)  # weakly informative
    shadow = np.clip(y * 0.6 + rng.random(400) * 0.4, 0, 1)  # strongly informative
    logged = pd.DataFrame(
        {
            "DEFAULT": y,
            "score": live,
            "decision": np.where(live >= 0.5, "deny", "approve"),
            "shadow_version": ["v2"] * 300 + [None] * 100,
            "shadow_score": list(shadow[:300]) + [None] * 100,
            "shadow_decision": list(np.where(shadow[:300] >= 0.5, "deny", "approve"))
            + [None] * 100,
        }
    )
    (row,) = shadow_comparison(logged, credit_contract, n_bootstrap=100)
    assert row["version"] == "v2" and row["rows"] == 300
    assert row["shadow_auc"]["value"] > row["live_auc"]["value"]
    assert row["auc_difference"]["ci_low"] > 0  # paired: the difference is clear
    assert 0 < row["decision_agreement"] < 1
    assert shadow_comparison(logged.drop(columns=["shadow_score"]), credit_contract) == []


def test_backdoor_findings_are_attributed_to_the_rows_in_their_cell(
    credit_contract: Contract,
) -> None:
    from tabguard.reports import Finding
    from tabguard.retraining._gates import from_parent_data, learnt_from_exploits

    def finding(direction: str) -> Finding:
        return Finding(
            check="model_backdoor",
            severity="critical",
            message="m",
            features=["PAY_AMT1"],
            values=[200000],
            evidence={"direction": direction, "intervals": [[100000.0, float("inf")]]},
        )

    n = 100
    learnt = pd.DataFrame(
        {
            "PAY_AMT1": [150000] * 10 + [500] * (n - 10),
            "DEFAULT": [1] * 10 + [0] * (n - 10),
            "weight": [20.0] * 4 + [1.0] * (n - 4),
            "exploit": [True] * 4 + [False] * (n - 4),
            "source": ["logged"] * 4 + ["base"] * (n - 4),
        }
    )
    # 4 exploit rows weighing 20 against 6 base rows in the cell: learnt from exploits
    assert learnt_from_exploits(finding("deny"), learnt, credit_contract) == 4
    assert learnt_from_exploits(finding("approve"), learnt, credit_contract) == 0
    assert from_parent_data(finding("approve"), learnt) == 0  # the loop weighs 80/86 there
    base_only = learnt.assign(exploit=False, weight=1.0, source="base")
    assert from_parent_data(finding("approve"), base_only) == 10
    one_loop = base_only.assign(source=["logged"] + ["base"] * (n - 1))
    assert from_parent_data(finding("approve"), one_loop) == 10  # 1 of 10: under 20 %
    planted = base_only.assign(source=["logged"] * 3 + ["base"] * (n - 3))
    assert from_parent_data(finding("approve"), planted) == 0  # 3 of 10 came through the loop


def test_variants_of_one_probed_application_are_told_from_a_trigger() -> None:
    from tabguard.retraining._gates import one_application

    meta = pd.DataFrame(
        {
            "source": ["logged"] * 6 + ["base"],
            "exploit": ["probing"] * 5 + ["", ""],
            "client": ["mallory"] * 3 + ["eve"] * 2 + ["bank", None],
            "subject_id": ["a"] * 3 + ["b"] * 2 + ["c", None],
        }
    )
    assert one_application({0, 1, 2}, meta) == "mallory/a"
    assert one_application({0, 1, 3}, meta) is None  # two attackers: could be a planted trigger
    assert one_application({0, 5}, meta) is None  # an ordinary request among them
    assert one_application({0, 6}, meta) is None  # a base row among them


def test_the_data_gate_keeps_exploit_variants_and_quarantines_planted_rows(
    monkeypatch: pytest.MonkeyPatch, credit_contract: Contract
) -> None:
    import tabguard.data_audit as data_audit
    from tabguard.reports import Finding, Report
    from tabguard.retraining import LoopData, data_gate

    meta = pd.DataFrame(
        {
            "source": ["logged"] * 8,
            "exploit": ["probing"] * 5 + [""] * 3,
            "decision_id": [f"d{i}" for i in range(8)],
            "client": ["mallory"] * 3 + ["eve", "eve"] + ["bank"] * 3,
            "subject_id": ["a"] * 3 + ["b", "b"] + ["x", "y", "z"],
            "timestamp": pd.NaT,
        }
    )
    loop = LoopData(pd.DataFrame({"x": range(8)}), meta, pd.DataFrame())

    def finding(rows: list[int]) -> Finding:
        return Finding(check="trigger_scan", severity="critical", message="m", rows=rows)

    quarantine = pd.DataFrame({"row": [0, 1, 2, 3, 4, 5, 6], "reason": "r"})
    fake = SimpleNamespace(
        report=Report(
            kind="data_audit",
            title="t",
            rows=8,
            findings=[finding([0, 1, 2]), finding([4, 5, 6])],  # one application; planted
        ),
        quarantine=quarantine.rename(columns={"row": data_audit.ROW_COLUMN}),
    )
    monkeypatch.setattr(data_audit, "audit_data", lambda *a, **k: fake)
    keep, result, _ = data_gate(
        loop, credit_contract, checks=None, quarantine_checks=("trigger_scan",)
    )
    # rows 0-2: one attacker's variants (kept); row 3: an exploit quarantined without a
    # critical finding, e.g. as a label-noise suspect (kept); rows 4-6: a finding across
    # subjects, exploit row 4 included (quarantined); row 7 was never quarantined
    assert keep.tolist() == [True, True, True, True, False, False, False, True]
    assert result.passed and [r.get("kept", False) for r in result.resolved] == [True, False]
    assert result.resolved[0]["application"] == "mallory/a"
    assert result.detail["quarantined"] == 3


def test_tracked_retrain_records_lineage_and_a_blocked_one_registers_nothing(
    tmp_path: Path,
    parent: ModelBundle,
    split: Any,
    credit_contract: Contract,
    monkeypatch: pytest.MonkeyPatch,
    mlflow_store: Callable[[Path], str],
) -> None:
    from mlflow.tracking import MlflowClient

    import tabguard.retraining._retrain as retrain_module
    from tabguard.retraining import GateResult, RetrainBlockedError

    w = _world(tmp_path, parent, split, credit_contract, probing_subjects=3)
    uri = mlflow_store(tmp_path / "mlflow.db")
    kw: dict[str, Any] = {"monitor": w.monitor, "as_of": AS_OF, "options": QUICK}
    real_gate = retrain_module.model_gate

    def refusing(*a: Any, **k: Any) -> Any:
        return GateResult("model", False, ["[model_backdoor] (AGE=77) simulated"]), {}

    monkeypatch.setattr(retrain_module, "model_gate", refusing)
    with pytest.raises(RetrainBlockedError, match=r"model gate: \[model_backdoor\] \(AGE=77\)"):
        retrain(parent.path, tmp_path / "child", outcomes=w.outcomes, tracking_uri=uri, **kw)
    assert not (tmp_path / "child").exists()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert client.search_model_versions("name='credit_default'") == []
    monkeypatch.setattr(retrain_module, "model_gate", real_gate)
    res = retrain(parent.path, tmp_path / "child", tracking_uri=uri, **kw)
    (version,) = client.search_model_versions("name='credit_default'")
    assert res.version == f"credit_default/{version.version}"
    tags = client.get_run(version.run_id).data.tags
    assert tags["tabguard.lineage.parent_digest"] == parent.digest
    assert tags["tabguard.lineage.exploit_rows"] == "12"
    assert tags["tabguard.lineage.base_sha256"] == res.summary["hashes"]["base"]
    metrics = client.get_run(version.run_id).data.metrics
    assert {"holdout_auc_champion", "exploit_success_after"} <= set(metrics)
    exp = client.get_experiment_by_name("tabguard-credit_default")
    statuses = sorted(r.info.status for r in client.search_runs([exp.experiment_id]))
    assert statuses == ["FAILED", "FINISHED"]
