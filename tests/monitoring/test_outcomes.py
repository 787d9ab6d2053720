"""Late outcomes: import rules (matching, labels, duplicates, idempotence) and performance by
window once labels mature."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from tabguard.cli import main
from tabguard.contract import Contract
from tabguard.monitoring import ALL, FixedClock, MonitorConfig, open_monitor_store
from tabguard.monitoring._aggregate import MonitorPlan
from tabguard.monitoring._outcomes import (
    import_outcomes,
    label_mapper,
    matured_outcomes,
    read_outcomes,
)
from tabguard.monitoring._update import update
from tabguard.serving import PredictionRecord
from tests.monitoring.test_update import CHANNELS, T0, make_records, write

H = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture
def setup(
    tmp_path: Path, credit_contract: Contract
) -> tuple[MonitorConfig, MonitorPlan, list[PredictionRecord]]:
    from tabguard.datasets import load_credit_default

    records = make_records(load_credit_default().head(400), step=timedelta(minutes=30))
    log = f"sqlite:///{tmp_path / 'log.db'}"
    write(log, tmp_path / "spool", records)
    cfg = MonitorConfig.from_dict(
        {
            "log": log,
            "store": f"sqlite:///{tmp_path / 'mon.db'}",
            "aggregation": {"segments": {"values": {"channel": list(CHANNELS)}}},
            "outcomes": {"maturity": "2d"},
        }
    )
    plan = MonitorPlan.from_contract(credit_contract, cfg.aggregation)
    update(cfg, plan=plan)
    return cfg, plan, records


def test_label_mapping_follows_the_contract(credit_contract: Contract) -> None:
    mapping, text = label_mapper(credit_contract)
    assert mapping == {"1": 1, "0": 0} and "DEFAULT" in text
    assert label_mapper(None)[0]["true"] == 1


def test_import_rules(
    setup: tuple[MonitorConfig, MonitorPlan, list[PredictionRecord]], credit_contract: Contract
) -> None:
    cfg, plan, records = setup
    decided = [r for r in records if r.decision is not None]
    refused = next(r for r in records if r.decision is None)
    later = lambda r, days=60: (r.timestamp + days * DAY).isoformat()  # noqa: E731
    frame = pd.DataFrame(
        [
            {"decision_id": decided[0].decision_id, "label": 1, "observed_at": later(decided[0])},
            {"decision_id": decided[1].decision_id, "label": 0, "observed_at": later(decided[1])},
            {"decision_id": decided[2].decision_id, "label": 2, "observed_at": later(decided[2])},
            {"decision_id": decided[3].decision_id, "label": 1, "observed_at": "not a time"},
            {
                "decision_id": decided[4].decision_id,
                "label": 1,
                "observed_at": (decided[4].timestamp - DAY).isoformat(),
            },
            {"decision_id": "nope", "label": 1, "observed_at": later(decided[0])},
            {"decision_id": refused.decision_id, "label": 1, "observed_at": later(refused)},
            {"decision_id": decided[5].decision_id, "label": 0, "observed_at": later(decided[5])},
            {"decision_id": decided[5].decision_id, "label": 1, "observed_at": later(decided[5])},
        ]
    )
    report = import_outcomes(frame, cfg, plan=plan, contract=credit_contract)
    assert (report.imported, report.invalid_label, report.invalid_time) == (3, 1, 2)
    assert (report.unknown, report.duplicates) == (2, 1)
    assert "nope" in report.examples["unknown"]
    again = import_outcomes(frame.iloc[:2], cfg, plan=plan, contract=credit_contract)
    assert again.already == 2 and again.imported == 0
    flip = frame.iloc[[1]].assign(label=1, observed_at=later(decided[1], 90))
    assert import_outcomes(flip, cfg, plan=plan, contract=credit_contract).relabelled == 1
    older = frame.iloc[[1]].assign(label=0, observed_at=later(decided[1], 30))
    assert import_outcomes(older, cfg, plan=plan, contract=credit_contract).stale == 1


def test_subject_matches_the_latest_decision_before_the_observation(
    setup: tuple[MonitorConfig, MonitorPlan, list[PredictionRecord]], tmp_path: Path
) -> None:
    cfg, plan, records = setup
    first = next(r for r in records if r.decision is not None)
    # The same subject applies again a day later: a new decision in the log.
    again = make_records(pd.DataFrame([first.raw | {"DEFAULT": 0}]), start=first.timestamp + DAY)[0]
    again.subject_id = first.subject_id
    write(cfg.log_url(), tmp_path / "spool", [again])
    frame = pd.DataFrame(
        [
            {
                "subject_id": first.subject_id,
                "label": 1,
                "observed_at": (first.timestamp + H).isoformat(),
            },
        ]
    )
    report = import_outcomes(frame, cfg, plan=plan)
    assert report.imported == 1
    with open_monitor_store(cfg.store_url()) as store:
        got = matured_outcomes(
            store, T0, T0 + 30 * DAY, as_of=T0 + 60 * DAY, maturity=cfg.outcomes.maturity
        )
    assert got["decision_id"].tolist() == [first.decision_id]  # not the later application


def test_performance_by_window_once_labels_mature(
    setup: tuple[MonitorConfig, MonitorPlan, list[PredictionRecord]], credit_contract: Contract
) -> None:
    cfg, plan, records = setup
    rng = np.random.default_rng(4)
    decided = [r for r in records if r.decision is not None]
    labels = [int(rng.random() < (r.score or 0)) for r in decided]  # calibrated by design
    frame = pd.DataFrame(
        {
            "decision_id": [r.decision_id for r in decided],
            "label": labels,
            "observed_at": [(r.timestamp + 3 * DAY).isoformat() for r in decided],
        }
    )
    assert import_outcomes(frame, cfg, plan=plan, contract=credit_contract).imported == len(decided)
    end = T0 + 9 * DAY
    clock = FixedClock(T0 + 6 * DAY)
    with open_monitor_store(cfg.store_url()) as store:
        perf = store.performance(T0, end, as_of=clock.now(), maturity=cfg.outcomes.maturity)
        everything = perf[perf.segment_key == "all"].iloc[0]
        # Only decisions of the first 4 days have matured at day 6 (maturity 2 days) and
        # their labels were observed by then.
        matured = [
            (r, y)
            for r, y in zip(decided, labels, strict=True)
            if r.timestamp + 2 * DAY <= clock.now() and r.timestamp + 3 * DAY <= clock.now()
        ]
        assert everything.n_labelled == len(matured)
        expected_auc = roc_auc_score([y for _, y in matured], [r.score for r, _ in matured])
        assert everything.auc == pytest.approx(expected_auc)
        assert everything.default_rate == pytest.approx(np.mean([y for _, y in matured]))
        channels = perf[perf.segment_key == "channel"]
        assert set(channels.segment_value) <= set(CHANNELS)
        assert channels.n_labelled.sum() == everything.n_labelled
        bands = store.performance_bands(
            T0, end, as_of=T0 + 60 * DAY, maturity=cfg.outcomes.maturity, segment=ALL
        )
        assert bands.n.sum() == len(decided)
        assert ((bands.mean_score >= bands.low) & (bands.mean_score < bands.high)).all()
        # calibrated labels: the observed rate follows the score on the well-filled bands
        big = bands[bands.n >= 30]
        assert np.corrcoef(big.default_rate, big.mean_score)[0, 1] > 0.8


def test_dashboard_performance_panel_once_labels_mature(
    setup: tuple[MonitorConfig, MonitorPlan, list[PredictionRecord]], credit_contract: Contract
) -> None:
    from tabguard.monitoring._dashboard import DashboardData

    cfg, plan, records = setup
    decided = [r for r in records if r.decision is not None]
    rng = np.random.default_rng(5)
    labels = [int(rng.random() < (r.score or 0)) for r in decided]
    frame = pd.DataFrame(
        {
            "decision_id": [r.decision_id for r in decided],
            "label": labels,
            "observed_at": [(r.timestamp + DAY).isoformat() for r in decided],
        }
    )
    import_outcomes(frame, cfg, plan=plan, contract=credit_contract)
    with open_monitor_store(cfg.store_url()) as store:
        now = T0 + 6 * DAY  # decisions of the first 4 days have matured (maturity 2 days)
        data = DashboardData(store, maturity=cfg.outcomes.maturity, clock=FixedClock(now))
        panel = data.performance(data.grid(T0, T0 + 9 * DAY), window=DAY)
        assert panel.note is None and panel.window == 86400
        matured = [
            i for i, t in enumerate(panel.windows) if t + 86400 + 2 * 86400 <= now.timestamp()
        ]
        for i, t in enumerate(panel.windows):
            day = [
                (r, y)
                for r, y in zip(decided, labels, strict=True)
                if t <= r.timestamp.timestamp() < t + 86400
            ]
            if i in matured and day:
                assert panel.n_labelled[i] == len(day)
                assert panel.default_rate[i] == pytest.approx(
                    np.mean([y for _, y in day]), abs=1e-5
                )
                assert panel.auc[i] == pytest.approx(
                    roc_auc_score([y for _, y in day], [r.score for r, _ in day]), abs=1e-5
                )
            elif t >= now.timestamp() - 2 * 86400:
                assert panel.n_labelled[i] == 0 and panel.auc[i] is None  # not matured yet
        assert sum(b.n for b in panel.bands) == sum(panel.n_labelled)
        assert all(b.low <= (b.mean_score or b.low) < b.high for b in panel.bands)


def test_cli_import_reports_and_exits_1_on_refused_rows(
    setup: tuple[MonitorConfig, MonitorPlan, list[PredictionRecord]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg, _, records = setup
    path = tmp_path / "outcomes.csv"
    pd.DataFrame(
        {
            "decision_id": [records[1].decision_id, "unknown-id"],
            "label": [1, 1],
            "observed_at": ["2026-06-01T00:00:00", "2026-06-01T00:00:00"],
        }
    ).to_csv(path, index=False)
    config = tmp_path / "monitor.yaml"
    config.write_text(f"log: {cfg.log_url()}\nstore: {cfg.store_url()}\n")
    with pytest.raises(SystemExit) as info:
        main(["outcomes", "import", str(path), "--config", str(config)])
    out = capsys.readouterr().out
    assert info.value.code == 1
    assert "2 rows: 1 imported" in out and "unknown-id" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\n1,1\n")
    with pytest.raises(SystemExit) as info:
        main(["outcomes", "import", str(bad), "--config", str(config)])
    assert info.value.code == 2
    assert "decision_id or subject_id, observed_at" in capsys.readouterr().err
    with pytest.raises(Exception, match="observed_at"):
        read_outcomes(bad)
