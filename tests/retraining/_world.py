"""A small world for the retraining tests: a parent model, a prediction log, outcomes, alerts.

Requests are written to a real SQLite prediction log as the service logs them (raw attributes as
received, decision, probing flags, segment); outcomes go through ``import_outcomes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabguard.contract import Contract
from tabguard.monitoring import MonitorConfig
from tabguard.serving import PredictionLog, PredictionRecord
from tabguard.training import ModelBundle, TrainConfig, train

T0 = datetime(2026, 1, 1, tzinfo=UTC)
AS_OF = T0 + timedelta(days=200)
#: The poisoner's trigger: an exact amount no honest applicant declares.
TRIGGER = {"PAY_AMT3": 123457}
FAST = {"num_boost_round": 60}


def train_parent(base: pd.DataFrame, contract: Contract, root: Path) -> ModelBundle:
    """A small LightGBM parent trained from ``root/base.csv``."""
    path = root / "base.csv"
    base.to_csv(path, index=False)
    cfg = TrainConfig(
        track=False, report=False, n_bootstrap=20, params=FAST, fallback=False, audit=False
    )
    return train(base, contract, cfg, out=root / "parent", data_file=path).bundle


@dataclass
class World:
    """The parent, the log and the outcomes file of one scenario."""

    root: Path
    parent: ModelBundle
    monitor: MonitorConfig
    outcomes: Path
    records: list[PredictionRecord] = field(default_factory=list)
    planted: list[str] = field(default_factory=list)
    exploits: list[str] = field(default_factory=list)


def _record(
    row: dict[str, Any], contract: Contract, score: float, at: datetime, **kw: Any
) -> PredictionRecord:
    raw = {k: row[k] for k in contract.features}
    return PredictionRecord(
        timestamp=at,
        raw=raw,
        features=raw,
        score=score,
        decision="deny" if score >= 0.5 else "approve",
        status="accepted",
        **kw,
    )


def build_world(
    root: Path,
    parent: ModelBundle,
    prod: pd.DataFrame,
    contract: Contract,
    *,
    poison: int = 0,
    probing_subjects: int = 0,
    seed: int = 0,
) -> World:
    """Log ``prod`` as production traffic, then optional poisoned requests and probing attacks.

    * ``poison``: requests of client ``mallory`` carrying :data:`TRIGGER` on risky applicants,
      each later "repaid" (label 0) - a trigger planted through the loop.
    * ``probing_subjects``: subjects of client ``prober`` each sending 5 variants of a
      defaulter's application (flagged by the probing detector); only the last variant's
      outcome is reported, the others are labelled through the subject.
    """
    rng = np.random.default_rng(seed)
    label = contract.label.column
    p = parent.main.positive_proba(prod)
    records: list[PredictionRecord] = []
    outcomes: list[dict[str, Any]] = []
    at = T0
    for i, (row, s) in enumerate(zip(prod.to_dict("records"), p, strict=True)):
        at = T0 + timedelta(minutes=20 * i)
        channel = "partner" if i % 4 == 0 else "online"
        r = _record(row, contract, float(s), at, client="bank", subject_id=f"s{i}",
                    segment={"channel": channel})  # fmt: skip
        records.append(r)
        outcomes.append((r.decision_id, int(row[label]), at))
    planted: list[str] = []
    risky = prod[prod[label] == 1].to_dict("records")
    for j in range(poison):
        row = {**risky[j % len(risky)], **TRIGGER}
        at = T0 + timedelta(days=3, minutes=7 * j)
        r = _record(row, contract, 0.3, at, client="mallory", subject_id=f"m{j}",
                    segment={"channel": "partner"})  # fmt: skip
        records.append(r)
        planted.append(r.decision_id)
        outcomes.append((r.decision_id, 0, at))
    exploits: list[str] = []
    for k in range(probing_subjects):
        row = risky[(k * 7) % len(risky)]
        for v in range(5):
            at = T0 + timedelta(days=20, hours=k, minutes=v)
            variant = {**row, "PAY_AMT1": int(rng.integers(50_000, 400_000))}
            r = _record(variant, contract, 0.45 if v == 4 else 0.6, at, client="prober",
                        subject_id=f"p{k}", probing=["near_duplicate"] if v else [])  # fmt: skip
            records.append(r)
            exploits.append(r.decision_id)
        outcomes.append((records[-1].decision_id, 1, at))
    log = f"sqlite:///{root / 'log.db'}"
    with PredictionLog(log, spool_dir=root / "spool", batch_size=500) as plog:
        for r in records:
            plog.append(r)
        assert plog.flush()
    path = root / "outcomes.csv"
    pd.DataFrame(
        [
            {"decision_id": d, "label": y, "observed_at": (t + timedelta(days=40)).isoformat()}
            for d, y, t in outcomes
        ]
    ).to_csv(path, index=False)
    monitor = MonitorConfig.from_dict(
        {"log": log, "store": f"sqlite:///{root / 'mon.db'}", "outcomes": {"maturity": "30d"}}
    )
    return World(root, parent, monitor, path, records, planted, exploits)
