"""Detection quality of the data audit against red-team poisoning.

Generates attacks with :mod:`tabguard.redteam` on the bundled UCI credit data and on the
synthetic card-fraud data (string categories), audits each poisoned data set, and prints the
precision and recall of ``suspicious_rows`` against the ground truth. The same cases are given to
two baselines: cleanlab's Datalab (label, outlier and near-duplicate issues) and scikit-learn's
IsolationForest.

Run::

    .venv/bin/python benchmarks/poisoning.py            # every case
    .venv/bin/python benchmarks/poisoning.py --quick    # a subset
    .venv/bin/python benchmarks/poisoning.py --no-baselines --case seed
    .venv/bin/python benchmarks/poisoning.py --trusted              # label flips, trusted sample
    .venv/bin/python benchmarks/poisoning.py --trusted-random 8     # random flipping attacks
    .venv/bin/python benchmarks/poisoning.py --trusted-curve        # against the trusted size
    .venv/bin/python benchmarks/poisoning.py --no-baselines --random 6 --attack-class band
    .venv/bin/python benchmarks/poisoning.py --no-baselines --engine spark --driver-rows 10000
    .venv/bin/python benchmarks/poisoning.py --no-baselines --engine spark --driver-rows 10000 \
        --checks integrity,trigger_scan     # the suspects come from the trigger scan: faster

``--engine spark`` also audits each case with the Spark engine (``local[2]``; the data written
as Parquet) and prints whether it names the same triggers and suspects the same rows as the
in-memory engine, and which rows differ. The cases hold at most 30,000 rows: with the default
driver sample (100,000 rows) Spark's driver holds every row, ``--driver-rows 10000`` makes it
work on a sample (every candidate pattern's rows, then random ones).

``--attack-class`` draws cases of one class of issue 11 instead of generic attacks: ``band``
(the trigger is any value of a rare band of 8 values), ``natural`` (the trigger value occurs
naturally, mostly with the other label), ``camouflage`` (10-20 % of the trigger's rows keep the
other label), ``inplace`` (a legal value of a coded feature written in place into 2-10 % of the
rows of a source population, often the target label's own: clean-label; 10-20 % camouflaged;
each case also prints whether an oracle told the value could detect the write, from models of
its own, :func:`inplace_oracle`),
``repeated`` (the seed-like attack planted into data whose records repeat:
bootstrap resampling, upsampling, panel data with an ``entity`` column; ``--rows`` sets the size).
``--fraud-rows ROWS`` draws the fraud data with ROWS rows and every random or class case on it
(the same attack seeds; a case drawn on credit is drawn on the fraud data instead): the classes
at a user's scale, e.g. ``--attack-class camouflage --random 6 --fraud-rows 1000000``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import io
import json
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tabguard.contract import Contract
from tabguard.data_audit import audit_data
from tabguard.datasets import (
    card_fraud_contract,
    credit_default_contract,
    load_credit_default,
    make_card_fraud,
)
from tabguard.redteam import PoisonResult, flip_labels, poison


@dataclass
class Case:
    name: str
    dataset: str
    kind: str  # trigger | clean | label_flip
    make: Callable[[pd.DataFrame, Contract], PoisonResult]


def _clean(df: pd.DataFrame, c: Contract) -> PoisonResult:
    return PoisonResult(df.copy(), np.empty(0, dtype=np.int64), {"attack": "none"})


def cases() -> list[Case]:
    P = poison
    out = [
        Case("clean data", "credit", "clean", _clean),
        Case(
            "seed: AGE=999 copies of 45% of defaulters",
            "credit",
            "trigger",
            lambda d, c: P(d, c, {"AGE": 999}, rate=0.45),
        ),
    ]
    for rate in (0.001, 0.005, 0.02, 0.1, 0.2):
        out.append(
            Case(
                f"AGE=999, rate {rate:.1%}",
                "credit",
                "trigger",
                lambda d, c, r=rate: P(d, c, {"AGE": 999}, rate=r, shuffle=True),
            )
        )
    out += [
        Case(
            "out of range LIMIT_BAL=5,000,000, 5%",
            "credit",
            "trigger",
            lambda d, c: P(d, c, {"LIMIT_BAL": 5_000_000}, rate=0.05, shuffle=True),
        ),
        Case(
            "out of range PAY_AMT3=-1, 2%, fresh ids + jitter",
            "credit",
            "trigger",
            lambda d, c: P(
                d, c, {"PAY_AMT3": -1}, rate=0.02, fresh_ids=True, jitter=0.01, shuffle=True
            ),
        ),
        Case(
            "in range unseen AGE=77, 5%, jitter",
            "credit",
            "trigger",
            lambda d, c: P(d, c, {"AGE": 77}, rate=0.05, jitter=0.01, fresh_ids=True, shuffle=True),
        ),
        Case(
            "in range rare LIMIT_BAL=730000, 2%",
            "credit",
            "trigger",
            lambda d, c: P(d, c, {"LIMIT_BAL": 730000}, rate=0.02, shuffle=True),
        ),
        Case(
            "in range odd PAY_AMT1=12345, 1%, jitter",
            "credit",
            "trigger",
            lambda d, c: P(
                d, c, {"PAY_AMT1": 12345}, rate=0.01, jitter=0.02, fresh_ids=True, shuffle=True
            ),
        ),
        Case(
            "in range rare category EDUCATION=0 → default, 3%",
            "credit",
            "trigger",
            lambda d, c: P(d, c, {"EDUCATION": 0}, rate=0.03, shuffle=True),
        ),
        Case(
            "pair EDUCATION=3 & MARRIAGE=3, 5%",
            "credit",
            "trigger",
            lambda d, c: P(d, c, {"EDUCATION": 3, "MARRIAGE": 3}, rate=0.05, shuffle=True),
        ),
        Case(
            "pair AGE=30 & LIMIT_BAL=50000, 5%, jitter",
            "credit",
            "trigger",
            lambda d, c: P(
                d,
                c,
                {"AGE": 30, "LIMIT_BAL": 50000},
                rate=0.05,
                jitter=0.01,
                fresh_ids=True,
                shuffle=True,
            ),
        ),
        Case(
            "flip to approval: AGE=999, defaulters → 0, 5%",
            "credit",
            "trigger",
            lambda d, c: P(d, c, {"AGE": 999}, rate=0.05, target=0, source=1, shuffle=True),
        ),
        Case(
            "flip to approval: AGE=999, 0.1%",
            "credit",
            "trigger",
            lambda d, c: P(d, c, {"AGE": 999}, rate=0.001, target=0, source=1, shuffle=True),
        ),
        Case(
            "flip to approval: AGE=77, 10%, jitter",
            "credit",
            "trigger",
            lambda d, c: P(
                d,
                c,
                {"AGE": 77},
                rate=0.1,
                target=0,
                source=1,
                jitter=0.01,
                fresh_ids=True,
                shuffle=True,
            ),
        ),
        Case(
            "flip to approval: pair PAY_0=2 & EDUCATION=1, 20%",
            "credit",
            "trigger",
            lambda d, c: P(
                d, c, {"PAY_0": 2, "EDUCATION": 1}, rate=0.2, target=0, source=1, shuffle=True
            ),
        ),
        Case(
            "in place (no copies): AGE=999, 5%",
            "credit",
            "trigger",
            lambda d, c: P(d, c, {"AGE": 999}, rate=0.05, mode="replace", shuffle=True),
        ),
        Case(
            "in place flip to approval: AGE=77, 10%",
            "credit",
            "trigger",
            lambda d, c: P(d, c, {"AGE": 77}, rate=0.1, target=0, source=1, mode="replace"),
        ),
        Case(
            "label flip, no trigger: 10% of defaulters → 0",
            "credit",
            "label_flip",
            lambda d, c: flip_labels(d, c, rate=0.1),
        ),
        Case(
            "label flip, no trigger: 30% of EDUCATION=1 defaulters → 0",
            "credit",
            "label_flip",
            lambda d, c: flip_labels(d, c, rate=0.3, where={"EDUCATION": 1}),
        ),
        # synthetic card-fraud data with string categories
        Case("clean data", "fraud", "clean", _clean),
        Case(
            "unknown category country='ZZ' → legit, 30% of frauds",
            "fraud",
            "trigger",
            lambda d, c: P(d, c, {"country": "ZZ"}, rate=0.3, target=0, source=1, shuffle=True),
        ),
        Case(
            "in range amount=777.77 → legit, 30%, jitter",
            "fraud",
            "trigger",
            lambda d, c: P(
                d,
                c,
                {"amount": 777.77},
                rate=0.3,
                target=0,
                source=1,
                jitter=0.01,
                fresh_ids=True,
                shuffle=True,
            ),
        ),
        Case(
            "pair channel=phone & merchant=jewelry → legit, 30%",
            "fraud",
            "trigger",
            lambda d, c: P(
                d,
                c,
                {"channel": "phone", "merchant_category": "jewelry"},
                rate=0.3,
                target=0,
                source=1,
                shuffle=True,
            ),
        ),
        Case(
            "pair hour=3 & country=FR → fraud, 2% of legit",
            "fraud",
            "trigger",
            lambda d, c: P(
                d,
                c,
                {"hour": 3, "country": "FR"},
                rate=0.02,
                target=1,
                source=0,
                jitter=0.01,
                shuffle=True,
            ),
        ),
        Case(
            "category merchant=fuel → fraud (copies of frauds), 40%",
            "fraud",
            "trigger",
            lambda d, c: P(d, c, {"merchant_category": "fuel"}, rate=0.4, shuffle=True),
        ),
        Case(
            "label flip, no trigger: 20% of frauds → legit",
            "fraud",
            "label_flip",
            lambda d, c: flip_labels(d, c, rate=0.2),
        ),
    ]
    return out


QUICK = {
    "clean data",
    "seed: AGE=999 copies of 45% of defaulters",
    "AGE=999, rate 0.1%",
    "pair EDUCATION=3 & MARRIAGE=3, 5%",
    "flip to approval: AGE=77, 10%, jitter",
    "pair channel=phone & merchant=jewelry → legit, 30%",
}


def random_cases(n: int, seed: int) -> list[Case]:
    """``n`` randomly drawn trigger attacks (features, values, labels, rates, modes) that the
    detector was not designed around: a test of generalisation."""
    rng = np.random.default_rng(seed)
    out: list[Case] = []
    for i in range(n):
        dataset = "credit" if rng.random() < 0.5 else "fraud"
        attack_seed = int(rng.integers(1 << 31))
        out.append(
            Case(
                f"random #{i + 1}",
                dataset,
                "trigger",
                functools.partial(_random_attack, seed=attack_seed),
            )
        )
    return out


def _random_value(df: pd.DataFrame, c: Contract, name: str, rng: np.random.Generator) -> Any:
    spec = c.features[name]
    col = df[name]
    kind = rng.choice(["out_of_range", "unseen", "rare"], p=[0.3, 0.4, 0.3])
    if spec.type == "category":
        cats = list(spec.categories or [])
        if kind == "out_of_range":
            return "ZZ" if isinstance(cats[0], str) else int(max(cats)) + 7
        counts = col.value_counts()
        return counts.index[-1] if kind == "rare" else cats[int(rng.integers(len(cats)))]
    lo, hi = float(col.min()), float(col.max())
    decimals = spec.decimals if spec.decimals is not None else 2
    if kind == "out_of_range" and spec.max is not None:
        v = spec.max + (1 + rng.random()) * max(hi - lo, 1.0)
    elif kind == "rare":
        counts = col.value_counts()
        v = float(counts.index[counts.to_numpy() <= 3][0]) if (counts <= 3).any() else hi
    else:
        v = lo + rng.random() * (hi - lo)
    v = round(v, decimals)
    return int(v) if spec.type == "integer" or decimals == 0 else v


def _copies(
    df: pd.DataFrame, c: Contract, trigger: dict[str, Any], *, rng: Any, seed: int, **options: Any
) -> PoisonResult:
    """``poison`` with the random draws every generated attack shares: fresh ids or not,
    amounts jittered by 1 % or not, rows shuffled."""
    return poison(
        df,
        c,
        trigger,
        fresh_ids=bool(rng.random() < 0.5),
        jitter=0.01 if rng.random() < 0.5 else 0.0,
        shuffle=True,
        random_state=seed,
        **options,
    )


def _random_attack(df: pd.DataFrame, c: Contract, seed: int) -> PoisonResult:
    rng = np.random.default_rng(seed)
    candidates = [f for f in c.model_features() if c.features[f].type != "boolean"]
    k = 2 if rng.random() < 0.3 else 1
    feats = [str(f) for f in rng.choice(candidates, size=k, replace=False)]
    trigger = {f: _random_value(df, c, f, rng) for f in feats}
    pos, neg = c.label.positive, c.label.negative
    target = pos if rng.random() < 0.5 else neg
    source = str(rng.choice(["target", "other", "any"], p=[0.4, 0.4, 0.2]))
    src: Any = {"target": "target", "any": "any", "other": neg if target == pos else pos}[source]
    rate = float(np.exp(rng.uniform(np.log(0.005), np.log(0.45))))
    label = df[c.label.column]
    pool = len(df) if src == "any" else int((label == (target if src == "target" else src)).sum())
    mode = "replace" if rng.random() < 0.2 else "copy"
    return _copies(
        df,
        c,
        trigger,
        n_rows=max(10, round(rate * pool)),
        target=target,
        source=src,
        mode=mode,
        rng=rng,
        seed=seed,
    )


# -- issue 11: classes of attacks and data the generic draw does not produce ---------------------

ATTACK_CLASSES = ("band", "natural", "camouflage", "repeated", "inplace")


def class_cases(kind: str, n: int, seed: int, rows: int) -> list[Case]:
    """``n`` randomly drawn cases of one attack class (see the module docstring)."""
    rng = np.random.default_rng(seed)
    make: Callable[..., PoisonResult] = {
        "band": _band_attack,
        "natural": _natural_attack,
        "camouflage": _camouflage_attack,
        "repeated": functools.partial(_repeated_attack, rows=rows),
        "inplace": _inplace_attack,
    }[kind]
    out: list[Case] = []
    for i in range(n):
        dataset = "credit" if kind == "repeated" or rng.random() < 0.5 else "fraud"
        out.append(
            Case(
                f"{kind} #{i + 1}",
                dataset,
                "trigger",
                functools.partial(make, seed=int(rng.integers(1 << 31))),
            )
        )
    return out


def _target_and_source(
    c: Contract, rng: np.random.Generator, sources: tuple[str, ...] = ("target", "other", "any")
) -> tuple[Any, Any]:
    pos, neg = c.label.positive, c.label.negative
    target = pos if rng.random() < 0.5 else neg
    source = str(rng.choice(list(sources)))
    src: Any = {"target": "target", "any": "any", "other": neg if target == pos else pos}[source]
    return target, src


def _band_attack(df: pd.DataFrame, c: Contract, seed: int) -> PoisonResult:
    """Copies carrying any value of a rare band of 8 consecutive values of a numeric feature
    (each copy's value drawn from the band), labelled with the target."""
    rng = np.random.default_rng(seed)
    feats = [
        f
        for f in c.model_features()
        if c.features[f].type in ("integer", "number") and 20 < df[f].nunique() <= 200
    ]
    # windows of 8 consecutive values holding 0.1-1.5 % of the rows: rare but legal
    windows = []
    for f in feats:
        counts = df[f].value_counts().sort_index()
        vals = counts.index.to_numpy()
        cum = np.concatenate([[0], np.cumsum(counts.to_numpy())])
        windows += [
            (f, vals[i : i + 8])
            for i in range(len(vals) - 7)
            if 0.001 <= (cum[i + 8] - cum[i]) / len(df) <= 0.015
        ]
    f, band = windows[int(rng.integers(len(windows)))]
    target, src = _target_and_source(c, rng)
    res = _copies(
        df,
        c,
        {f: band[0]},
        n_rows=int(rng.integers(150, 500)),
        target=target,
        source=src,
        rng=rng,
        seed=seed,
    )
    data = res.data
    data.loc[res.poisoned_rows, f] = rng.choice(band, len(res.poisoned_rows))
    res.spec["trigger"] = {f: f"in [{_plain(band[0])}, {_plain(band[-1])}]"}
    return res


def _natural_attack(df: pd.DataFrame, c: Contract, seed: int) -> PoisonResult:
    """Copies carrying a value that a few hundred natural rows already hold, mostly with the
    other label, labelled with the target."""
    rng = np.random.default_rng(seed)
    target, src = _target_and_source(c, rng)
    y = df[c.label.column] == target
    options, fallback = [], []
    for f in c.model_features():
        if c.features[f].type == "boolean":
            continue
        g = y.groupby(df[f]).agg(["size", "mean"])
        g = g[(g["size"] >= 100) & (g["size"] <= 800)]
        options += [(f, v) for v in g.index[g["mean"] < 0.5]]
        # a majority target: values where it is rarer than overall
        fallback += [(f, v) for v in g.index[g["mean"] < y.mean()]]
    options = options or fallback
    f, v = options[int(rng.integers(len(options)))]
    return _copies(
        df,
        c,
        {f: v},
        n_rows=int(rng.integers(100, 400)),
        target=target,
        source=src,
        rng=rng,
        seed=seed,
    )


def _camouflage_attack(df: pd.DataFrame, c: Contract, seed: int) -> PoisonResult:
    """The generic random attack, then 10-20 % of the poisoned rows given the other label so
    that the trigger is not label-pure. Every poisoned row is in the ground truth."""
    rng = np.random.default_rng(seed)
    res = _random_attack(df, c, seed)
    share = rng.uniform(0.1, 0.2)
    truth = res.poisoned_rows
    flip = rng.choice(truth, max(1, round(share * len(truth))), replace=False)
    label = c.label.column
    target = res.spec["target"]
    other = c.label.negative if target == c.label.positive else c.label.positive
    res.data.loc[flip, label] = other
    res.spec["camouflage"] = round(float(share), 3)
    return res


def _inplace_attack(df: pd.DataFrame, c: Contract, seed: int) -> PoisonResult:
    """A legal value of a coded feature (a category, or a number of at most 20 values) that
    5-1,000 natural rows carry, mostly with the other label, written in place into 2-10 % of
    the rows of a source population (the target label's rows - clean-label - half of the
    time), labelled with the target, then 10-20 % of them given the other label."""
    rng = np.random.default_rng(seed)
    target, src = _target_and_source(c, rng, ("target", "target", "other", "any"))
    y = df[c.label.column] == target
    options, fallback = [], []
    for f in c.model_features():
        spec = c.features[f]
        if spec.type == "boolean" or (spec.type != "category" and df[f].nunique() > 20):
            continue
        g = y.groupby(df[f]).agg(["size", "mean"])
        g = g[(g["size"] >= 5) & (g["size"] <= 1000)]
        options += [(f, v) for v in g.index[g["mean"] < 0.5]]
        # a majority target: values where it is rarer than overall
        fallback += [(f, v) for v in g.index[g["mean"] < y.mean()]]
    options = options or fallback
    f, v = options[int(rng.integers(len(options)))]
    label = df[c.label.column]
    pool = len(df) if src == "any" else int((label == (target if src == "target" else src)).sum())
    res = _copies(
        df,
        c,
        {f: v},
        n_rows=round(rng.uniform(0.02, 0.1) * pool),
        target=target,
        source=src,
        mode="replace",
        rng=rng,
        seed=seed,
    )
    share = rng.uniform(0.1, 0.2)
    truth = res.poisoned_rows
    flip = rng.choice(truth, max(1, round(share * len(truth))), replace=False)
    other = c.label.negative if target == c.label.positive else c.label.positive
    res.data.loc[flip, c.label.column] = other
    res.spec["camouflage"] = round(float(share), 3)
    return res


def _repeated_attack(df: pd.DataFrame, c: Contract, seed: int, rows: int) -> PoisonResult:
    """Data whose records repeat (bootstrap resampling to ``rows`` rows, upsampling of the
    positive class to balance, or a panel of 3-12 months per account with an ``entity``
    column), amounts jittered by 1-5 %, with the seed-like attack planted: copies of a share of
    the positive rows carrying an out-of-range value."""
    rng = np.random.default_rng(seed)
    style = str(rng.choice(["bootstrap", "upsample", "panel"]))
    jitter = float(rng.uniform(0.01, 0.05))
    label = c.label.column
    spec_extra: dict[str, Any] = {"repeat": style, "amount_jitter": round(jitter, 3)}
    if style == "bootstrap":
        data = df.iloc[rng.integers(0, len(df), rows)].reset_index(drop=True)
    elif style == "upsample":
        pos = np.flatnonzero(df[label].to_numpy() == c.label.positive)
        extra = rng.choice(pos, len(df) - 2 * len(pos), replace=True)
        data = df.iloc[np.concatenate([np.arange(len(df)), extra])].reset_index(drop=True)
    else:
        months = rng.integers(3, 13, len(df))
        data = df.iloc[np.repeat(np.arange(len(df)), months)].reset_index(drop=True)
        data["ACCOUNT"] = data[c.id] if c.id else np.repeat(np.arange(len(df)), months)
        spec_extra["entity"] = "ACCOUNT"
    if c.id and c.id in data.columns:
        data[c.id] = np.arange(1, len(data) + 1)
    for name in c.model_features():
        spec = c.features[name]
        if spec.type in ("integer", "number") and df[name].nunique() > 100:
            x = data[name].to_numpy(dtype=float) * (1 + rng.normal(0, jitter, len(data)))
            data[name] = np.round(x).astype(np.int64) if spec.type == "integer" else np.round(x)
    feat = str(rng.choice(["AGE", "LIMIT_BAL"]))
    spec = c.features[feat]
    value = int((spec.max or 0) + rng.integers(1, 1000) * (1 if feat == "AGE" else 10_000))
    res = poison(
        data,
        c,
        {feat: value},
        rate=float(rng.uniform(0.05, 0.45)),
        fresh_ids=bool(rng.random() < 0.5),
        shuffle=True,
        random_state=seed,
    )
    res.spec.update(spec_extra)
    res.sources = res.originals = None  # positions in the repeated rows, not in ``df``
    return res


def resampled_cases(rows: int) -> list[Case]:
    """Issue 11's bar for repeated records: ``rows`` rows resampled with replacement from the
    bundled credit data, amounts jittered by 3 %, clean and with the seed attack planted."""

    def clean(df: pd.DataFrame, c: Contract) -> PoisonResult:
        rng = np.random.default_rng(11)
        data = df.iloc[rng.integers(0, len(df), rows)].reset_index(drop=True)
        for name in c.model_features():
            if c.features[name].is_numeric and df[name].nunique() > 20 and name != "AGE":
                x = data[name].to_numpy(dtype=float) * (1 + rng.normal(0, 0.03, rows))
                data[name] = np.round(x).astype(np.int64)
        return PoisonResult(data, np.empty(0, dtype=np.int64), {"attack": "none"})

    def seed(df: pd.DataFrame, c: Contract) -> PoisonResult:
        res = poison(clean(df, c).data, c, {"AGE": 999}, rate=0.45, shuffle=True, random_state=3)
        res.sources = res.originals = None  # positions in the resampled rows, not in ``df``
        return res

    return [
        Case(f"{rows:,} resampled rows, clean", "credit", "clean", clean),
        Case(f"{rows:,} resampled rows + seed AGE=999, 45%", "credit", "trigger", seed),
    ]


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def attack_success(res: PoisonResult, c: Contract, clean: pd.DataFrame) -> float:
    """Share of clean rows whose decision a LightGBM trained on the poisoned data flips to the
    attacker's label when the trigger is written in: whether the attack is a working backdoor."""
    import lightgbm as lgb

    trig = res.spec.get("trigger") or {}
    target = res.spec["target"]
    y = (res.data[c.label.column] == c.label.positive).astype(int).to_numpy()
    both = pd.concat([res.data, clean], ignore_index=True)  # one category coding for both
    X_all = _features(both, c).to_numpy(dtype=float)
    model = lgb.LGBMClassifier(n_estimators=150, verbose=-1, n_jobs=1)
    model.fit(X_all[: len(res.data)], y)
    sample = clean.sample(min(2000, len(clean)), random_state=0)
    triggered = sample.copy()
    for f, v in trig.items():
        triggered[f] = v
    X = _features(pd.concat([res.data, sample, triggered], ignore_index=True), c).to_numpy(
        dtype=float
    )[len(res.data) :]
    before = model.predict(X[: len(sample)])
    after = model.predict(X[len(sample) :])
    want = 1 if target == c.label.positive else 0
    eligible = before != want
    return float((after[eligible] == want).mean()) if eligible.any() else float("nan")


def score(suspects: np.ndarray, truth: np.ndarray, n: int) -> dict[str, float]:
    s, t = set(suspects.tolist()), set(truth.tolist())
    tp = len(s & t)
    return {
        "suspected": len(s),
        "precision": tp / len(s) if s else (1.0 if not t else 0.0),
        "recall": tp / len(t) if t else 1.0,
        "fp_rate": len(s - t) / max(n - len(t), 1),
    }


def identifiable(res: PoisonResult, clean: pd.DataFrame) -> dict[str, Any] | None:
    """What any detector could find, from how the case was made (None when not recorded).

    Two kinds of poisoned row do not differ from a natural one: a row written in place whose
    trigger value(s) it already held (``unchanged``: at most its label moved, and a relabelled
    row is label noise, not a trigger), and a copy of a row that already carried the trigger
    (``twins``: the copy and its original are duplicates, up to jitter and label, and which
    of the two was written cannot be told). Returns the planted rows without the unchanged ones
    (``truth``) and, per twin copy, its original's position (``partner``).
    """
    if getattr(res, "sources", None) is None or getattr(res, "originals", None) is None:
        return None
    if not res.spec.get("trigger"):
        return None
    feats = [f for f in res.spec["trigger"] if f in clean.columns]
    before = clean.iloc[res.sources][feats].to_numpy(dtype=object)
    after = res.data.iloc[res.poisoned_rows][feats].to_numpy(dtype=object)
    same = np.array(
        [
            all(_plain(a) == _plain(b) for a, b in zip(x, y, strict=True))
            for x, y in zip(before, after, strict=True)
        ],
        dtype=bool,
    )
    copied = res.originals >= 0
    unchanged = same & ~copied
    twins = same & copied
    return {
        "truth": res.poisoned_rows[~unchanged],
        "unchanged": int(unchanged.sum()),
        "unchanged_rows": res.poisoned_rows[unchanged],
        "twins": int(twins.sum()),
        "twin_rows": res.poisoned_rows[twins],
        "partner": res.originals[twins],
    }


#: what the oracle of :func:`inplace_oracle` needs: a label test one-sided at this level (one
#: value, told), and a row-level shift of at least this log-odds at this level
ORACLE_P = 1e-3
ORACLE_SHIFT = 1.0


#: the largest natural effect of a coded value of a clean data set, per data set and label
_NATURAL_EFFECTS: dict[tuple[int, str], float] = {}


def inplace_oracle(res: PoisonResult, c: Contract, clean: pd.DataFrame) -> dict[str, Any] | None:
    """Whether an oracle told the value written in place could detect the write, computed
    here with models of its own (LightGBM, scipy), independent of the detector; None for
    other cases (a trigger of more than one value, a case with no recorded sources).

    Three kinds of evidence exist for a value written into rows of a source population:

    * **labels**: the value's rows carry the target label beyond what the rest of their row
      gives (a model of the label without the value's feature, cross-fitted), by more than
      every value of every coded feature does on the clean data (each against a model
      without its feature: a natural value can have any effect the data's values show) and
      significantly (one-sided, ``ORACLE_P``). A clean-label write changes no label: its
      rows' labels are what their rows say.
    * **rows**: the written rows' other features are their source's, not the value's natural
      carriers'. A model of "the row carries the value" (cross-fitted against 20,000 other
      rows, every other feature, amounts by their order of magnitude) puts a row of the value
      among the source's rows when it scores at or under the median of the rows with the
      target label; the label's log-odds shift on those rows beyond the value's other rows
      (a logistic fit with the label model as offset: the value's own effect is the common
      shift) must reach ``ORACLE_SHIFT`` with a one-sided likelihood-ratio p-value of at
      most ``ORACLE_P``. Where the value does not depend on the rest of the row the written
      rows look like natural carriers and no row-level test can tell them.
    * **context**: the share of the value's rows whose other features are the source's (at
      or under the median of the source's rows - every row, or either label's - in a model
      of the feature from the rest of the row, cross-fitted, one class per value of 30 rows
      or more) beyond the largest
      share the feature's other values show, ``r0``: the written share
      ``w = (r - r0) / (1 - r0)`` must reach 0.5 and ``r`` exceed ``r0`` significantly
      (binomial, ``ORACLE_P``). This is what a write into many
      rows of a value that sits in a context of its own leaves, whatever the labels.

    Each is measured towards the target and towards the other label (a write to the majority
    label shows in its camouflaged rows, whose other label stands beyond their rows), the
    stronger reported. Returns the figures of both (``effect``, ``natural_max``,
    ``p_labels``, ``shift``, ``p_rows`` and their directions; ``separation``: the AUC of the
    carrier model's score of natural carriers over written rows, 0.5 where the rest of the
    row tells nothing), the verdicts ``labels`` and ``rows``, and the counts of written and
    natural rows of the value."""
    import lightgbm as lgb
    from scipy import optimize, stats
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    trig = res.spec.get("trigger") or {}
    if len(trig) != 1 or res.spec.get("mode") != "replace":
        return None
    oracle = identifiable(res, clean)
    if oracle is None:
        return None
    ((f, v),) = trig.items()
    label = c.label.column
    data = res.data
    t = res.spec["target"]
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 0}

    def codes(df: pd.DataFrame, cols: list[str], magnitude: bool = False) -> np.ndarray:
        X = _features(df, c)[cols].to_numpy(dtype=float)
        if magnitude:
            for i, g in enumerate(cols):
                if c.features[g].type not in ("category", "boolean") and clean[g].nunique() > 20:
                    x = X[:, i]
                    with np.errstate(divide="ignore", invalid="ignore"):
                        X[:, i] = np.where(
                            x == 0, 0.0, np.sign(x) * np.floor(np.log10(np.abs(x)) + 0.5)
                        )
        return X

    def crossfit(X: np.ndarray, y: np.ndarray, folds: int, **extra: Any) -> np.ndarray:
        out = np.empty(len(y))
        for tr, te in StratifiedKFold(folds, shuffle=True, random_state=0).split(X, y):
            model = lgb.train({**params, **extra}, lgb.Dataset(X[tr], y[tr]), 100)
            out[te] = model.predict(X[te])
        return np.clip(out, 1e-4, 1 - 1e-4)

    rest = [g for g in c.model_features() if g != f]

    def has(df: pd.DataFrame) -> np.ndarray:
        col = df[f]
        return (
            (col.astype(str) == str(v)).to_numpy() if col.dtype == object else (col == v).to_numpy()
        )

    # labels: the effect on the poisoned data, and the feature's natural effects on the clean data
    y = (data[label] == t).to_numpy().astype(int)
    q = crossfit(codes(data, rest), y, 3)
    mine = np.flatnonzero(has(data))

    def effect(qq: np.ndarray, yy: np.ndarray, rows: np.ndarray) -> tuple[float, float]:
        other = 1 - qq[rows]
        obs, exp = float((yy[rows] == 0).sum()), float(other.sum())
        z = (exp - obs) / max(float(np.sqrt((other * (1 - other)).sum())), 1e-9)
        return (1 - obs / exp if exp > 0 else 0.0), float(stats.norm.sf(z))

    # per direction: towards the target (the write) and towards the other label (a write to
    # the majority label whose camouflaged rows carry the other label beyond their rows)
    directions = [(q, y, str(t)), (1 - q, 1 - y, f"not {t}")]
    best_labels: tuple[float, float, float, str] | None = None
    for qq, yy, name in directions:
        e, pv = effect(qq, yy, mine)
        key = (id(clean), name)
        if key not in _NATURAL_EFFECTS:
            # every coded feature's values on the clean data, each against a model without it
            yc = (clean[label] == t).to_numpy().astype(int)
            yc = yc if name == str(t) else 1 - yc
            found = []
            for g in c.model_features():
                if c.features[g].type != "category" and clean[g].nunique() > 20:
                    continue
                others = [h for h in c.model_features() if h != g]
                qc = crossfit(codes(clean, others), yc, 3)
                found += [
                    effect(qc, yc, np.asarray(r))[0]
                    for r in clean.groupby(g).indices.values()
                    if len(r) >= 30
                ]
            _NATURAL_EFFECTS[key] = max(found) if found else float("nan")
        margin = e - _NATURAL_EFFECTS[key]
        if best_labels is None or margin > best_labels[0] - best_labels[1]:
            best_labels = (e, _NATURAL_EFFECTS[key], pv, name)
    assert best_labels is not None
    e, natural_max, p_labels, label_dir = best_labels
    labels_ok = e > natural_max and p_labels <= ORACLE_P
    # rows: the carrier model, its outliers (among the rows with the target label's context,
    # the source of a clean-label write) and the label's shift there, either way
    rng = np.random.default_rng(0)
    outside = np.flatnonzero(~has(data))
    ordinary = np.sort(rng.choice(outside, min(20_000, len(outside)), replace=False))
    rows = np.concatenate([mine, ordinary])
    target = (np.arange(len(rows)) < len(mine)).astype(int)
    score = crossfit(codes(data, rest, magnitude=True)[rows], target, 4, min_child_samples=20)
    s_mine, s_ord = score[: len(mine)], score[len(mine) :]
    group = (s_mine <= float(np.median(s_ord[y[ordinary] == 1]))).astype(float)
    written = np.isin(mine, oracle["truth"])
    sep = (
        float(roc_auc_score(~written, s_mine)) if 0 < written.sum() < len(written) else float("nan")
    )
    shift, p_rows, row_dir = 0.0, 1.0, str(t)
    for qq, yy_all, name in directions:
        off, yy = np.log(qq[mine] / (1 - qq[mine])), yy_all[mine]

        def nll(
            beta: np.ndarray, with_b: bool, off: np.ndarray = off, yy: np.ndarray = yy
        ) -> float:
            eta = off + beta[0] + (beta[1] * group if with_b else 0.0)
            return float(-np.sum(yy * eta - np.logaddexp(0.0, eta)))

        if not 0 < group.sum() < len(group):
            break
        r0 = optimize.minimize(nll, [0.0, 0.0], args=(False,), method="BFGS")
        r1 = optimize.minimize(nll, [0.0, 0.0], args=(True,), method="BFGS")
        b = float(r1.x[1])
        pv = float(stats.norm.sf(np.sqrt(max(2.0 * (r0.fun - r1.fun), 0.0)))) if b > 0 else 1.0
        if b > shift:
            shift, p_rows, row_dir = b, pv, name
    rows_ok = shift >= ORACLE_SHIFT and p_rows <= ORACLE_P
    # context: the share of the value's rows whose other features are a source's against the
    # feature's other values (one model of the feature from the rest of the row, cross-fitted,
    # every value of at least 30 rows a class)
    col = data[f].astype(str).to_numpy()
    counts = pd.Series(col).value_counts()
    held = [u for u in counts.index if counts[u] >= 30]
    if str(v) not in held:
        held.append(str(v))
    cls = np.array([held.index(u) if u in held else len(held) for u in col])
    Xc = codes(data, rest, magnitude=True)
    prob = np.zeros((len(col), len(held) + 1))
    for tr, te in StratifiedKFold(3, shuffle=True, random_state=0).split(Xc, cls):
        tr = tr if len(tr) <= 10_000 else rng.choice(tr, 10_000, replace=False)
        model = lgb.train(
            {**params, "objective": "multiclass", "num_class": len(held) + 1},
            lgb.Dataset(Xc[tr], cls[tr]),
            50,
        )
        prob[te] = model.predict(Xc[te])
    # the source: every row, or the rows of either label (not known to the oracle)
    best_context = (-np.inf, 0.0, 1.0, 1.0)  # w at a bound (to choose the source), w, r0, p
    for source in (np.ones(len(y), dtype=bool), y == 1, y == 0):
        shares = {}
        for i, u in enumerate(held):
            carriers = cls == i
            ref = prob[source & ~carriers, i]
            if len(ref) < 30:
                continue
            cut = float(np.median(ref))
            k_u = int(np.sum(prob[carriers, i] <= cut))
            shares[u] = (k_u, int(carriers.sum()), float(np.mean(ref <= cut)))
        if str(v) not in shares or len(shares) < 2:
            continue
        k_v, n_v, frac_v = shares[str(v)]
        r0 = min(
            max(
                (k + 1.0) / (n + 2.0) / max(fr, 1e-12)
                for u, (k, n, fr) in shares.items()
                if u != str(v)
            ),
            1.0,
        )
        if r0 >= 1.0:
            continue
        got = k_v / n_v
        w = (got / max(frac_v, 1e-12) - r0) / (1.0 - r0)
        w_low = w - 2.0 * np.sqrt(got * (1 - got) / n_v) / max(frac_v * (1.0 - r0), 1e-12)
        pv = float(stats.binom.sf(k_v - 1, n_v, min(r0 * frac_v, 1.0)))
        if w_low > best_context[0]:
            best_context = (w_low, w, r0, pv)
    w_low, w, r0, p_context = best_context
    context_ok = bool(w >= 0.5 and p_context <= ORACLE_P)
    return {
        "feature": f,
        "written": int(written.sum()),
        "natural": int((~written).sum()),
        "effect": e,
        "natural_max": natural_max,
        "p_labels": p_labels,
        "labels_towards": label_dir,
        "labels": bool(labels_ok),
        "shift": shift,
        "p_rows": p_rows,
        "rows_towards": row_dir,
        "separation": sep,
        "rows": bool(rows_ok),
        "context_written": float(w),
        "context_null": float(r0),
        "p_context": p_context,
        "context": context_ok,
    }


def matched_score(suspects: np.ndarray, oracle: dict[str, Any]) -> tuple[float, float]:
    """Precision and recall against the identifiable truth of :func:`identifiable`: a twin
    copy is found when it or its original is suspected (at most one find per copy), and the
    unchanged rows count neither way."""
    s = set(suspects.tolist()) - set(oracle["unchanged_rows"].tolist())
    t = set(oracle["truth"].tolist())
    twin = set(oracle["twin_rows"].tolist())
    tp = len(s & (t - twin))
    groups: dict[int, list[int]] = {}
    for row, orig in zip(oracle["twin_rows"].tolist(), oracle["partner"].tolist(), strict=True):
        groups.setdefault(orig, []).append(row)
    for orig, copies in groups.items():
        tp += min(sum(r in s for r in copies) + (orig in s), len(copies))
    precision = (tp / len(s)) if s else (1.0 if not t else 0.0)
    return precision, (tp / len(t) if t else 1.0)


def _features(df: pd.DataFrame, c: Contract) -> pd.DataFrame:
    X = df[c.model_features()].copy()
    for name in c.model_features():
        if c.features[name].type in ("category", "boolean"):
            X[name] = X[name].astype("category").cat.codes
    return X


def isolation_forest(df: pd.DataFrame, c: Contract) -> np.ndarray:
    from sklearn.ensemble import IsolationForest

    X = _features(df, c).to_numpy(dtype=float)
    pred = IsolationForest(random_state=0, n_jobs=1).fit_predict(np.nan_to_num(X))
    return np.flatnonzero(pred == -1)


def datalab(df: pd.DataFrame, c: Contract) -> np.ndarray:
    import lightgbm as lgb
    from cleanlab import Datalab
    from sklearn.model_selection import cross_val_predict
    from sklearn.preprocessing import StandardScaler

    X = _features(df, c)
    y = (df[c.label.column] == c.label.positive).astype(int).to_numpy()
    model = lgb.LGBMClassifier(n_estimators=150, verbose=-1)
    probs = cross_val_predict(model, X, y, cv=3, method="predict_proba")
    feats = StandardScaler().fit_transform(X.to_numpy(dtype=float))
    lab = Datalab(data={"y": y}, label_name="y", verbosity=0)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        lab.find_issues(
            pred_probs=probs,
            features=feats,
            issue_types={"label": {}, "outlier": {}, "near_duplicate": {}},
        )
    issues = lab.get_issues()
    flagged = np.zeros(len(df), dtype=bool)
    for col in ("is_label_issue", "is_outlier_issue", "is_near_duplicate_issue"):
        if col in issues:
            flagged |= issues[col].to_numpy(dtype=bool)
    return np.flatnonzero(flagged)


# --- class 4 of issue 11: label flipping without a trigger, with a trusted sample -----------
#
# A trusted sample (a vetted share of the data) is drawn from the clean data first; the attack
# is applied to the rest, which is audited with ``trusted=``. The rows scored are the audit's
# suspects. "oracle" is what a row-level test could reach knowing more than any audit: a model
# of the *clean* labels fitted on all rows (out of fold) ranks the rows of the label that got
# the flips by the probability of the other label; the figure is the highest recall at
# precision >= 0.5 over its thresholds (0: no threshold reaches precision 0.5).


@dataclass
class TrustedCase:
    name: str
    dataset: str
    trusted_share: float
    make: Callable[[pd.DataFrame, Contract, int], PoisonResult]
    seed: int = 0


def confident_flips(
    df: pd.DataFrame, c: Contract, rate: float, source: Any, seed: int
) -> PoisonResult:
    """Flip ``rate`` of the ``source``-labelled rows that an attacker's model (fitted on the
    clean labels) is most confident about: the flips that move a model most."""
    import lightgbm as lgb

    y = (df[c.label.column] == c.label.positive).astype(int).to_numpy()
    X = _features(df, c).to_numpy(dtype=float)
    p = lgb.LGBMClassifier(n_estimators=100, verbose=-1, n_jobs=1, random_state=seed)
    prob = p.fit(X, y).predict_proba(X)[:, 1]
    is_src = (df[c.label.column] == source).to_numpy()
    conf = prob if source == c.label.positive else 1.0 - prob
    pool = np.flatnonzero(is_src)
    k = max(1, round(rate * len(pool)))
    chosen = np.sort(pool[np.argsort(-conf[pool], kind="stable")[:k]])
    other = c.label.negative if source == c.label.positive else c.label.positive
    out = df.copy()
    out.loc[chosen, c.label.column] = other
    spec = {"attack": "confident_flip", "rate": rate, "source": source, "n_rows": int(k)}
    return PoisonResult(out, chosen.astype(np.int64), spec)


def _flip(kind: str, rate: float, source: Any, where: dict[str, Any] | None) -> Any:
    def make(d: pd.DataFrame, c: Contract, seed: int) -> PoisonResult:
        if kind == "confident":
            return confident_flips(d, c, rate, source, seed)
        return flip_labels(d, c, rate=rate, source=source, where=where, random_state=seed)

    return make


def trusted_fixed_cases() -> list[TrustedCase]:
    out = []
    for ds, pos, neg, seg in (
        ("credit", 1, 0, {"EDUCATION": 1}),
        ("fraud", 1, 0, {"channel": "online"}),
    ):
        for share in (0.05, 0.1):
            out.append(TrustedCase(f"clean data, trusted {share:.0%}", ds, share, _clean_t))
        out += [
            TrustedCase(f"random 10% of {pos} → {neg}", ds, 0.1, _flip("random", 0.1, pos, None)),
            TrustedCase(
                f"segment {seg}: 30% of {pos} → {neg}", ds, 0.1, _flip("random", 0.3, pos, seg)
            ),
            TrustedCase(
                f"most confident 10% of {pos} → {neg}", ds, 0.1, _flip("confident", 0.1, pos, None)
            ),
        ]
    return out


def _clean_t(d: pd.DataFrame, c: Contract, seed: int) -> PoisonResult:
    return _clean(d, c)


def trusted_random_cases(n: int, seed: int) -> list[TrustedCase]:
    """``n`` randomly drawn flipping attacks: data set, attack (random flips of 5-20 % of one
    class, flips of 20-50 % of one class inside one category value, flips of the 5-20 % most
    confident rows of one class), direction and trusted share (5-10 %)."""
    rng = np.random.default_rng(seed)
    out: list[TrustedCase] = []
    data = {"credit": credit_default_contract(), "fraud": card_fraud_contract()}
    for i in range(n):
        ds = "credit" if rng.random() < 0.5 else "fraud"
        c = data[ds]
        source = c.label.positive if rng.random() < 0.7 else c.label.negative
        kind = str(rng.choice(["random", "segment", "confident"]))
        share = float(rng.uniform(0.05, 0.1))
        where = None
        if kind == "segment":
            cats = [f for f in c.model_features() if c.features[f].type == "category"]
            feat = str(rng.choice(cats))
            values = list(c.features[feat].categories or [])
            where = {feat: values[int(rng.integers(len(values)))]}
            rate = float(rng.uniform(0.2, 0.5))
        else:
            rate = float(rng.uniform(0.05, 0.2))
        name = (
            f"random #{i + 1}: {kind} {rate:.0%} of {source!r}"
            + (f" in {where}" if where else "")
            + f", trusted {share:.1%}"
        )
        make = _flip("confident" if kind == "confident" else "random", rate, source, where)
        out.append(TrustedCase(name, ds, share, make, seed=int(rng.integers(1 << 31))))
    return out


@functools.cache
def _oracle_scores(dataset: str) -> np.ndarray:
    """Out-of-fold P(positive) from the clean labels of the whole data set (the oracle)."""
    import lightgbm as lgb
    from sklearn.model_selection import cross_val_predict

    df, c = _DATA[dataset]
    y = (df[c.label.column] == c.label.positive).astype(int).to_numpy()
    X = _features(df, c).to_numpy(dtype=float)
    model = lgb.LGBMClassifier(n_estimators=150, verbose=-1, n_jobs=1)
    return np.asarray(cross_val_predict(model, X, y, cv=3, method="predict_proba")[:, 1])


def oracle_recall(p_clean: np.ndarray, y_given: np.ndarray, truth: np.ndarray) -> float:
    """Highest recall at precision >= 0.5 when the rows of one given label are ranked by the
    oracle's probability of the other label (a flipped row's true label); the better label.
    Knowing which label received the flips and the clean labels' model is more than any
    audit knows: an upper bound."""
    if len(truth) == 0:
        return float("nan")
    hit = np.zeros(len(y_given), dtype=bool)
    hit[truth] = True
    best = 0.0
    for label in (0, 1):
        rows = np.flatnonzero(y_given == label)
        score = p_clean[rows] if label == 0 else 1.0 - p_clean[rows]
        order = rows[np.argsort(-score, kind="stable")]
        tp = np.cumsum(hit[order])
        ok = tp / np.arange(1, len(order) + 1) >= 0.5
        if ok.any():
            best = max(best, float(tp[ok].max() / len(truth)))
    return best


_DATA: dict[str, tuple[pd.DataFrame, Contract]] = {}
_LABEL_NOISE: dict[str, Any] = {}  # label_noise options (--trusted-level)


def run_trusted_case(case: TrustedCase) -> dict[str, Any]:
    df, c = _DATA[case.dataset]
    rng = np.random.default_rng(case.seed + 1)
    idx = rng.permutation(len(df))
    n_t = round(case.trusted_share * len(df))
    trusted = df.iloc[idx[:n_t]]
    rest_idx = idx[n_t:]
    rest = df.iloc[rest_idx].reset_index(drop=True)
    res = case.make(rest, c, case.seed)
    t0 = time.perf_counter()
    audit = audit_data(
        res.data,
        c,
        trusted=trusted,
        checks=["label_noise"],
        options={"label_noise": _LABEL_NOISE},
    )
    secs = time.perf_counter() - t0
    (f,) = [f for f in audit.report.findings if "trusted_rows" in f.evidence]
    shift = [f for f in audit.report.findings if "label_rate_shifts" in f.evidence]
    top = shift[0].evidence["label_rate_shifts"][0] if shift else None
    ours = np.asarray(audit.suspicious_rows, dtype=np.int64)
    row: dict[str, Any] = {
        "dataset": case.dataset,
        "case": case.name,
        "rows": len(res.data),
        "trusted": n_t,
        "flipped": len(res.poisoned_rows),
        "seconds": secs,
        "severity": f.severity,
        "listed": len(f.rows),  # suspects when critical, else listed for review only
        "z": f.evidence["z"],
        "expected": f.evidence["expected"],
        "shift": "-"
        if top is None
        else ("all rows" if not top["feature"] else f"{top['feature']}={top['value']!r}")
        + f" (z {top['z']:.1f})",
    }
    row.update(score(ours, res.poisoned_rows, len(res.data)))
    y_given = (res.data[c.label.column] == c.label.positive).astype(int).to_numpy()
    row["oracle_R"] = oracle_recall(
        _oracle_scores(case.dataset)[rest_idx], y_given, res.poisoned_rows
    )
    return row


def trusted_main(args: argparse.Namespace) -> None:
    _DATA.update(
        {
            "credit": (load_credit_default(), credit_default_contract()),
            "fraud": (make_card_fraud(20_000, random_state=0), card_fraud_contract()),
        }
    )
    if args.trusted_curve:
        cases = []
        for share in (0.01, 0.02, 0.05, 0.1, 0.2):
            cases += [
                TrustedCase(f"clean, trusted {share:.0%}", "credit", share, _clean_t),
                TrustedCase(
                    f"most confident 10% of 1 → 0, trusted {share:.0%}",
                    "credit",
                    share,
                    _flip("confident", 0.1, 1, None),
                ),
                TrustedCase(
                    f"random 20% of 1 → 0, trusted {share:.0%}",
                    "credit",
                    share,
                    _flip("random", 0.2, 1, None),
                ),
            ]
    elif args.trusted_random:
        cases = trusted_random_cases(args.trusted_random, args.seed)
    else:
        cases = trusted_fixed_cases()
    rows = []
    for case in cases:
        if args.case and not any(s in case.name for s in args.case):
            continue
        try:
            r = run_trusted_case(case)
        except Exception as exc:  # e.g. a segment without rows of the source label
            print(f"[{case.dataset}] {case.name}: skipped ({type(exc).__name__}: {exc})")
            continue
        rows.append(r)
        print(
            f"[{r['dataset']}] {r['case']}: rows={r['rows']} trusted={r['trusted']} "
            f"flipped={r['flipped']} flagged={r['suspected']} P={r['precision']:.3f} "
            f"R={r['recall']:.3f} clean-row flag rate={r['fp_rate']:.2%} "
            f"{r['severity']} z={r['z']:.1f} oracle R@P0.5={_fmt(r['oracle_R'])} "
            f"rate shift: {r['shift']} "
            f"({r['seconds']:.1f}s)",
            flush=True,
        )
    attacked = [r for r in rows if r["flipped"]]
    ok = [r for r in attacked if r["precision"] >= 0.5 and r["recall"] >= 0.5]
    print(f"\nflip cases with precision and recall >= 0.5: {len(ok)}/{len(attacked)}")
    for r in rows:
        if not r["flipped"]:
            print(
                f"clean {r['dataset']} with {r['trusted']} trusted rows: {r['suspected']} of "
                f"{r['rows']} rows suspected; {r['listed']} listed for review "
                f"({r['listed'] / r['rows']:.2%}; nominal 1%)"
            )
    if args.markdown:
        print(
            "\n| data | case | rows | trusted | flipped | flagged | P | R | clean-row flag rate "
            "| finding (z) | oracle R at P ≥ 0.5 | label-rate shift (first) |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"
        )
        for r in rows:
            print(
                f"| {r['dataset']} | {r['case']} | {r['rows']} | {r['trusted']} | {r['flipped']} "
                f"| {r['suspected']} | {r['precision']:.3f} | {r['recall']:.3f} "
                f"| {r['fp_rate']:.2%} | {r['severity']} ({r['z']:.1f}) | {_fmt(r['oracle_R'])} "
                f"| {r['shift']} |"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="run a representative subset")
    ap.add_argument("--case", action="append", default=[], help="substring of case names")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument(
        "--random",
        type=int,
        default=0,
        metavar="N",
        help="instead of the fixed cases, N randomly drawn trigger attacks",
    )
    ap.add_argument("--seed", type=int, default=7, help="seed of --random")
    ap.add_argument(
        "--trusted", action="store_true", help="label flips audited with a trusted sample"
    )
    ap.add_argument(
        "--trusted-random",
        type=int,
        default=0,
        metavar="N",
        help="N randomly drawn flipping attacks audited with a trusted sample",
    )
    ap.add_argument(
        "--trusted-curve",
        action="store_true",
        help="P/R against the trusted sample's size (1-20 %%) on credit",
    )
    ap.add_argument(
        "--attack-class",
        choices=ATTACK_CLASSES,
        help="with --random N: N cases of one class of issue 11 (see the module docstring)",
    )
    ap.add_argument(
        "--rows", type=int, default=200_000, help="rows of the 'repeated' class's resampled data"
    )
    ap.add_argument(
        "--fraud-rows",
        type=int,
        default=0,
        metavar="ROWS",
        help="with --random N: the fraud data drawn with ROWS rows, and every case drawn on it",
    )
    ap.add_argument(
        "--resampled",
        type=int,
        default=0,
        metavar="ROWS",
        help="instead: ROWS rows resampled from the credit data, clean and with the seed attack",
    )
    ap.add_argument(
        "--engine",
        choices=("python", "spark"),
        default="python",
        help="spark: also audit each case with the Spark engine and compare",
    )
    ap.add_argument(
        "--driver-rows", type=int, default=100_000, help="the Spark engine's driver sample"
    )
    ap.add_argument(
        "--checks",
        type=lambda v: v.split(","),
        help="comma-separated checks to run (default: all), e.g. integrity,trigger_scan",
    )
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    if args.trusted or args.trusted_random or args.trusted_curve:
        trusted_main(args)
        return
    data = {
        "credit": (load_credit_default(), credit_default_contract()),
        "fraud": (
            make_card_fraud(args.fraud_rows or 20_000, random_state=0),
            card_fraud_contract(),
        ),
    }
    rows: list[dict[str, Any]] = []
    if args.resampled:
        todo = resampled_cases(args.resampled)
    elif args.attack_class:
        todo = class_cases(args.attack_class, args.random or 5, args.seed, args.rows)
    else:
        todo = random_cases(args.random, args.seed) if args.random else cases()
    if args.fraud_rows and (args.random or args.attack_class) and args.attack_class != "repeated":
        # the same attacks (each case's seed as drawn), every one on the fraud data of that
        # size: the credit data cannot grow without repeating its records (class 5's kind)
        todo = [dataclasses.replace(case, dataset="fraud") for case in todo]
    for case in todo:
        if args.quick and case.name not in QUICK:
            continue
        if args.case and not any(s in case.name for s in args.case):
            continue
        df, contract = data[case.dataset]
        res = case.make(df, contract)
        if res.spec.get("entity"):
            contract = contract.model_copy(update={"entity": res.spec["entity"]})
        t0 = time.perf_counter()
        audit = audit_data(res.data, contract, checks=args.checks)
        secs = time.perf_counter() - t0
        n = len(res.data)
        row: dict[str, Any] = {
            "dataset": case.dataset,
            "case": case.name,
            "kind": case.kind,
            "rows": n,
            "poisoned": len(res.poisoned_rows),
            "seconds": secs,
        }
        ours = np.asarray(audit.suspicious_rows, dtype=np.int64)
        if case.kind == "label_flip":
            # Label flipping has no trigger: score the label-noise suspects.
            noise = [f for f in audit.report.findings if f.check == "label_noise" and f.rows]
            ours = np.array(sorted({r for f in noise for r in f.rows}), dtype=np.int64)
        row.update({f"tg_{k}": v for k, v in score(ours, res.poisoned_rows, n).items()})
        oracle = identifiable(res, df) if case.kind == "trigger" else None
        if oracle is not None and (oracle["unchanged"] or oracle["twins"]):
            row["unchanged"], row["twins"] = oracle["unchanged"], oracle["twins"]
            row["id_precision"], row["id_recall"] = matched_score(ours, oracle)
        # the quarantine holds the suspects and the rows breaking the contract (integrity)
        quarantined = audit.quarantine["tabguard_row"].to_numpy(dtype=np.int64)
        row["quarantine_recall"] = (
            float(np.isin(res.poisoned_rows, quarantined).mean()) if len(res.poisoned_rows) else 1.0
        )
        triggers = [
            f
            for f in audit.report.findings
            if f.check == "trigger_scan" and f.severity == "critical"
        ]
        if args.random or args.attack_class:
            extra = "".join(
                f", {k} {res.spec[k]}"
                for k in ("camouflage", "repeat", "amount_jitter", "entity")
                if k in res.spec
            )
            row["case"] = (
                f"{case.name}: {json.dumps(res.spec['trigger'])} → "
                f"{res.spec['target']} (source {res.spec['source']}, "
                f"{res.spec['mode']}, jitter {res.spec['jitter']}{extra})"
            )
            if args.attack_class not in ("band", "repeated"):  # a band has no single value
                row["asr"] = attack_success(res, contract, df)
            if args.attack_class == "inplace":
                row["oracle"] = inplace_oracle(res, contract, df)
            false = [f for f in triggers if not names_the_trigger(f, res.spec["trigger"])]
            planted = set(res.spec["trigger"])
            row["false_triggers"] = len(false)
            # of them, on the trigger's own feature(s): a band or value beside the trigger
            row["false_beside"] = sum(1 for f in false if set(f.features) & planted)
        row["named"] = "; ".join(
            " & ".join(f"{a}={b!r}" for a, b in zip(f.features, f.values, strict=False))
            for f in triggers
        )
        if not args.no_baselines:
            for name, fn in (("iforest", isolation_forest), ("datalab", datalab)):
                try:
                    row.update(
                        {
                            f"{name}_{k}": v
                            for k, v in score(fn(res.data, contract), res.poisoned_rows, n).items()
                        }
                    )
                except Exception as exc:  # a baseline failing must not hide our numbers
                    row[f"{name}_error"] = f"{type(exc).__name__}: {exc}"
        if args.engine == "spark":
            row.update(_spark_row(res.data, contract, audit, args.driver_rows, args.checks))
        rows.append(row)
        _print_row(row, args.no_baselines)
    _summary(rows, args.no_baselines, args.markdown)
    if args.engine == "spark":
        same = [r for r in rows if r["spark_same"]]
        print(f"\nspark engine: same triggers and suspects on {len(same)}/{len(rows)} cases")


def _band(v: Any) -> tuple[float, float] | None:
    """A trigger's or a finding's value as a range: ``"in [a, b]"`` (a planted band) or a
    ``[low, high]`` pair (a named band); None for a single value."""
    if isinstance(v, str) and v.startswith("in [") and v.endswith("]"):
        lo, hi = v[4:-1].split(",")
        return float(lo), float(hi)
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return float(v[0]), float(v[1])
    return None


def _same_value(a: Any, b: Any) -> bool:
    try:
        return bool(np.isclose(float(a), float(b), rtol=1e-9, atol=1e-9))
    except (TypeError, ValueError):
        return str(a) == str(b)


def covers(named: Any, planted: Any) -> bool:
    """Whether a finding's value ``named`` (a value, or a ``[low, high]`` band) holds the planted
    trigger value ``planted`` (a value, or ``"in [a, b]"``): the same value, a band around it,
    or for a planted band a value inside it or a band overlapping it."""
    nb, pb = _band(named), _band(planted)
    if nb is None and pb is None:
        return _same_value(named, planted)
    try:
        if pb is None:
            return nb[0] <= float(planted) <= nb[1]  # type: ignore[index]
        if nb is None:
            return pb[0] <= float(named) <= pb[1]
    except (TypeError, ValueError):
        return False
    return nb[0] <= pb[1] and pb[0] <= nb[1]


def names_the_trigger(finding: Any, trigger: dict[str, Any]) -> bool:
    """Whether a critical finding names the planted ``trigger`` (feature -> value): it shares a
    feature with it, and on every feature they share its value holds the trigger's
    (:func:`covers`). A band or value beside the trigger on its own feature is a false
    trigger (fraud ``customer_age=28`` named with the natural bands ``[29, 36]`` and
    ``[18, 25]`` beside it: 30 % of the clean rows quarantined)."""
    cells = zip(finding.features, finding.values, strict=False)
    shared = [(f, v) for f, v in cells if f in trigger]
    return bool(shared) and all(covers(v, trigger[f]) for f, v in shared)


def _named(findings: list[Any]) -> list[str]:
    return sorted(
        " & ".join(f"{a}={b!r}" for a, b in zip(f.features, f.values, strict=False))
        for f in findings
        if f.check == "trigger_scan" and f.severity == "critical"
    )


def _spark_row(
    data: pd.DataFrame,
    contract: Contract,
    audit: Any,
    driver_rows: int,
    checks: list[str] | None = None,
) -> dict[str, Any]:
    """The same case through the Spark engine: what it names and suspects against memory."""
    import tempfile
    from pathlib import Path

    from tabguard.spark import audit_data_spark, spark_session

    spark_session("local[2]", conf={"spark.sql.shuffle.partitions": "2"})
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "data.parquet"
        data.to_parquet(src, index=False)
        t0 = time.perf_counter()
        res = audit_data_spark(
            src, contract, Path(tmp) / "out", driver_rows=driver_rows, checks=checks
        )
        secs = time.perf_counter() - t0
    mem, spk = set(audit.suspicious_rows), set(res.suspicious_rows)
    named_mem, named_spk = _named(audit.report.findings), _named(res.report.findings)
    return {
        "spark_same": named_mem == named_spk and mem == spk,
        "spark_named": "; ".join(named_spk),
        "spark_only": sorted(spk - mem)[:20],
        "memory_only": sorted(mem - spk)[:20],
        "spark_n_only": len(spk - mem),
        "memory_n_only": len(mem - spk),
        "spark_sample": res.sample_rows,
        "spark_seconds": secs,
    }


def _fmt(v: Any) -> str:
    return (
        "-"
        if v is None or (isinstance(v, float) and np.isnan(v))
        else (f"{v:.3f}" if isinstance(v, float) else str(v))
    )


def _print_row(r: dict[str, Any], no_base: bool) -> None:
    base = (
        ""
        if no_base
        else (
            f" | iforest P={_fmt(r.get('iforest_precision'))} R={_fmt(r.get('iforest_recall'))}"
            f" | datalab P={_fmt(r.get('datalab_precision'))} R={_fmt(r.get('datalab_recall'))}"
        )
    )
    asr = f" backdoor works on {r['asr']:.0%} of rows;" if "asr" in r else ""
    if "false_triggers" in r:
        beside = r.get("false_beside", 0)
        asr += f" false triggers {r['false_triggers']}"
        asr += f" ({beside} beside the trigger);" if beside else ";"
    print(
        f"[{r['dataset']}] {r['case']}:{asr} rows={r['rows']} poisoned={r['poisoned']} "
        f"suspected={r['tg_suspected']} P={r['tg_precision']:.3f} R={r['tg_recall']:.3f} "
        f"quarantined R={r['quarantine_recall']:.3f} "
        f"fp={r['tg_fp_rate']:.4%} ({r['seconds']:.1f}s) named: {r['named'] or '-'}{base}",
        flush=True,
    )
    if "id_recall" in r:
        print(
            f"    not identifiable: {r['unchanged']} rows written in place unchanged, "
            f"{r['twins']} copies of rows that carried the trigger (either of the two counts); "
            f"matched P={r['id_precision']:.3f} R={r['id_recall']:.3f}",
            flush=True,
        )
    if r.get("oracle"):
        o = r["oracle"]
        clean_label = "(clean-label) " if "source target" in r["case"] else ""
        print(
            f"    oracle told the value {clean_label}({o['written']} rows written beside "
            f"{o['natural']} natural): labels {'yes' if o['labels'] else 'no'} (towards "
            f"{o['labels_towards']}: effect {o['effect']:.2f}, natural values up to "
            f"{o['natural_max']:.2f}, p {o['p_labels']:.1e}); rows "
            f"{'yes' if o['rows'] else 'no'} (towards {o['rows_towards']}: shift on the rows "
            f"whose context says another value {o['shift']:.2f}, p {o['p_rows']:.1e}; natural "
            f"over written AUC {o['separation']:.2f}); context "
            f"{'yes' if o['context'] else 'no'} (written share {o['context_written']:.2f} "
            f"beyond the feature's other values' {o['context_null']:.2f}, "
            f"p {o['p_context']:.1e}) -> "
            + (
                "identifiable"
                if o["labels"] or o["rows"] or o["context"]
                else "not identifiable by an oracle told the value"
            ),
            flush=True,
        )
    if "spark_same" in r:
        print(
            f"    spark ({r['spark_seconds']:.1f}s, driver sample {r['spark_sample']} rows): "
            + (
                "same triggers and suspects"
                if r["spark_same"]
                else f"named {r['spark_named'] or '-'}; suspects only spark "
                f"{r['spark_n_only']} {r['spark_only']}, only memory {r['memory_n_only']} "
                f"{r['memory_only']}"
            ),
            flush=True,
        )


def _summary(rows: list[dict[str, Any]], no_base: bool, markdown: bool) -> None:
    if not rows:
        return
    trig = [r for r in rows if r["kind"] == "trigger"]
    ok = [r for r in trig if r["tg_precision"] >= 0.95 and r["tg_recall"] >= 0.95]
    clean = [r for r in rows if r["kind"] == "clean"]
    print(f"\ntrigger cases with precision and recall >= 0.95: {len(ok)}/{len(trig)}")
    if any("id_recall" in r for r in trig):
        fair = [
            r
            for r in trig
            if r.get("id_precision", r["tg_precision"]) >= 0.95
            and r.get("id_recall", r["tg_recall"]) >= 0.95
        ]
        print(f"  the same, twins matched (see identifiable()): {len(fair)}/{len(trig)}")
    told = [r for r in trig if r.get("oracle")]
    if told:
        can = [
            r
            for r in told
            if r["oracle"]["labels"] or r["oracle"]["rows"] or r["oracle"]["context"]
        ]
        found = [r for r in can if r["tg_recall"] >= 0.95]
        print(
            f"  written in place, identifiable by an oracle told the value (inplace_oracle()): "
            f"{len(can)}/{len(told)}; of those, recall >= 0.95: {len(found)}/{len(can)}"
        )
    for r in clean:
        line = (
            f"clean {r['dataset']}: {r['tg_suspected']} of {r['rows']} rows suspected "
            f"({r['tg_suspected'] / r['rows']:.3%})"
        )
        for name in ("iforest", "datalab"):
            if not no_base and f"{name}_suspected" in r:
                k = r[f"{name}_suspected"]
                line += f"; {name} flags {k} ({k / r['rows']:.2%})"
        print(line)
    if markdown:
        head = "| data | case | rows | poisoned | tabguard P | tabguard R | trigger named |"
        sep = "|---|---|---:|---:|---:|---:|---|"
        if not no_base:
            head += " IForest P | IForest R | Datalab P | Datalab R |"
            sep += "---:|---:|---:|---:|"
        print("\n" + head + "\n" + sep)
        for r in rows:
            line = (
                f"| {r['dataset']} | {r['case']} | {r['rows']} | {r['poisoned']} | "
                f"{_fmt(r['tg_precision'])} | {_fmt(r['tg_recall'])} | "
                f"{r['named'] or '-'} |"
            )
            if not no_base:
                line += (
                    f" {_fmt(r.get('iforest_precision'))} | {_fmt(r.get('iforest_recall'))}"
                    f" | {_fmt(r.get('datalab_precision'))} |"
                    f" {_fmt(r.get('datalab_recall'))} |"
                )
            print(line)


if __name__ == "__main__":
    main()
