"""Training variants on the bundled credit data: each model family under each preset, and the
data-centric options (coarse bins, noise, dropping gameable features, monotone constraints).

Prints held-out AUC with its 95% bootstrap CI, log loss, calibration error, the measured
conformal coverage (target 0.90), the train/test AUC gap (memorisation) and the fit time.

    .venv/bin/python benchmarks/training_variants.py [--rows N]

The data audit is skipped (the bundled data has no critical finding; ``tabguard train`` runs
it) and nothing is tracked, so only training and evaluation are timed.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from tabguard.datasets import credit_default_contract, load_credit_default
from tabguard.training import TrainConfig, train

VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("lightgbm default", {"model": "lightgbm", "preset": "default"}),
    ("lightgbm robust", {"model": "lightgbm", "preset": "robust"}),
    ("lightgbm default + bins all", {"model": "lightgbm", "bins": "all"}),
    ("lightgbm default + noise 0.3", {"model": "lightgbm", "noise": 0.3}),
    ("lightgbm default + monotone", {"model": "lightgbm", "monotone": True}),
    ("lightgbm default, gameable dropped", {"model": "lightgbm", "drop_gameable": True}),
    ("random_forest default", {"model": "random_forest", "preset": "default"}),
    ("random_forest robust", {"model": "random_forest", "preset": "robust"}),
    ("logistic default", {"model": "logistic", "preset": "default"}),
    ("logistic robust", {"model": "logistic", "preset": "robust"}),
]


def main() -> None:
    """Train every variant and print one table row each."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=None, help="subsample the data (default: all)")
    args = ap.parse_args()
    df = load_credit_default()
    if args.rows:
        df = df.sample(args.rows, random_state=0).reset_index(drop=True)
    contract = credit_default_contract()
    print(f"bundled credit data: {len(df)} rows; held-out 20%, calibration 10%, seed 0\n")
    head = (
        f"{'variant':36} {'AUC [95% CI]':24} {'logloss':>7} {'ECE':>6} {'cover':>6} "
        f"{'train-test':>10} {'fallback AUC':>12} {'seconds':>7}"
    )
    print(head)
    print("-" * len(head))
    for name, opts in VARIANTS:
        cfg = TrainConfig(track=False, audit=False, report=False, **opts)
        t0 = time.perf_counter()
        res = train(df, contract, cfg)
        secs = time.perf_counter() - t0
        m = res.metrics
        auc = f"{m['test_auc']:.4f} [{m['test_auc_ci_low']:.4f}, {m['test_auc_ci_high']:.4f}]"
        fb = m.get("fallback_test_auc", float("nan"))
        print(
            f"{name:36} {auc:24} {m['test_log_loss']:7.4f} {m['calibration_ece']:6.4f} "
            f"{m['conformal_coverage']:6.4f} {m['train_auc'] - m['test_auc']:10.4f} "
            f"{fb:12.4f} {secs:7.1f}"
        )


if __name__ == "__main__":
    main()
