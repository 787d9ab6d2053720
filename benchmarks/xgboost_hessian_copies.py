"""The planted-copies estimate in hessian units on XGBoost (a measurement; not in the probe).

The probe's planted-copies test (``tabguard.model_audit._backdoor.planted_copies``) reads leaf
counts, so it runs on LightGBM and scikit-learn only. XGBoost stores covers: the sum over the
training rows in a node of p (1 - p) at the margin before the tree. That margin is a function
of the row alone (base margin plus the earlier trees' leaf values), so the expected cover of
every leaf under "clean rows plus a share ``eps_w`` of copies of source rows with category
``w`` written in" is computable exactly - each copy weighed by its own hessian:

    cover_tL / N - a_tL = sum_w eps_w (b_wtL - a_tL)

with ``N`` the training rows (the first tree's root cover over p (1 - p) at the base margin),
``a_tL`` the clean rows' mean of h 1{leaf L of tree t} and ``b_wtL`` the same over the source
rows with ``w`` written in. Fitted by non-negative least squares over the leaves of every tree
that splits on the feature (each leaf weighed by one over the standard deviation of its
hessian sum); the standard error is a bootstrap in which the training side's noise is a
resampling of the same rows in every tree (its leaves are correlated across trees), times the
square root of the fit's dispersion when above 1. The ratio and the test against the
feature's other categories are the probe's (``1 + eps_w / share``, 99th percentile, z).

``--ref`` chooses the reference rows: ``clean`` (the benchmark's clean 30 %, what the probe
has), ``train`` (the training part's own clean rows: the estimator without the held-out gap),
``fresh`` (``--fresh-rows`` new rows of the same generator). Models come from
``benchmarks/model_backdoor.py``'s cache (``--model-cache``; fitted when missing).

Run::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/xgboost_hessian_copies.py --seed 69614 \
        --only approve --model-cache /tmp/mb-models [--ref train|fresh] [--first-trees 20]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/xgboost_hessian_copies.py --clean \
        --model-cache /tmp/mb-models
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import nnls

import model_backdoor as mb
from tabguard.datasets import make_card_fraud
from tabguard.model_audit import load_audit_model
from tabguard.model_audit._trees import TreeEnsemble


def _hessians(ens: TreeEnsemble, X: np.ndarray, base: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row and tree: the leaf reached and p (1 - p) at the margin before the tree."""
    leaves = np.column_stack([t.route(X) for t in ens.trees])
    vals = np.column_stack([t.value[leaves[:, k]] for k, t in enumerate(ens.trees)])
    q = 1.0 / (1.0 + np.exp(-(base + np.cumsum(vals, axis=1) - vals)))
    return leaves, q * (1.0 - q)


def hessian_copies(
    ens: TreeEnsemble,
    X: np.ndarray,
    p: np.ndarray,
    j: int,
    n_codes: int,
    sources: list[np.ndarray],
    draws: int,
    rng: np.random.Generator,
    first_trees: int | None = None,
) -> dict[str, Any]:
    """``eps`` and ``se`` (shape ``(len(sources), n_codes)``, shares of training rows), the
    fit's dispersion, the training rows ``N`` and the trees used."""
    p = np.clip(p, 1e-12, 1 - 1e-12)
    leaves, H = _hessians(ens, X, 0.0)
    vals = np.column_stack([t.value[leaves[:, k]] for k, t in enumerate(ens.trees)])
    base = float(np.median(np.log(p / (1 - p)) - vals.sum(axis=1)))
    leaves, H = _hessians(ens, X, base)
    n_ref = len(X)
    h0 = 1.0 / (1.0 + math.exp(-base))
    N = float(ens.trees[0].count[0]) / (h0 * (1.0 - h0))
    trees = [k for k, t in enumerate(ens.trees) if bool(np.any(t.feature == j))]
    if first_trees is not None:
        trees = [k for k in trees if k < first_trees]
    leaf_ids = [ens.trees[k].leaves() for k in trees]
    copies = []
    for src in sources:
        per_code = []
        for w in range(n_codes):
            Xs = X[src].copy()
            Xs[:, j] = float(w)
            Ls, Hs = _hessians(ens, Xs, base)
            per_code.append((Ls[:, trees], Hs[:, trees]))
        copies.append(per_code)
    observed = [ens.trees[k].count[lf] / N for k, lf in zip(trees, leaf_ids, strict=True)]

    def mean_in_leaves(lv: np.ndarray, h: np.ndarray, wts: np.ndarray, k: int, lf: np.ndarray):
        n = len(ens.trees[k].feature)
        return np.bincount(lv, weights=h * wts, minlength=n)[lf] / max(float(wts.sum()), 1e-12)

    def fit(wc: np.ndarray, obs: list[np.ndarray], residual: bool = False):
        A_parts, b_parts = [], []
        for i, k in enumerate(trees):
            lf = leaf_ids[i]
            a = mean_in_leaves(leaves[:, k], H[:, k], wc, k, lf)
            v = mean_in_leaves(leaves[:, k], H[:, k] ** 2, wc, k, lf)
            v = v + 0.5 * float(np.mean(H[:, k] ** 2)) / n_ref  # half a pseudo-row
            scale = 1.0 / np.sqrt(v * (1.0 / N + 1.0 / n_ref))
            b_parts.append((obs[i] - a) * scale)
            cols = []
            for s_i, src in enumerate(sources):
                for w in range(n_codes):
                    lc, hc = copies[s_i][w]
                    d = mean_in_leaves(lc[:, i], hc[:, i], wc[src], k, lf)
                    cols.append((d - a) * scale)
            A_parts.append(np.column_stack(cols))
        A, b = np.vstack(A_parts), np.concatenate(b_parts)
        eps, rnorm = nnls(A, b, maxiter=50 * A.shape[1])
        dof = max(len(b) - int(np.sum(eps > 0)), 1)
        return eps, (float(rnorm**2 / dof) if residual else 1.0)

    eps, disp = fit(np.ones(n_ref), observed, residual=True)
    boots = []
    spread = math.sqrt(n_ref / N)  # the training rows' noise, from a resample of clean rows
    ones = np.ones(n_ref)
    for _ in range(draws):
        wc = rng.poisson(1.0, size=n_ref).astype(float)
        m = rng.poisson(1.0, size=n_ref).astype(float)
        obs = []
        for i, k in enumerate(trees):
            lf = leaf_ids[i]
            a = mean_in_leaves(leaves[:, k], H[:, k], ones, k, lf)
            am = mean_in_leaves(leaves[:, k], H[:, k], m, k, lf)
            obs.append(observed[i] + spread * (am - a))
        boots.append(fit(wc, obs)[0])
    se = np.std(boots, axis=0) * math.sqrt(max(disp, 1.0))
    shape = (len(sources), n_codes)
    return {
        "eps": eps.reshape(shape),
        "se": se.reshape(shape),
        "dispersion": disp,
        "N": N,
        "trees": len(trees),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=69614, help="seed of the drawn cases")
    ap.add_argument("--only", default=None, help="cases whose name contains this text")
    ap.add_argument("--clean", action="store_true", help="the clean models (plain and deep)")
    ap.add_argument("--ref", choices=["clean", "train", "fresh"], default="clean")
    ap.add_argument("--fresh-rows", type=int, default=14000)
    ap.add_argument("--first-trees", type=int, default=None, help="only trees before this one")
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--features", default="country,merchant_category")
    ap.add_argument("--model-cache", type=Path, default=None)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    mb.MODEL_CACHE = args.model_cache
    train, ref, c = mb.load("fraud")
    if args.ref == "train":
        ref = train
    elif args.ref == "fresh":
        ref = make_card_fraud(args.fresh_rows, random_state=5)
    y = (ref[c.label.column] == c.label.positive).to_numpy().astype(int)
    if args.clean:
        items = [(mb.Case("clean"), k) for k in ("xgboost", "xgboost_deep")]
    else:
        full = {ds: mb.full_data(ds) for ds in ("credit", "fraud")}
        drawn = [case for ds, case in mb.random_cases(6, args.seed, full) if ds == "fraud"]
        items = [(case, "xgboost") for case in drawn if args.only is None or args.only in case.name]
    for case, kind in items:
        data, _ = mb.case_data(train, c, case)
        key = mb.case_key("fraud", case)
        with tempfile.TemporaryDirectory() as tmp:
            path, _ = mb._fitted(kind, data, c, Path(tmp), key)
            model = load_audit_model(path, contract=c)
        assert model.trees is not None
        X = model.encode(ref)
        p = model.predict_matrix(X)
        rng = np.random.default_rng([0, 7])
        common = np.flatnonzero(model.approve(p))
        common = np.sort(rng.choice(common, size=min(2000, len(common)), replace=False))
        sources = [common, np.flatnonzero(y == 1)]  # as the probe: approved rows, fraud rows
        print(f"== {case.name} {case.trigger or ''} {kind} (reference: {args.ref}, {len(X)} rows)")
        for feat in args.features.split(","):
            j = model.feature_names.index(feat)
            cats = model.categories(feat) or []
            t0 = time.process_time()
            est = hessian_copies(
                model.trees, X, p, j, len(cats), sources, args.draws, rng, args.first_trees
            )
            col = X[:, j]
            share = np.array([(np.sum(col == w) + 1.0) / (len(X) + 1.0) for w in range(len(cats))])
            ratio = 1.0 + est["eps"][0] / share
            ratio_se = est["se"][0] / share
            populated = [w for w in range(len(cats)) if np.sum(col == w) >= 30]
            out = []
            for w in populated:
                others = [ratio[u] for u in populated if u != w]
                null = max(1.0, float(np.quantile(others, 0.99)))
                z = (ratio[w] - null) / ratio_se[w] if ratio_se[w] > 0 else float("nan")
                out.append(f"{cats[w]} {ratio[w]:.2f}±{ratio_se[w]:.2f} (z {z:+.1f})")
            print(
                f"  {feat}: {est['trees']} trees, dispersion {est['dispersion']:.2f}, "
                f"{time.process_time() - t0:.1f} CPU s"
            )
            print("   ", ", ".join(out))


if __name__ == "__main__":
    main()
