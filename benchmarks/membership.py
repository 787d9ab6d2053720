"""Robustness trade-offs and membership inference on the bundled credit data (M3).

Two tables:

1. **Robustness** (``docs/robustness.md``): tabguard-trained LightGBM models - the default
   preset, the robust preset, coarse bins, noise on gameable features, and the fallback model
   without gameable features - each with its held-out AUC, its gameability rate (share of
   denied applicants who can flip to approval with one or two gameable features within the
   contract) and its membership-inference AUC (its training rows against held-out rows).
2. **Membership inference vs ART**: an overfit model (fully grown random forest trained on a
   small subset) and the robust preset on the same subset, attacked by tabguard's attacks
   (loss threshold; learned attack on score/loss/label) and by IBM ART's
   ``MembershipInferenceBlackBox`` (random-forest attack model, trained on half of the members
   and non-members, evaluated on the other half).

Run::

    .venv/bin/python benchmarks/membership.py                 # both tables (~3 min, 2 cores)
    .venv/bin/python benchmarks/membership.py --table art     # only the ART comparison

The training rows of a model are reconstructed with the training module's own split
(``tabguard.training._train._split``, same seed) - a private helper, read here so that the
attack knows the true members.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

from tabguard.datasets import credit_default_contract, load_credit_default
from tabguard.io import check_labels
from tabguard.model_audit import AuditedModel, as_audited_model, membership_attack, minimal_flips
from tabguard.training import TrainConfig, train
from tabguard.training._train import _split

VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("default preset", {"preset": "default"}),
    ("robust preset", {"preset": "robust"}),
    ("coarse bins (all)", {"preset": "default", "bins": "all"}),
    ("noise 0.3 on gameable", {"preset": "default", "noise": 0.3}),
]
BASE = {"track": False, "audit": False, "n_bootstrap": 0, "report": False, "seed": 0}


def split_data(rows: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    df = load_credit_default()
    idx = np.random.default_rng(0).permutation(len(df))
    df = df.iloc[idx].reset_index(drop=True)
    if rows:
        df = df.iloc[:rows]
    cut = int(0.8 * len(df))
    return df.iloc[:cut].reset_index(drop=True), df.iloc[cut:].reset_index(drop=True)


def members_of(df: pd.DataFrame, cfg: TrainConfig) -> pd.DataFrame:
    """The rows ``train`` fitted on (same split as the training module, same seed)."""
    y = check_labels(df, credit_default_contract()).to_numpy().astype(int)
    split = _split(y, cfg, cfg.model == "lightgbm")
    return df.iloc[split["train"]].reset_index(drop=True)


def auc(model: AuditedModel, df: pd.DataFrame) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(df["DEFAULT"], model.positive_proba(df)))


def gameability(model: AuditedModel, ref: pd.DataFrame, n: int = 300) -> tuple[float, float]:
    X = model.encode(ref)
    denied = np.flatnonzero(~model.approve(model.predict_matrix(X)))
    rows = np.random.default_rng(0).permutation(denied)[:n]
    res = minimal_flips(model, X[rows], rows, X)
    return res.rate, res.single_rate


def membership(model: AuditedModel, members: pd.DataFrame, ref: pd.DataFrame) -> float:
    res = membership_attack(
        model,
        model.encode(members),
        members["DEFAULT"].to_numpy(),
        model.encode(ref),
        ref["DEFAULT"].to_numpy(),
        max_rows=min(len(members), len(ref)),
    )
    return res.auc


def robustness_table(rows: int | None) -> None:
    contract = credit_default_contract()
    df_train, ref = split_data(rows)
    print(
        f"bundled credit data: {len(df_train)} rows to train() (its own 60/10/10/20 split), "
        f"{len(ref)} held-out rows for AUC, gameability and non-members\n"
    )
    print(
        f"{'model':28} {'AUC':>6} {'gameability':>11} {'one feature':>11} {'membership AUC':>14} "
        f"{'seconds':>7}"
    )
    results = []
    for name, opts in VARIANTS:
        cfg = TrainConfig(model="lightgbm", **BASE, **opts)
        t0 = time.perf_counter()
        res = train(df_train, contract, cfg)
        members = members_of(df_train, cfg)
        scorers = [(name, res.bundle.main)]
        if opts == {"preset": "default"} and res.bundle.fallback is not None:
            scorers.append(("fallback (no gameable)", res.bundle.fallback))
        for label, scorer in scorers:
            m = as_audited_model(scorer, contract, res.bundle.threshold)
            g, g1 = gameability(m, ref)
            row = (label, auc(m, ref), g, g1, membership(m, members, ref))
            results.append(row)
            print(
                f"{row[0]:28} {row[1]:6.4f} {row[2]:11.1%} {row[3]:11.1%} {row[4]:14.3f} "
                f"{time.perf_counter() - t0:7.1f}",
                flush=True,
            )
    print("\n| model | AUC | gameability rate | one feature | membership AUC |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r[0]} | {r[1]:.4f} | {r[2]:.1%} | {r[3]:.1%} | {r[4]:.3f} |")


def art_auc(model: AuditedModel, members: pd.DataFrame, ref: pd.DataFrame) -> float:
    """ART's black-box membership attack: fitted on half, evaluated on the other half."""
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
    from art.estimators.classification import BlackBoxClassifier
    from sklearn.metrics import roc_auc_score

    Xm, Xn = model.encode(members), model.encode(ref)
    n = min(len(Xm), len(Xn))
    rng = np.random.default_rng(0)
    im, inn = rng.permutation(len(Xm))[:n], rng.permutation(len(Xn))[:n]
    Xm, Xn = Xm[im], Xn[inn]
    ym = members["DEFAULT"].to_numpy()[im]  # the labels of the sampled rows, same order
    yn = ref["DEFAULT"].to_numpy()[inn]

    def predict(x: np.ndarray) -> np.ndarray:
        p = model.predict_matrix(x)
        return np.column_stack([1 - p, p])

    clf = BlackBoxClassifier(predict, input_shape=(Xm.shape[1],), nb_classes=2)
    onehot = np.eye(2)
    h = n // 2
    attack = MembershipInferenceBlackBox(clf, attack_model_type="rf")
    np.random.seed(0)  # ART's RandomForestClassifier() has no random_state; seed the global one
    attack.fit(Xm[:h], onehot[ym[:h]], Xn[:h], onehot[yn[:h]])
    pm = attack.infer(Xm[h:], onehot[ym[h:]], probabilities=True)
    pn = attack.infer(Xn[h:], onehot[yn[h:]], probabilities=True)
    score = np.concatenate([np.ravel(pm)[-len(Xm[h:]) :], np.ravel(pn)[-len(Xn[h:]) :]])
    truth = np.r_[np.ones(len(Xm) - h), np.zeros(len(Xn) - h)]
    return float(roc_auc_score(truth, score))


def art_table(subset: int) -> None:
    contract = credit_default_contract()
    df_train, ref = split_data()
    small = df_train.iloc[:subset].reset_index(drop=True)
    print(
        f"\nmembership inference: models trained by train() on {subset} rows (its training part "
        f"= members: {int(subset * 0.6)} rows for LightGBM, {int(subset * 0.7)} for the forest, "
        f"which has no early-stopping split), {len(ref)} held-out rows = non-members\n"
    )
    print(
        f"{'model':38} {'train AUC':>9} {'test AUC':>8} {'loss thr.':>9} {'learned':>8} "
        f"{'tabguard':>8} {'ART':>6}"
    )
    rows = []
    for name, kw in (
        ("random forest, fully grown (overfit)", {"model": "random_forest", "preset": "default"}),
        ("lightgbm default preset", {"model": "lightgbm", "preset": "default"}),
        ("lightgbm robust preset", {"model": "lightgbm", "preset": "robust"}),
    ):
        cfg = TrainConfig(**BASE, **kw)
        res = train(small, contract, cfg)
        m = as_audited_model(res.bundle.main, contract, res.bundle.threshold)
        members = members_of(small, cfg)
        att = membership_attack(
            m,
            m.encode(members),
            members["DEFAULT"].to_numpy(),
            m.encode(ref),
            ref["DEFAULT"].to_numpy(),
            max_rows=len(members),
        )
        art = art_auc(m, members, ref)
        row = (name, auc(m, members), auc(m, ref), att.loss_auc, att.learned_auc, att.auc, art)
        rows.append(row)
        print(
            f"{row[0]:38} {row[1]:9.3f} {row[2]:8.3f} {row[3]:9.3f} {row[4]:8.3f} {row[5]:8.3f} "
            f"{row[6]:6.3f}",
            flush=True,
        )
    print(
        "\n| model | train AUC | held-out AUC | loss threshold | learned attack | "
        "tabguard membership AUC | ART MembershipInferenceBlackBox AUC |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r[0]} | {r[1]:.3f} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.3f} | {r[5]:.3f} "
            f"| {r[6]:.3f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", choices=["robustness", "art", "both"], default="both")
    ap.add_argument("--rows", type=int, default=None, help="subsample for the robustness table")
    ap.add_argument("--subset", type=int, default=3000, help="training rows of the ART models")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    if args.table in ("robustness", "both"):
        robustness_table(args.rows)
    if args.table in ("art", "both"):
        art_table(args.subset)


if __name__ == "__main__":
    main()
