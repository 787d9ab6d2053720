"""Disguised probing against a real ``tabguard serve`` (issue 15.2).

A boundary walk or a bisection that also nudges a non-gameable amount by one unit per query
(``BILL_AMT6 + i``) must be throttled at the same query as the plain one. That with two workers
and a Redis probing store the queries one worker served count for the other is checked on the
two-worker service of ``test_workers.py`` (one service for that and the Redis limits).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tabguard.datasets import credit_default_contract
from tabguard.redteam import AttackConfig, HttpTarget, ProbingAttacker
from tabguard.serving import load_config, open_keys
from tabguard.training import ModelBundle
from tests.serving._service import RealService
from tests.serving.conftest import write_config

CONTRACT = credit_default_contract()
THROTTLE = '[probing]\naction = "throttle"\nthrottle = "1/minute"\n'


def denied_application(bundle: ModelBundle, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The sample application the model is surest to deny."""
    import pandas as pd

    scores = bundle.main.positive_proba(pd.DataFrame(records)[list(CONTRACT.features)])
    return dict(records[int(scores.argmax())])


def test_nudged_walks_and_bisections_are_throttled_like_plain_ones(
    model_dir: Path,
    bundle: ModelBundle,
    tmp_path: Path,
    sample_records: list[dict[str, Any]],
    train_df: Any,
) -> None:
    home = tmp_path / "home"
    write_config(home, '[limits]\nper_client = "off"\n' + THROTTLE)
    reference = tmp_path / "train.csv"
    train_df.to_csv(reference, index=False)
    cfg = load_config(home)
    application = denied_application(bundle, sample_records)
    attacks = {
        f"{strategy}{'+nudge' if nudge else ''}": AttackConfig(
            max_queries=60, strategy=strategy, nudge={"BILL_AMT6": 1.0} if nudge else {}
        )
        for strategy in ("walk", "bisect")
        for nudge in (False, True)
    }
    results = {}
    with RealService(model_dir, home, args=("--reference", str(reference))) as service:
        service.wait_ready()
        with open_keys(cfg) as keys, httpx.Client(base_url=service.base, timeout=30) as client:
            for name, attack in attacks.items():
                key = keys.create(f"mallory-{name}", "decide")[1]
                attacker = ProbingAttacker(HttpTarget(client, key), CONTRACT, attack)
                results[name] = attacker.attack(application, subject_prefix=name)
    for name, result in results.items():
        assert result.stopped == "max_wait", (name, result.to_dict())  # a 429, not success
        assert result.trace[-1]["reason"] == "probing_throttle"
        sent = [t for t in result.trace if t["status"] == 200]
        assert len(sent) == result.queries - 1
    assert results["walk+nudge"].queries == results["walk"].queries <= 6
    assert results["bisect+nudge"].queries == results["bisect"].queries <= 6
