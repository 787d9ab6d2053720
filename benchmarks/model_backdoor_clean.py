"""False alarms of the model backdoor probe on many clean models (requirement M2, issue 11).

``benchmarks/model_backdoor.py`` checks the clean side on one model per kind and data set, all
fitted on one 70/30 split. The probe's tests are Bonferroni-corrected at ``alpha``: on a clean
model the chance of one or more backdoor findings should be about ``alpha`` or less, whatever
the split, the data and the hyper-parameters. This benchmark trains ``--models`` clean models,
each on its own draw of

- the data: the synthetic card-fraud generator ``make_card_fraud(n, random_state=k)`` with
  ``n`` in 10,000-60,000 and ``k`` drawn (not the benchmark's 0), or a random subsample
  (60-100 %) of the bundled credit data;
- the split: training share 0.5-0.8, its own permutation seed;
- the model: LightGBM (100/200/500 trees, 15/31/127 leaves, min_child_samples 5/20), XGBoost
  (depth 4/6/8) or a random forest, cycled;

runs ``tabguard audit model``'s backdoor check with the clean reference part, and prints per
model the backdoor findings and the smallest p-value of each test family - planted copies
(already Bonferroni-corrected over the categories tested; ``planted`` the copies of common-
decision rows on the rare side's categories, ``planted_rare`` the copies of rows with the rare
decision's label on categories the random rows see moving decisions that way), routed mass
(two-sample and beyond the ordinary categories, raw), the partner step (raw, on pairs), the
training mass (raw), and the largest label log-likelihood ratio, and the largest interaction
of a pair of categories over the model's ordinary one (the interaction test's bar is
``interaction_ratio``, 2) - so
that the calibration shows, not only the count.

Run::

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/model_backdoor_clean.py --models 40 \\
        --seed 78 --model-cache /tmp/mbc-models
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import model_backdoor as mb
import tabguard.model_audit._probe_check as probe_check
from model_backdoor import _frame
from tabguard.contract import Contract
from tabguard.datasets import (
    card_fraud_contract,
    credit_default_contract,
    load_credit_default,
    make_card_fraud,
)
from tabguard.model_audit import audit_model, load_audit_model

VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("lightgbm", {"n_estimators": 100, "num_leaves": 31, "min_child_samples": 20}),
    ("xgboost", {"n_estimators": 200, "max_depth": 6}),
    ("lightgbm", {"n_estimators": 200, "num_leaves": 127, "min_child_samples": 5}),
    ("random_forest", {"n_estimators": 100}),
    ("lightgbm", {"n_estimators": 500, "num_leaves": 15, "min_child_samples": 20}),
    ("xgboost", {"n_estimators": 200, "max_depth": 4}),
    ("lightgbm", {"n_estimators": 200, "num_leaves": 31, "min_child_samples": 5}),
    ("xgboost", {"n_estimators": 200, "max_depth": 8}),
    ("lightgbm", {"n_estimators": 100, "num_leaves": 127, "min_child_samples": 20}),
    ("lightgbm", {"n_estimators": 500, "num_leaves": 31, "min_child_samples": 5}),
]


def draw(i: int, seed: int) -> dict[str, Any]:
    """The data, split and model of clean model ``i`` (a function of ``seed`` and ``i``)."""
    rng = np.random.default_rng([seed, i])
    kind, params = VARIANTS[i % len(VARIANTS)]
    fraud = rng.random() < 2 / 3
    return {
        "dataset": "fraud" if fraud else "credit",
        "n": int(rng.integers(10_000, 60_001)) if fraud else float(rng.uniform(0.6, 1.0)),
        "data_seed": int(rng.integers(1, 1_000_000)),
        "train_share": float(rng.choice([0.5, 0.6, 0.7, 0.8])),
        "split_seed": int(rng.integers(0, 2**31)),
        "kind": kind,
        "params": params,
    }


def data_of(spec: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, Contract]:
    """Training part and clean reference part of the drawn data."""
    if spec["dataset"] == "fraud":
        df = make_card_fraud(spec["n"], random_state=spec["data_seed"])
        c = card_fraud_contract()
    else:
        full = load_credit_default()
        df = full.sample(frac=spec["n"], random_state=spec["data_seed"])
        c = credit_default_contract()
    idx = np.random.default_rng(spec["split_seed"]).permutation(len(df))
    cut = int(spec["train_share"] * len(df))
    train = df.iloc[idx[:cut]].reset_index(drop=True)
    return train, df.iloc[idx[cut:]].reset_index(drop=True), c


def fit(spec: dict[str, Any], train: pd.DataFrame, c: Contract, out: Path) -> Path:
    """Fit the drawn model on raw columns and save it in its native format."""
    y = train[c.label.column]
    kind, params = spec["kind"], spec["params"]
    if kind == "lightgbm":
        import lightgbm as lgb

        clf = lgb.LGBMClassifier(verbose=-1, n_jobs=1, random_state=0, **params)
        path = out / "m.txt"
        clf.fit(_frame(train, c, True), y).booster_.save_model(str(path))
        return path
    if kind == "xgboost":
        import xgboost as xgb

        xclf = xgb.XGBClassifier(
            **params, tree_method="hist", enable_categorical=True, n_jobs=1, random_state=0
        ).fit(_frame(train, c, True), y)
        path = out / "m.json"
        xclf.get_booster().save_model(str(path))
        return path
    import skops.io as sio
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    X = _frame(train, c, False)
    strings = [k for k in X.columns if X[k].dtype == object or pd.api.types.is_string_dtype(X[k])]
    est: Any = RandomForestClassifier(n_jobs=1, random_state=0, **params)
    if strings:
        pre = make_column_transformer((OrdinalEncoder(), strings), remainder="passthrough")
        est = make_pipeline(pre, est)
    est.fit(X, y)
    path = out / "m.skops"
    sio.dump(est, path)
    return path


def cached_fit(
    spec: dict[str, Any], train: pd.DataFrame, c: Contract, out: Path, cache: Path | None
) -> tuple[Path, float]:
    """The fitted model file (from ``cache`` when it holds it: keyed by the draw, the
    training code and the training frame's hash, as ``model_backdoor.py --model-cache``) and
    the fit's seconds."""
    code = inspect.getsource(fit) + inspect.getsource(data_of) + inspect.getsource(_frame)
    return mb.cached_fit(
        cache, (sorted(spec.items()), code), lambda: fit(spec, train, c, out), train
    )


_LAST: list[Any] = []


def _capture(*args: Any, **kwargs: Any) -> Any:
    res = _probe(*args, **kwargs)
    _LAST[:] = [res]
    return res


_probe = probe_check.probe_backdoors
probe_check.probe_backdoors = _capture  # keep the probe's candidates for their p-values


def _min(values: list[float]) -> float:
    vals = [v for v in values if np.isfinite(v)]
    return min(vals) if vals else float("nan")


def families(res: Any) -> dict[str, float]:
    """Smallest p-value of each test family over the probe's candidates."""
    singles = [c for c in res.candidates if len(c.features) == 1]
    pairs = [c for c in res.candidates if len(c.features) == 2]
    return {
        # copies of common-decision rows (the rare side's categories) and copies of rows with
        # the rare decision's label (categories the random rows see moving decisions that way)
        "planted": _min([c.p_planted for c in singles if c.probe_rows == "tail"]),
        "planted_rare": _min([c.p_planted for c in singles if c.probe_rows != "tail"]),
        "routed": _min([c.p_routed for c in res.candidates]),
        "routed_null": _min([c.p_routed_null for c in res.candidates]),
        "partner": _min([c.p_planted for c in pairs]),
        "mass": _min([c.p_mass for c in res.candidates]),
        "label_lr": max([c.label_log_lr for c in res.candidates] or [float("nan")]),
        # the largest interaction of a pair of categories over the model's ordinary one
        # (confirmed at interaction_ratio with enough rows turned; nan: no pair to weigh)
        "interaction": float(getattr(res, "interaction_ratio", float("nan"))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=40, help="clean models to draw")
    ap.add_argument("--seed", type=int, default=78, help="seed of the draws")
    ap.add_argument("--start", type=int, default=0, help="first draw (resume a sweep)")
    ap.add_argument("--model-cache", type=Path, default=None)
    ap.add_argument(
        "--dataset",
        choices=["credit", "fraud", "both"],
        default="both",
        help="probe only the draws on this data set (the others are skipped, not fitted)",
    )
    ap.add_argument(
        "--kinds",
        default=None,
        help="probe only the draws of these model kinds, e.g. lightgbm,random_forest (a change "
        "that touches one family is checked on its draws; the draws keep their numbers)",
    )
    args = ap.parse_args()
    kinds = None if args.kinds is None else {k.strip() for k in args.kinds.split(",")}
    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    rows = []
    for i in range(args.start, args.start + args.models):
        spec = draw(i, args.seed)
        if (args.dataset != "both" and spec["dataset"] != args.dataset) or (
            kinds is not None and spec["kind"] not in kinds
        ):
            continue
        train, ref, c = data_of(spec)
        with tempfile.TemporaryDirectory() as tmp:
            path, fit_s = cached_fit(spec, train, c, Path(tmp), args.model_cache)
            model = load_audit_model(path, contract=c)
            t0 = time.perf_counter()
            result = audit_model(model, ref, checks=["backdoor"])
            probe_s = time.perf_counter() - t0
        findings = [f for f in result.report.findings if "backdoor" in f.check]
        fam = families(_LAST[0])
        said = [
            ", ".join(f"{f}={v!r}" for f, v in zip(fd.features, fd.values, strict=False))
            for fd in findings
        ]
        size = spec["n"] if spec["dataset"] == "fraud" else f"{spec['n']:.0%}"
        params = ",".join(f"{k}={v}" for k, v in spec["params"].items())
        rows.append({"i": i, **spec, "findings": len(findings), **fam})
        print(
            f"#{i:3} {spec['dataset']:6} n={size!s:6} k={spec['data_seed']:<6} "
            f"train {spec['train_share']:.1f} {spec['kind']:13} {params:48} "
            f"findings {len(findings)} "
            + " ".join(f"{k} {v:.2g}" for k, v in fam.items())
            + (f" NAMED {said}" if said else "")
            + f" ({fit_s:.0f}s fit, {probe_s:.0f}s probe)",
            flush=True,
        )
    table = pd.DataFrame(rows)
    alarmed = int((table["findings"] > 0).sum())
    print()
    print(
        f"clean models with >= 1 backdoor finding: {alarmed}/{len(table)} "
        f"({int(table['findings'].sum())} findings); smallest p per family: "
        + ", ".join(
            f"{k} {table[k].min():.2g}"
            for k in ("planted", "planted_rare", "routed_null", "partner")
        )
        + f"; whole run {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
