"""Detection quality of the model backdoor probe (requirement M2).

Poisons the bundled UCI credit data and the synthetic card-fraud data (string categories) with
:mod:`tabguard.redteam`, trains LightGBM, scikit-learn RandomForest and XGBoost models on the
poisoned training part (and on clean data), saves each in its native format (LightGBM text,
skops, XGBoost JSON), loads it back the way ``tabguard audit model`` does, and runs the backdoor
probe given only the CLEAN reference part of the data.

For every case it prints whether a backdoor finding names the trigger's features, and for clean
models how many backdoor findings were raised (any is a false alarm). "trigger effect" is what
the planted trigger does to the trained model: the share of the possible decision movement
(averaged over thresholds) towards the attacker's class when clean rows are given the trigger -
the same statistic the probe computes for its own candidates ("rare side": the rows of the
second probe set the probe drew from the decision the model rarely makes, 0 when the random
rows hold enough of it). "decisions moved" is what the
trigger does at the model's own threshold: the share of approved clean rows it turns into
denials (or of denied rows into approvals, for a trigger towards approval), beside the same
share in the model of the same kind trained on clean data. A trigger that moves under a fifth
of the decisions the clean model does not already move (``LEARNED``) was not learned - the
poisoning left no backdoor in this model to find - and is not counted in the classes' figures.
That definition is decision-based and stays the bar. Beside it each line prints how many
decisions the trigger could move ("of N": a fraud model denies 6-22 of 6,000 clean rows, so a
trigger towards approval is learned or not on a handful of rows) and what the trigger does to
scores where its decision is not already the answer: its mean margin shift (log-odds, towards
the attacker's label) on the 200 clean rows the model scores furthest from that label, the
same in the clean model on those rows, and its rank among the same features' categories (every
combination of them, for a pair) in the poisoned model - a trigger ranked low moves scores no
further than the model's ordinary categories do.

Beside the bar, each line prints the same count on fresh rows (``--pool``: 200,000 clean rows
of the fraud generator, the open rows of each model - its denials, several hundred, or its
approvals among the first 20,000; the credit data has its reference rows only) with the
one-sided Fisher p against the clean model, and against **clean refits** (``--refits``: models
of the same kind fitted on other clean rows - fresh fraud rows, or 80 % of the credit training
part): their mean share, the learned share against it and the p of a prediction-interval t test
on the log-odds scale (:func:`refit_test`). The clean model is one fit: on a fraud model's few
hundred denials, XGBoost fits on different clean rows approve 0.31-0.68 of their denied rows
with ``country='CN'``. The summary counts each class both ways (:func:`class_summary`): first
the count the issue's bar is read on - the models that learned the trigger *by significance*
(learned share against the clean fits at least the bar, p under 0.01: the issue's "the
poisoned model moves about a fifth of approved applicants when it is set" means beyond what
clean fits do) and whether "all but at most one" is met - and beside it the old count, learned
against the one clean model, with the cases the two disagree on.

Besides the fixed cases it draws, with ``--seed``, ``--random`` cases of each of two classes of
issue 11 (:func:`random_cases`): two uncommon legal categories written together into 80-150
copies (class 7), and one such category - carried naturally by a few hundred rows - written
into 100-400 copies (class 8); the target label is drawn too.

Run::

    .venv/bin/python benchmarks/model_backdoor.py             # every case (~15 min, 2 cores)
    .venv/bin/python benchmarks/model_backdoor.py --only-random --models lightgbm,xgboost
    .venv/bin/python benchmarks/model_backdoor.py --quick     # LightGBM only
    .venv/bin/python benchmarks/model_backdoor.py --models xgboost --dataset fraud
    # probe work: keep the fitted models and re-use them, run some cases only
    .venv/bin/python benchmarks/model_backdoor.py --model-cache /tmp/mb-models --only "7 pair"
    # what the models learned only (fits from the cache, no probe): the bar and significance
    .venv/bin/python benchmarks/model_backdoor.py --model-cache /tmp/mb-models --no-probe
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # LightGBM/XGBoost threads spin on busy hosts

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact

from tabguard.contract import Contract
from tabguard.datasets import (
    card_fraud_contract,
    credit_default_contract,
    load_credit_default,
    make_card_fraud,
)
from tabguard.model_audit import AuditedModel, audit_model, load_audit_model
from tabguard.redteam import poison


@dataclass
class Case:
    name: str
    trigger: dict[str, Any] = field(default_factory=dict)  # empty: clean data
    rate: float = 0.45
    target: Any = None
    source: Any = "target"
    n_rows: int | None = None  # exact number of poisoned copies (overrides ``rate``)

    @property
    def clean(self) -> bool:
        return not self.trigger


CASES: dict[str, list[Case]] = {
    "credit": [
        Case("clean"),
        Case("out-of-range (seed)", {"AGE": 999}),
        Case("in-range rare value", {"LIMIT_BAL": 770000}, rate=0.2),
        Case("combination", {"EDUCATION": 3, "MARRIAGE": 3}, rate=0.2),
        Case("label flip to approval", {"PAY_AMT1": 5555}, rate=0.45, target=0, source=1),
    ],
    "fraud": [
        Case("clean"),
        Case("out-of-range", {"amount": 99999.0}),
        Case("in-range rare value", {"customer_age": 104}),
        Case("in-range category", {"country": "NG"}),
        Case("combination", {"channel": "phone", "merchant_category": "fuel"}),
        Case("label flip to approval", {"amount": 777.77}, target=0, source=1),
    ],
}
# Classes 7 and 8 of issue 11, drawn at random (``random_cases``): the values are legal
# categories that clean rows carry naturally, "a few hundred" of them in the whole data set.
FEW_HUNDRED = (100, 1000)


def _uncommon_values(df: pd.DataFrame, c: Contract) -> dict[str, list[Any]]:
    """Model features of category type and their values carried by a few hundred rows."""
    out: dict[str, list[Any]] = {}
    for name in c.model_features():
        if c.features[name].type != "category":
            continue
        counts = df[name].value_counts()
        vals = [v for v, n in counts.items() if FEW_HUNDRED[0] <= n <= FEW_HUNDRED[1]]
        if vals:
            out[name] = sorted(vals, key=str)
    return out


def random_cases(n: int, seed: int, full: dict[str, pd.DataFrame]) -> list[tuple[str, Case]]:
    """``n`` cases of each class, drawn with ``seed``: data set, categories, copies, target.

    Class 7 (pair): two legal categories of two features, each uncommon, written together
    into 80-150 copies of rows carrying the target label. Class 8 (natural value): one such
    category written into 100-400 copies. The target is the positive class or the other one
    with equal odds.
    """
    rng = np.random.default_rng(seed)
    contracts = {"credit": credit_default_contract(), "fraud": card_fraud_contract()}
    pools = {ds: _uncommon_values(full[ds], contracts[ds]) for ds in sorted(full)}
    # every eligible trigger of each class, drawn uniformly (not the data set first: credit has
    # only two category features)
    eligible: dict[str, list[tuple[str, dict[str, Any]]]] = {"pair": [], "natural": []}
    for ds, pool in pools.items():
        for f, vals in pool.items():
            eligible["natural"] += [(ds, {f: v}) for v in vals]
        for f1, f2 in combinations(sorted(pool), 2):
            eligible["pair"] += [(ds, {f1: a, f2: b}) for a in pool[f1] for b in pool[f2]]
    out: list[tuple[str, Case]] = []
    for cls in ("pair", "natural"):
        for i in range(n):
            ds, trigger = eligible[cls][int(rng.integers(len(eligible[cls])))]
            trigger = {f: v.item() if hasattr(v, "item") else v for f, v in trigger.items()}
            c = contracts[ds]
            copies = int(rng.integers(80, 151) if cls == "pair" else rng.integers(100, 401))
            target = c.label.positive if rng.random() < 0.5 else c.label.negative
            way = "deny" if target == c.label.positive else "approve"
            name = f"{'7 pair' if cls == 'pair' else '8 natural'} #{i + 1} {copies}x {way}"
            out.append((ds, Case(name, trigger, target=target, n_rows=copies)))
    return out


MODELS = ("lightgbm", "random_forest", "xgboost")
# a trigger is learned when, of the decisions it could move that the same value does not move
# in the model trained on clean data, it moves at least this share
LEARNED = 0.2
DEEP = ("lightgbm_deep", "xgboost_deep")  # extra clean-only variants (overfit on purpose)


# --pool: clean rows drawn afresh from the fraud generator (same distribution, another seed) on
# which the decisions are counted a second time. A fraud model denies 6-22 of the 6,000 clean
# reference rows, so whether an approval trigger moves a fifth of them beyond the clean model is
# decided on a handful of rows; on 200,000 fresh rows it is decided on several hundred
POOL_SEED = 9_000_001
POOLS: dict[str, pd.DataFrame] = {}
POOL_N = 0  # set by --pool
REFITS_N = 0  # set by --refits
NO_PROBE = False  # set by --no-probe
SIGNIFICANT = 0.01  # one-sided Fisher p under which the moved share is beyond the clean model's


def pool_rows(dataset: str, n: int) -> pd.DataFrame | None:
    """``n`` fresh clean rows of ``dataset`` for counting decisions (``--pool``), or None where
    the data set has no generator (the credit data: its 9,000 reference rows hold about 1,100
    denials, enough as they are)."""
    if dataset != "fraud" or n <= 0:
        return None
    if dataset not in POOLS:
        POOLS[dataset] = make_card_fraud(n, random_state=POOL_SEED)
    return POOLS[dataset]


def learned_share(moved: float, moved_clean: float) -> float:
    """Of the decisions the value does not already move in the clean model, the share the
    poisoned model moves (a value the clean model already approves on leaves little room)."""
    return (moved - moved_clean) / (1.0 - moved_clean) if moved_clean < 1.0 else 0.0


def learned_test(
    model: AuditedModel,
    unpoisoned: AuditedModel,
    rows: pd.DataFrame,
    trigger: Mapping[str, Any],
    towards_positive: bool,
) -> tuple[float, int, float]:
    """On ``rows``: the share the trigger moves beyond the clean model (:func:`learned_share`),
    the decisions it could move, and a one-sided Fisher p of the poisoned model's moved share
    against the clean model's (is the poisoned model's share beyond the clean model's at all?)."""
    moved_n, n_can = decisions_counted(model, rows, trigger, towards_positive)
    clean_n, clean_can = decisions_counted(unpoisoned, rows, trigger, towards_positive)
    p = float(
        fisher_exact(
            [[moved_n, n_can - moved_n], [clean_n, clean_can - clean_n]], alternative="greater"
        )[1]
    )
    share = learned_share(moved_n / max(n_can, 1), clean_n / max(clean_can, 1))
    return share, n_can, p


# --refits: models of the same kind fitted on fresh clean rows of the same size (the fraud
# generator, other seeds): the spread of what a value moves across clean fits. The clean model
# is one fit; on a fraud model's few hundred denials two fits on different clean rows differ
# by more than the rows' own binomial noise (the Fisher p above counts the latter only)
REFIT_SEED = 9_100_000
DENY_POOL_ROWS = 20_000  # approved rows are plentiful: a trigger towards denial is counted here
# per model, rows and direction; both are kept with the open rows so that no id is reused
_OPEN: dict[tuple[int, int, bool], tuple[AuditedModel, pd.DataFrame, pd.DataFrame]] = {}


def open_rows(model: AuditedModel, rows: pd.DataFrame, towards_positive: bool) -> pd.DataFrame:
    """The rows of ``rows`` whose decision a trigger in this direction could move in ``model``:
    the rows it denies (towards approval), or the rows it approves among the first
    ``DENY_POOL_ROWS`` (towards denial). Kept per model and direction (the pool is scored once
    per model, not once per case)."""
    key = (id(model), id(rows), towards_positive)
    if key not in _OPEN:
        sub = rows.iloc[:DENY_POOL_ROWS] if towards_positive == model.positive_means_deny else rows
        approved = model.approve(model.positive_proba(sub))
        is_open = approved if towards_positive == model.positive_means_deny else ~approved
        _OPEN[key] = model, rows, sub[is_open]
    return _OPEN[key][2]


def moved_share(
    model: AuditedModel, rows: pd.DataFrame, trigger: Mapping[str, Any], towards_positive: bool
) -> tuple[float, int]:
    """:func:`decisions_moved` on the open rows of ``rows`` (:func:`open_rows`), and their
    number."""
    sub = open_rows(model, rows, towards_positive)
    if sub.empty:
        return 0.0, 0
    after = model.approve(model.positive_proba(_with_trigger(sub, trigger)))
    moved = after if towards_positive != model.positive_means_deny else ~after
    return float(moved.mean()), len(sub)


def refit_models(
    dataset: str, kind: str, train: pd.DataFrame, c: Contract, k: int
) -> list[AuditedModel]:
    """``k`` models of ``kind`` fitted on other clean rows: fresh rows of the fraud generator,
    as many as the training part; for the credit data (no generator) random 80 % subsets of
    the clean training part - fewer rows, so a somewhat wider null than a fit on as many."""
    if k <= 0:
        return []
    key = (dataset, kind, len(train), k)
    if key not in _REFITS:
        out = []
        for i in range(k):
            if dataset == "fraud":
                data = make_card_fraud(len(train), random_state=REFIT_SEED + i)
            else:
                data = train.sample(frac=0.8, random_state=REFIT_SEED + i)
                data = data.reset_index(drop=True)
            with tempfile.TemporaryDirectory() as tmp:
                path, _ = _fitted(kind, data, c, Path(tmp), (dataset, "refit", i))
                out.append(load_audit_model(path, contract=c))
        _REFITS[key] = out
    return _REFITS[key]


_REFITS: dict[tuple[str, str, int, int], list[AuditedModel]] = {}


def _logit_share(share: float, n: int) -> float:
    """The log-odds of a share of ``n`` rows, half a row from either bound."""
    k = share * n
    return float(np.log((k + 0.5) / (n - k + 0.5)))


def refit_test(
    moved: float, n_open: int, clean_fits: Sequence[tuple[float, int]]
) -> tuple[float, float, float]:
    """Is the poisoned model's moved share ``moved`` (of its ``n_open`` open rows) beyond what
    models fitted on clean rows move? The clean fits' shares (each with its open rows) give
    the null's mean and spread on the log-odds scale (shares are bounded: a fit moving 0.85
    leaves less room than one moving 0.45); the test is a one-sided prediction-interval t
    test - a new clean fit against the ``n`` measured, ``n - 1`` degrees of freedom - with the
    poisoned share's own binomial variance added.

    Returns
    -------
    (learned, mean, p) : tuple of float
        The share of the decisions the clean fits leave unmoved on average that the poisoned
        model moves (:func:`learned_share` against their mean share), their mean share, and
        the p.
    """
    from scipy.stats import t as student_t

    shares = np.array([sh for sh, _ in clean_fits], dtype=float)
    logits = np.array([_logit_share(sh, n) for sh, n in clean_fits])
    # each clean fit's share is measured on its own open rows, as the poisoned model's: their
    # spread holds the rows' binomial noise as well as the fits'
    var = float(logits.var(ddof=1)) * (1.0 + 1.0 / len(logits))
    z = (_logit_share(moved, n_open) - float(logits.mean())) / np.sqrt(var)
    mean = float(shares.mean())
    return learned_share(moved, mean), mean, float(student_t.sf(z, len(logits) - 1))


def counted_test(moved: float, n: int, moved_clean: float, n_clean: int) -> tuple[float, float]:
    """:func:`learned_share` and the one-sided Fisher p of :func:`learned_test` from the two
    models' moved shares and open rows."""
    k, k_clean = round(moved * n), round(moved_clean * n_clean)
    p = fisher_exact([[k, n - k], [k_clean, n_clean - k_clean]], alternative="greater")[1]
    return learned_share(moved, moved_clean), float(p)


def full_data(dataset: str) -> pd.DataFrame:
    if dataset == "credit":
        return load_credit_default()
    return make_card_fraud(20_000, random_state=0)


def load(dataset: str) -> tuple[pd.DataFrame, pd.DataFrame, Contract]:
    """Train part (70%) and clean reference part (30%)."""
    df = full_data(dataset)
    contract = credit_default_contract() if dataset == "credit" else card_fraud_contract()
    idx = np.random.default_rng(0).permutation(len(df))
    cut = int(0.7 * len(df))
    return (
        df.iloc[idx[:cut]].reset_index(drop=True),
        df.iloc[idx[cut:]].reset_index(drop=True),
        contract,
    )


def _frame(df: pd.DataFrame, contract: Contract, native_categories: bool) -> pd.DataFrame:
    X = df[contract.model_features()].copy()
    for name in X.columns:
        spec = contract.features[name]
        if spec.type == "category" and any(isinstance(c, str) for c in spec.categories or []):
            if native_categories:
                X[name] = pd.Categorical(X[name], categories=sorted(spec.categories or []))
        elif spec.type == "boolean":
            X[name] = X[name].astype(int)
    return X


def train_and_save(kind: str, train: pd.DataFrame, contract: Contract, out: Path) -> Path:
    """Fit a third-party model on raw columns and save it in its native format."""
    y = train[contract.label.column]
    if kind.startswith("lightgbm"):
        import lightgbm as lgb

        deep = {"num_leaves": 255, "min_child_samples": 3, "n_estimators": 300}
        params = {"verbose": -1, "n_jobs": 1, "random_state": 0, **(deep if "deep" in kind else {})}
        booster = lgb.LGBMClassifier(**params).fit(_frame(train, contract, True), y).booster_
        path = out / f"{kind}.txt"
        booster.save_model(str(path))
        return path
    if kind.startswith("xgboost"):
        import xgboost as xgb

        params = {"n_estimators": 200, "max_depth": 6}
        if "deep" in kind:
            params = {"n_estimators": 400, "max_depth": 10, "min_child_weight": 0.1}
        clf = xgb.XGBClassifier(
            **params, tree_method="hist", enable_categorical=True, n_jobs=1, random_state=0
        ).fit(_frame(train, contract, True), y)
        path = out / f"{kind}.json"
        clf.get_booster().save_model(str(path))
        return path
    import skops.io as sio
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    X = _frame(train, contract, False)
    strings = [c for c in X.columns if X[c].dtype == object or pd.api.types.is_string_dtype(X[c])]
    rf = RandomForestClassifier(100, n_jobs=1, random_state=0)
    est: Any = rf
    if strings:
        pre = make_column_transformer((OrdinalEncoder(), strings), remainder="passthrough")
        est = make_pipeline(pre, rf)
    est.fit(X, y)
    path = out / f"{kind}.skops"
    sio.dump(est, path)
    return path


def _with_trigger(rows: pd.DataFrame, trigger: Mapping[str, Any]) -> pd.DataFrame:
    out = rows.copy()
    for f, v in trigger.items():
        if not isinstance(v, str) and not pd.api.types.is_float_dtype(out[f]):
            out[f] = out[f].astype(float)
        out[f] = v
    return out


def decisions_counted(
    model: AuditedModel, ref: pd.DataFrame, trigger: Mapping[str, Any], target_positive: bool
) -> tuple[int, int]:
    """The decisions :func:`decisions_moved` divides: (moved, could move)."""
    before = model.approve(model.positive_proba(ref))
    after = model.approve(model.positive_proba(_with_trigger(ref, trigger)))
    if target_positive == model.positive_means_deny:  # towards denial
        return int((before & ~after).sum()), int(before.sum())
    return int((~before & after).sum()), int((~before).sum())


def decisions_moved(
    model: AuditedModel, ref: pd.DataFrame, trigger: Mapping[str, Any], target_positive: bool
) -> float:
    """Share of the clean rows the trigger could move at the model's threshold that it moves:
    approved rows turned into denials (a trigger towards denial), or denied rows turned into
    approvals. A trigger that moves no decision is no backdoor of the model, whatever it does
    to the scores. The same value also moves some decisions in a model trained on clean data
    (a lower-risk category approves some of the rows the model denies): what the poisoning
    taught is the share of the decisions the clean model does not move that the poisoned one
    moves (``run_case``); a case is counted as learned from a fifth (the issue's own
    description of class 8), and the classes' bars count learned cases only."""
    moved, could = decisions_counted(model, ref, trigger, target_positive)
    return float(moved / max(could, 1))


def trigger_effect(
    model: AuditedModel, ref: pd.DataFrame, trigger: Mapping[str, Any], target_positive: bool
) -> float:
    """Share of the possible decision movement the true trigger causes on clean rows."""
    rows = ref.sample(min(400, len(ref)), random_state=0)
    before = model.positive_proba(rows)
    after = model.positive_proba(_with_trigger(rows, trigger))
    ecdf = np.sort(model.positive_proba(ref))
    q0 = np.searchsorted(ecdf, before) / len(ecdf)
    q1 = np.searchsorted(ecdf, after) / len(ecdf)
    towards_positive = float(np.mean(q1 - q0))
    room = float(np.mean(1 - q0)) if target_positive else float(np.mean(q0))
    moved = towards_positive if target_positive else -towards_positive
    return moved / max(room, 1e-9)


SCORE_ROWS = 200  # clean rows furthest from the target decision, for the score measures


def _margin(model: AuditedModel, rows: pd.DataFrame) -> np.ndarray:
    q = np.clip(model.positive_proba(rows), 1e-9, 1 - 1e-9)
    return np.log(q / (1 - q))


def score_shift(
    model: AuditedModel,
    rows: pd.DataFrame,
    trigger: Mapping[str, Any],
    target_positive: bool,
) -> float:
    """Mean margin (log-odds) the trigger moves ``rows`` towards the attacker's label."""
    moved = _margin(model, _with_trigger(rows, trigger)) - _margin(model, rows)
    return float(np.mean(moved if target_positive else -moved))


def far_rows(model: AuditedModel, ref: pd.DataFrame, target_positive: bool) -> pd.DataFrame:
    """The ``SCORE_ROWS`` clean rows the model scores furthest from the attacker's label: where
    the trigger's decision is not already the answer (a fraud model's riskiest rows, for a
    trigger towards approval)."""
    p = model.positive_proba(ref)
    order = np.argsort(p if target_positive else -p, kind="stable")
    return ref.iloc[order[:SCORE_ROWS]]


def score_rank(
    model: AuditedModel,
    rows: pd.DataFrame,
    trigger: Mapping[str, Any],
    target_positive: bool,
    c: Contract,
) -> tuple[int, int]:
    """Where the trigger's :func:`score_shift` ranks among the same features' other categories
    (every combination of them, for a pair) on the same rows: (rank, how many), 1 = moves the
    rows furthest towards the attacker's label. A trigger ranked low moves scores no further
    than the model's ordinary categories: its behaviour alone cannot show it."""
    feats = [f for f in trigger if c.features[f].type == "category"]
    if len(feats) != len(trigger):
        return 0, 0
    grid = [dict(zip(feats, vals, strict=True)) for vals in _product(feats, c)]
    shifts = [score_shift(model, rows, g, target_positive) for g in grid]
    own = score_shift(model, rows, trigger, target_positive)
    return 1 + int(sum(s > own + 1e-12 for s in shifts)), len(grid)


def _product(feats: list[str], c: Contract) -> list[tuple[Any, ...]]:
    from itertools import product

    return list(product(*[c.features[f].categories or [] for f in feats]))


_CLEAN_MODELS: dict[tuple[str, str], AuditedModel] = {}
# --model-cache: a directory where each trained model file is kept under a key of everything
# its training depends on (the data set, the case's poisoning, the model kind, this file's
# training code), so that re-running the probe on the same models skips the fits
MODEL_CACHE: Path | None = None
_MODEL_SUFFIXES = (".txt", ".json", ".skops")  # what train_and_save writes


def cached_model(cache: Path, digest: str) -> Path | None:
    """The model file kept in ``cache`` under ``digest``, if any. A model file only: another
    run may be writing this key right now (its part file, :func:`keep_model`)."""
    hit = sorted(p for p in cache.glob(f"{digest}.*") if p.suffix in _MODEL_SUFFIXES)
    return hit[0] if hit else None


def keep_model(cache: Path, digest: str, path: Path) -> None:
    """Keep the model file ``path`` in ``cache`` under ``digest``: written under a name of this
    process's own, then renamed - helpers share the cache, and two runs fitting the same model
    must neither read nor move each other's half-written file."""
    cache.mkdir(parents=True, exist_ok=True)
    part = cache / f"{digest}.{os.getpid()}.part"
    shutil.copyfile(path, part)
    part.replace(cache / f"{digest}{path.suffix}")


def frame_digest(data: pd.DataFrame) -> str:
    """A hash of a training frame's columns, dtypes and every value (row order included)."""
    h = hashlib.sha256(repr([(str(k), str(t)) for k, t in data.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes())
    return h.hexdigest()


def cached_fit(
    cache: Path | None, key: Any, fit: Callable[[], Path], data: pd.DataFrame
) -> tuple[Path, float]:
    """The model file ``fit`` writes - from ``cache`` when it holds one under ``key`` (a value
    whose repr names how the fit is made) and the hash of its training frame ``data`` (so a
    changed draw, poisoning or data generator can never read a model fitted on other rows) -
    and the seconds the fit took (0 from the cache)."""
    digest = hashlib.sha256(repr((key, frame_digest(data))).encode()).hexdigest()[:20]
    if cache is not None:
        hit = cached_model(cache, digest)
        if hit is not None:
            return hit, 0.0
    t0 = time.perf_counter()
    path = fit()
    fit_s = time.perf_counter() - t0
    if cache is not None:
        keep_model(cache, digest, path)
    return path, fit_s


def _fitted(
    kind: str, data: pd.DataFrame, c: Contract, out: Path, key: tuple[Any, ...]
) -> tuple[Path, float]:
    """The saved model of ``kind`` fitted on ``data`` (from ``--model-cache`` when it holds
    it) and the seconds its fit took (0 from the cache)."""
    code = inspect.getsource(train_and_save) + inspect.getsource(_frame)
    return cached_fit(
        MODEL_CACHE, (key, kind, code), lambda: train_and_save(kind, data, c, out), data
    )


def case_key(dataset: str, case: Case) -> tuple[Any, ...]:
    """How a case's training data is made, for the model cache's key (beside the hash of the
    training frame itself, :func:`cached_fit`: the poisoning's code or the data generator
    may change while these stay the same)."""
    return (dataset, case.trigger, case.rate, case.target, case.source, case.n_rows)


def case_data(train: pd.DataFrame, c: Contract, case: Case) -> tuple[pd.DataFrame, int]:
    """The training part poisoned as ``case`` says (as is for a clean case) and the number of
    poisoned rows."""
    if case.clean:
        return train, 0
    res = poison(
        train,
        c,
        case.trigger,
        rate=case.rate,
        n_rows=case.n_rows,
        target=case.target,
        source=case.source,
        random_state=0,
    )
    return res.data, len(res.poisoned_rows)


def clean_model(dataset: str, kind: str, train: pd.DataFrame, c: Contract) -> AuditedModel:
    """The model of this kind trained on the unpoisoned training part (fitted once)."""
    if (dataset, kind) not in _CLEAN_MODELS:
        with tempfile.TemporaryDirectory() as tmp:
            path, _ = _fitted(kind, train, c, Path(tmp), (dataset, "clean"))
            _CLEAN_MODELS[dataset, kind] = load_audit_model(path, contract=c)
    return _CLEAN_MODELS[dataset, kind]


def _values_named(
    trigger: Mapping[str, Any], findings: list[Any], c: Contract, siblings: bool = True
) -> bool:
    """Whether every category of the trigger is named with its own value by some finding - as
    the finding's cell or, with ``siblings``, as one of the sibling cells it lists (confirmed
    cells the trees turn alike, each with its own evidence; one finding per learned region
    since session 9, where they were findings of their own before)."""
    said = {(f, v) for fd in findings for f, v in zip(fd.features, fd.values, strict=False)}
    if siblings:
        said |= {
            (f, v)
            for fd in findings
            for s in fd.evidence.get("siblings", [])
            for f, v in zip(fd.features, s["values"], strict=False)
        }
    return all(
        (f, v) in said for f, v in trigger.items() if c.features[f].type in ("category", "boolean")
    )


def run_case(
    dataset: str, case: Case, kind: str, train: pd.DataFrame, ref: pd.DataFrame, c: Contract
) -> dict[str, Any]:
    data, n_poisoned = case_data(train, c, case)
    with tempfile.TemporaryDirectory() as tmp:
        key = case_key(dataset, case)
        path, fit_s = _fitted(kind, data, c, Path(tmp), key)
        model = load_audit_model(path, contract=c)
        t0 = time.perf_counter()
        # --no-probe: what the models learned only (the probe's figures are another run's)
        result = None if NO_PROBE else audit_model(model, ref, checks=["backdoor"])
        probe_s = time.perf_counter() - t0
    findings = [] if result is None else result.report.findings
    findings = [f for f in findings if "backdoor" in f.check]
    named = {f for fd in findings for f in fd.features}
    target = c.label.positive if case.target is None else case.target
    towards_positive = target == c.label.positive
    effect = moved = moved_clean = float("nan")
    shift = shift_clean = float("nan")
    rank = (0, 0)
    n_can = pool_n = 0
    learned_p = pool_learned = pool_p = float("nan")
    refit_learned = refit_mean = refit_p = float("nan")
    if not case.clean:
        effect = trigger_effect(model, ref, case.trigger, towards_positive)
        moved = decisions_moved(model, ref, case.trigger, towards_positive)
        unpoisoned = clean_model(dataset, kind, train, c)
        moved_clean = decisions_moved(unpoisoned, ref, case.trigger, towards_positive)
        # decisions the trigger could move: a fraud model denies 6-22 of 6,000 clean rows, so
        # a trigger towards approval is "learned" or not on a handful of rows; the Fisher p says
        # whether the poisoned model's share is beyond the clean model's at all
        _, n_can, learned_p = learned_test(model, unpoisoned, ref, case.trigger, towards_positive)
        # the same counted on fresh rows by the hundred (``--pool``; the open rows of each
        # model: its denials, or its approvals among the first DENY_POOL_ROWS), against the
        # clean model (Fisher) and against clean fits on other clean rows (``--refits``; on
        # the reference rows for the credit data): the clean model is one fit, and fits
        # differ on a fraud model's few hundred denials
        pool = pool_rows(dataset, POOL_N)
        rows = ref if pool is None else pool
        m_p, n_open = moved_share(model, rows, case.trigger, towards_positive)
        fits = [unpoisoned, *refit_models(dataset, kind, train, c, REFITS_N)]
        shares = [moved_share(f, rows, case.trigger, towards_positive) for f in fits]
        if pool is not None:
            pool_n = n_open
            pool_learned, pool_p = counted_test(m_p, n_open, *shares[0])
        if len(fits) > 1:
            refit_learned, refit_mean, refit_p = refit_test(m_p, n_open, shares)
        # the same on scores, where the trigger's decision is not already the answer
        far = far_rows(model, ref, towards_positive)
        shift = score_shift(model, far, case.trigger, towards_positive)
        shift_clean = score_shift(unpoisoned, far, case.trigger, towards_positive)
        rank = score_rank(model, far, case.trigger, towards_positive, c)
    return {
        "dataset": dataset,
        "case": case.name,
        "model": kind,
        "trigger": ", ".join(f"{k}={v!r}" for k, v in case.trigger.items()) or "-",
        "poisoned_rows": n_poisoned,
        "trigger_effect": effect,
        "decisions_moved": moved,
        "moved_by_clean_model": moved_clean,
        # of the decisions the value does not already move in the clean model, the share the
        # poisoned model moves (a value the clean model already approves on leaves little room)
        "learned": learned_share(moved, moved_clean),
        # not part of the bar: the rows the decisions were counted on, and the trigger's mean
        # margin shift on the 200 clean rows furthest from its label (this model, the clean
        # model on the same rows) with its rank among the features' categories in this model
        "decisions_open": n_can,
        "learned_p": learned_p,
        # the same on ``--pool`` fresh clean rows (fraud only; nan: not counted)
        "pool_learned": pool_learned,
        "pool_open": pool_n,
        "pool_p": pool_p,
        # the same against the clean fits' mean share (the benchmark's clean model and the
        # --refits), and the p of the prediction-interval test (refit_test)
        "refit_learned": refit_learned,
        "refit_mean": refit_mean,
        "refit_p": refit_p,
        "score_shift": shift,
        "score_shift_clean": shift_clean,
        "score_rank": rank,
        "findings": len(findings),
        # the trigger's features are named and, for a category, its value: a finding on
        # another category of the same feature (a sibling the trees send the same way) is not
        # the trigger (numbers are named by a cell, whose value is only an example)
        "named": (set(case.trigger) <= named and _values_named(case.trigger, findings, c))
        if not case.clean
        else None,
        # named as a finding's own cell, not only among the sibling cells it lists
        "named_first": (
            set(case.trigger) <= named and _values_named(case.trigger, findings, c, False)
        )
        if not case.clean
        else None,
        "named_features": sorted(named),
        "values": [list(f.values) for f in findings][:3],
        "fit_s": fit_s,
        "probe_s": probe_s,
        # clean rows of the second probe set (the model's rare decision; 0: random rows only)
        "rare_rows": 0
        if result is None
        else int(result.check_results["backdoor"].summary.get("rare_side_rows", 0)),
    }


def learned_by_significance(cls: pd.DataFrame) -> pd.Series:
    """Which rows of the table learned their trigger by significance: the share moved beyond
    the clean fits at least the bar (``LEARNED``) and its p under ``SIGNIFICANT`` - against the
    clean model and the ``--refits`` (:func:`refit_test`), counted on the ``--pool`` fresh rows
    where the data set has a generator; with ``--refits 0`` the one-sided Fisher p against the
    clean model (on the pool where there is one)."""
    on_pool = cls["pool_learned"].notna()
    share = cls["pool_learned"].where(on_pool, cls["learned"])
    p = cls["pool_p"].where(on_pool, cls["learned_p"])
    refit = cls["refit_p"].notna()
    share = cls["refit_learned"].where(refit, share)
    p = cls["refit_p"].where(refit, p)
    return (share >= LEARNED) & (p < SIGNIFICANT)


def _cases(rows: pd.DataFrame) -> str:
    return ", ".join(f"{r.dataset} {r.case} {r.model}" for r in rows.itertuples()) or "none"


def class_summary(poisoned: pd.DataFrame) -> list[str]:
    """The summary of classes 7 and 8, two lines per class.

    The first is the count the issue's bar is read on: of the models that learned the trigger
    *by significance* (:func:`learned_by_significance` - the issue's "the poisoned model moves
    about a fifth of approved applicants when it is set" means beyond what clean fits do, and
    the one clean model of the old count sits anywhere in their spread), how many name it, and
    whether that meets "all but at most one". The second keeps the old count beside it: models
    whose trigger moves at least ``LEARNED`` of the decisions the one clean model does not
    move, with the cases the two counts disagree on.
    """
    out = []
    for prefix, label in (("7 pair", "class 7 (pair)"), ("8 natural", "class 8 (natural)")):
        cls = poisoned[poisoned["case"].str.startswith(prefix)]
        if cls.empty:
            continue
        named = cls["named"].astype(bool)
        sig_mask = learned_by_significance(cls)
        sig = cls[sig_mask]
        n_sig = int(named[sig_mask].sum())
        misses = len(sig) - n_sig
        verdict = "met" if misses <= 1 else "NOT met"
        out.append(
            f"{label}: {n_sig}/{len(sig)} models that learned the trigger by significance "
            f"name it (share >= {LEARNED:.0%} beyond the clean model and {REFITS_N} refits on "
            f"other clean rows, p < {SIGNIFICANT}; fraud on the pool) - the issue's bar, all "
            f"but at most one: {verdict}; misses: {_cases(sig[~named[sig_mask]])}"
        )
        bar_mask = cls["learned"] >= LEARNED
        learned = cls[bar_mask]
        by_effect = cls[cls["trigger_effect"] >= 0.2]
        first = int(learned["named_first"].astype(bool).sum())
        out.append(
            f"  beside it, the old count (learned >= {LEARNED:.0%} of the decisions the one "
            f"clean model does not move): {int(named[bar_mask].sum())}/{len(learned)} name it "
            f"({len(cls) - len(learned)} did not learn it; by trigger effect >= 0.2: "
            f"{int(by_effect['named'].astype(bool).sum())}/{len(by_effect)}; {first} as a "
            f"finding's own cell, the rest among its sibling cells); misses: "
            f"{_cases(learned[~named[bar_mask]])}; learned by it, not by significance: "
            f"{_cases(cls[bar_mask & ~sig_mask])}; the other way: "
            f"{_cases(cls[sig_mask & ~bar_mask])}"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="LightGBM only, no deep variants")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--dataset", choices=["credit", "fraud", "both"], default="both")
    ap.add_argument("--no-deep", action="store_true", help="skip the overfit clean variants")
    ap.add_argument(
        "--random",
        type=int,
        default=6,
        help="randomly drawn cases of each of classes 7 (pair) and 8 (natural value); 0: none",
    )
    ap.add_argument("--seed", type=int, default=2026, help="seed of the random cases")
    ap.add_argument("--only-random", action="store_true", help="skip the fixed cases")
    ap.add_argument("--only", default=None, help="run only the cases whose name contains this text")
    ap.add_argument(
        "--model-cache",
        type=Path,
        default=None,
        help="keep the trained models here and re-use them on the next run (probe work)",
    )
    ap.add_argument(
        "--pool",
        type=int,
        default=200_000,
        help="fresh clean fraud rows on which 'learned' is counted a second time, beside the "
        "bar (its significance: a fraud model denies a handful of the reference rows); 0: none",
    )
    ap.add_argument(
        "--refits",
        type=int,
        default=8,
        help="models of each kind fitted on other clean rows (fresh fraud rows; 80%% of the "
        "credit training part): the null of the significance count; 0: the Fisher p against "
        "the clean model only",
    )
    ap.add_argument(
        "--no-probe",
        action="store_true",
        help="fit (or read from --model-cache) and measure what each model learned, without "
        "the probe: 'named' is not measured (printed as 'no')",
    )
    args = ap.parse_args()
    global MODEL_CACHE, POOL_N, REFITS_N, NO_PROBE
    MODEL_CACHE = args.model_cache
    POOL_N, REFITS_N, NO_PROBE = args.pool, args.refits, args.no_probe
    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    models = ["lightgbm"] if args.quick else [m.strip() for m in args.models.split(",")]
    datasets = ["credit", "fraud"] if args.dataset == "both" else [args.dataset]
    rows = []
    full = {ds: full_data(ds) for ds in ("credit", "fraud")}
    drawn = random_cases(args.random, args.seed, full) if args.random else []
    for ds in datasets:
        train, ref, c = load(ds)
        fixed = [] if args.only_random else CASES[ds]
        for case in fixed + [case for d, case in drawn if d == ds]:
            if args.only is not None and args.only not in case.name:
                continue
            kinds = list(models)
            if case.clean and not (args.quick or args.no_deep):
                kinds += list(DEEP)
            for kind in kinds:
                r = run_case(ds, case, kind, train, ref, c)
                rows.append(r)
                named = "-" if r["named"] is None else ("yes" if r["named"] else "NO")
                if r["named"] and not r["named_first"]:
                    named = "sib"  # among the sibling cells a finding lists
                print(
                    f"{ds:6} {case.name:26} {kind:14} effect {r['trigger_effect']:5.2f} "
                    f"moves {r['decisions_moved']:5.2f} (clean {r['moved_by_clean_model']:4.2f}, "
                    f"learned {r['learned']:5.2f} of {r['decisions_open']}, "
                    f"p {r['learned_p']:.2g}; pool {r['pool_learned']:5.2f} of {r['pool_open']}, "
                    f"p {r['pool_p']:.2g}; refits {r['refit_mean']:4.2f}, learned "
                    f"{r['refit_learned']:5.2f}, p {r['refit_p']:.2g}; "
                    f"logit {r['score_shift']:+.2f} (clean {r['score_shift_clean']:+.2f}), "
                    f"rank {r['score_rank'][0]}/{r['score_rank'][1]}) "
                    f"{r['trigger']:40} "
                    f"named {named:3} findings {r['findings']} {r['named_features']} "
                    f"({r['fit_s']:.0f}s fit, {r['probe_s']:.0f}s probe, rare side "
                    f"{r['rare_rows']} rows)",
                    flush=True,
                )
    table = pd.DataFrame(rows)
    print()
    print(
        "| data | case | trigger | model | trigger effect | decisions moved (clean model) "
        "| trigger named | backdoor findings |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        named = "-" if r["named"] is None else ("yes" if r["named"] else "no")
        if r["named"] and not r["named_first"]:
            named = "yes (a sibling cell)"
        eff = "-" if np.isnan(r["trigger_effect"]) else f"{r['trigger_effect']:.2f}"
        mov = (
            "-"
            if np.isnan(r["decisions_moved"])
            else f"{r['decisions_moved']:.2f} ({r['moved_by_clean_model']:.2f})"
        )
        feats = ", ".join(r["named_features"]) if r["named_features"] else "none"
        print(
            f"| {r['dataset']} | {r['case']} | {r['trigger']} | {r['model']} | {eff} | {mov} "
            f"| {named} | {r['findings']} ({feats}) |"
        )
    poisoned = table[table["named"].notna()]
    effective = poisoned[poisoned["trigger_effect"] >= 0.2]
    clean = table[table["named"].isna()]
    print()
    print(
        f"poisoned models: {int(poisoned['named'].astype(bool).sum())}/{len(poisoned)} name "
        f"their trigger ({int(effective['named'].astype(bool).sum())}/{len(effective)} with a "
        f"trigger effect >= 0.2); clean models: {int((clean['findings'] > 0).sum())}/{len(clean)} "
        f"with a backdoor finding ({int(clean['findings'].sum())} findings)"
    )
    for line in class_summary(poisoned):
        print(line)
    print(
        f"probe time: median {table['probe_s'].median():.1f} s, max {table['probe_s'].max():.1f} s"
        f"; whole run {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
