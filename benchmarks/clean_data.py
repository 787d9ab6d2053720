"""False alarms of the data audit on clean data: the counterpart of ``poisoning.py --random``.

Draws a family of CLEAN variants of the bundled credit data and the synthetic card-fraud data
at random from ``--seed`` and audits each: every row suspected and every critical finding is a
false alarm, since nothing was planted. The variants are what users do to their data before
training, and what issue 11 lists as data that is not poisoned:

``subsample``
    a random share (10-60 %) of the rows;
``stratified``
    a share (10-60 %) drawn per stratum of one or two categorical features and the label;
``slice``
    a contiguous block of the rows (by the id, or by a numeric feature's range): not random;
``bootstrap``
    rows resampled with replacement (0.5-2 times the size), amounts jittered by 0-3 %;
``duplicate``
    a share (30-100 %) of one label's rows repeated once, exact or with jittered amounts;
``smote``
    the minority label oversampled by interpolation between each row and one of its 5 nearest
    neighbours of that label (numbers interpolated and rounded, codes from the nearer parent);
``undersample``
    the majority label's rows undersampled to 1-4 per minority row;
``panel`` / ``panel_noentity``
    accounts over 3-12 months: the static attributes and the label constant, the amounts a
    random walk; with the contract's ``entity`` set to the account column, and without it;
``mcar``
    2-10 % of the values of a third to two thirds of the features missing completely at
    random (the contract's features with a missing value made ``nullable``, as a user would);
``mnar``
    2-4 features missing for 8-15 % of the minority label's rows and 1-4 % of the others';
``stores``
    two columns added: ``STORE`` (600 stores of Zipf-distributed sizes, every one declared) and
    its ``REGION`` (14 regions), each store with a natural effect on the label (its log-odds
    the data's plus N(0, 0.5-1.0)): rows are given stores by Bayes' rule from their label;
``definitional``
    a boolean column ``COVERED`` added that, by a rule of the world, implies one label: set
    on 5-25 % of that label's rows (more often where one numeric feature is high), never on
    the other label's (MEPS: Medicaid cover implies no private insurance).

Three kinds build data sets of their own (session 12; the ``dataset`` is ignored), the shapes of
fresh15's clean sets that were false alarms (docs/benchmarks.md, session 11, "Clean data through
the CLI"), generated so that nothing is downloaded:

``codes``
    ``make_classification`` (15,000 rows, 12 features, 4 of them informative, ``flip_y`` 2 %,
    base rate about 13 %), its first four features written as string codes of 5, 12, 25 and 40
    quantile bins (a user's binned copy of continuous scores);
``loans``
    2,000 loans observed for 18 months each, one label per loan (defaulted, about 13 %), the
    loan's attributes constant, the balance amortised, ``days_past_due`` 0 on most months and
    late more often on loans that default; ``loan_id`` declared the ``entity``;
``choice``
    long-format choice data as statsmodels' ``modechoice``: 210 travellers x 4 modes (air, train,
    bus, car), the label "this mode was chosen" (25 %), the terminal time ``ttme`` 0 for the car
    and the mode's attribute otherwise, drawn with the heaped, rounded values such surveys have;
    each traveller chooses by a logit of the modes' times and costs; ``individual`` declared the
    ``entity``, ``mode`` a category.

Three more (session 15), the shapes of fresh18's minimal repros of false alarms a user cannot
review away (docs/benchmarks.md, session 14, "Clean data through the CLI"; fresh18's scripts
are gone), 20,000 rows each, the label a function of the features plus noise:

``retention``
    mobile lines' ``monthly_fee`` on a price list (4-6 whole-pound prices), legacy x.99 prices
    (15-35 %) and a retention price off the list offered to 12-30 % of the lines, which
    churn less (fresh18's ``retention.py``: 17.50 on 20 %, 1.0 % against 4.4 %);
``tariff``
    motor claims whose windscreen claims (14-24 %) are paid at one of a glass partner's three
    tariff prices (60-85 % of them) and all but never referred (``tariff.py``);
``countdown``
    a panel of mobile lines, one row a month: ``months_to_contract_end`` counts 24- and
    12-month contracts down to 0, where a line leaves with a hazard of 15-35 % (0.6-1.5 %
    elsewhere), and SIM-only lines are always at 0 (``mte.py``).

Four more (session 16), the shapes of fresh19's minimal repros (docs/benchmarks.md, session
15, "Clean data through the CLI"; fresh19's generator is gone) and of the lead's generated
orders: units that hold both labels and rows that are near-copies by design, the label a
function of the features plus noise and a per-unit effect:

``noshow_age``
    20,000 airline passengers in bookings of 1-6 who share fare class, fare, lead time and
    channel and (85 %) the outcome, each with an age of their own; no booking reference;
``returns_sku``
    20,000 e-commerce order lines of 400 products: every column is the product's but the paid
    price and the promotion, so a product's lines at one price are one row repeated;
``labs_copies``
    13,792 emergency visits whose lab values are reported at the assays' detection limits
    when below them (the healthy visits pile onto the limits), a heart rate and the triage;
``orders_noseller``
    45,000 marketplace orders of sellers of Zipf sizes, the seller's country, rating and
    tenure in the file but not its id, ``buyer_id`` (three orders each) the ``entity``.

Three more (session 17), fresh20's expense claims (docs/benchmarks.md, session 16, "Clean data
through the CLI"; its generator is gone) and two of its minimal repros, column cuts of it:

``expenses``
    about 20,000 claims of 1,500 employees (``employee_id`` the ``entity``) in 8 categories
    under policy caps (meals and hotels claimed at the cap), per diems of 28/42/56 that need
    no receipt, and ``weekend``, 12 % of the claims independently of everything, raising the
    log-odds of ``queried`` by 0.5;
``exp_weekend``
    its ``department``, ``grade``, ``category`` and ``weekend`` with the entity;
``exp_perdiem``
    its ``department``, ``grade``, ``category``, ``days_to_submit``, ``receipt_attached`` and
    ``weekend``, no entity (a missing receipt raises the label except on per diems).

Three more (session 18, clean22), built from ``benchmarks/outside_sets.py``'s sets with the
contract ``contract infer`` drafts, not in the default draw (``--kinds`` or ``--variant``
asks for them; ``SEED`` is the script's ``--seed``):

``rentals``
    fresh21's rental applications (12,770 at seed 1; the draft's entity ``listing_id``): an
    eviction record drawn for 2 % of the applicants whatever the rest of the row, at -2.5
    log-odds;
``rent_f``
    its minimal repro: ``eviction_record``, ``rent_to_income``, ``property_manager``;
``shipments``
    parcel shipments of business shippers (``shipper_id``), an address corrected in transit
    for 2.5 % of them whatever the rest of the row, at +2.2 log-odds.

Each line prints the variant's parameters and its own seed: ``--variant SEED:KIND`` re-runs
one line alone. ``--cli`` runs each variant through the command line instead
(``tabguard audit data FILE --contract C --out DIR -q``), as a user would.

Run::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/clean_data.py --random 8 --seed 5
    .venv/bin/python benchmarks/clean_data.py --random 4 --datasets credit --kinds smote,panel
    .venv/bin/python benchmarks/clean_data.py --variant 5123:stratified --cli
    .venv/bin/python benchmarks/clean_data.py --random 6 --checks integrity,trigger_scan
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabguard.contract import Contract, FeatureSpec, infer_contract, save_contract
from tabguard.data_audit import audit_data
from tabguard.datasets import (
    card_fraud_contract,
    credit_default_contract,
    load_credit_default,
    make_card_fraud,
)

# kinds that build their own data set (the base data set is not used)
OWN_DATA = (
    "codes",
    "loans",
    "choice",
    "retention",
    "tariff",
    "countdown",
    "noshow_age",
    "returns_sku",
    "labs_copies",
    "orders_noseller",
    "expenses",
    "exp_weekend",
    "exp_perdiem",
)
# kinds built from benchmarks/outside_sets.py's sets (session 18): asked for by --kinds or
# --variant only, so that adding them leaves every earlier seed's draw of KINDS as it was
OUTSIDE = ("rentals", "rent_f", "shipments")
KINDS = (
    "subsample",
    "stratified",
    "slice",
    "bootstrap",
    "duplicate",
    "smote",
    "undersample",
    "panel",
    "panel_noentity",
    "mcar",
    "mnar",
    "stores",
    "definitional",
    *OWN_DATA,
)
DATASETS = ("credit", "fraud")


@dataclass
class Variant:
    """One clean data set: the data, its contract, and how it was drawn."""

    dataset: str
    kind: str
    seed: int
    data: pd.DataFrame
    contract: Contract
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        p = ", ".join(f"{k} {v}" for k, v in self.params.items())
        return f"{self.dataset} {self.kind} (variant {self.seed}:{self.kind}; {p})"


def base_data(dataset: str, rows: int | None) -> tuple[pd.DataFrame, Contract]:
    """The bundled data (credit: the first ``rows`` rows, default all 30,000; fraud: ``rows``
    rows generated with random_state 0, default 20,000, as ``poisoning.py`` does) and its
    contract."""
    if dataset == "credit":
        rows = rows or 30_000
        return load_credit_default().iloc[:rows].reset_index(drop=True), credit_default_contract()
    return make_card_fraud(rows or 20_000, random_state=0), card_fraud_contract()


def amounts(df: pd.DataFrame, c: Contract) -> list[str]:
    """Fine-grained numeric features (more than 100 values): the ones users jitter and that
    drift month to month (credit's bills and payments and limit, fraud's amounts)."""
    return [
        n
        for n in c.model_features()
        if c.features[n].type in ("integer", "number") and df[n].nunique() > 100
    ]


def _minority(df: pd.DataFrame, c: Contract) -> Any:
    y = df[c.label.column]
    pos = c.label.positive
    neg = c.label.negative
    return pos if (y == pos).mean() <= 0.5 else neg


def _jitter(
    df: pd.DataFrame, c: Contract, names: list[str], scale: float, rng: np.random.Generator
) -> None:
    """Multiply ``names`` by (1 + N(0, scale)) in place, integers rounded."""
    for n in names:
        x = df[n].to_numpy(dtype=float) * (1 + rng.normal(0, scale, len(df)))
        df[n] = np.round(x).astype(np.int64) if c.features[n].type == "integer" else np.round(x, 2)


def _fresh_ids(df: pd.DataFrame, c: Contract) -> pd.DataFrame:
    df = df.reset_index(drop=True)
    if c.id and c.id in df.columns:
        df[c.id] = np.arange(1, len(df) + 1)
    return df


def _categoricals(df: pd.DataFrame, c: Contract) -> list[str]:
    return [
        n
        for n in c.model_features() + [n for n in c.features if c.features[n].protected]
        if c.features[n].type in ("category", "boolean") and 2 <= df[n].nunique() <= 12
    ]


def make_variant(dataset: str, kind: str, seed: int, rows: int | None = None) -> Variant:
    """Draw variant ``kind`` of ``dataset`` from ``seed`` (the same arguments give the same
    data)."""
    if kind in OUTSIDE:
        data, c, params = _outside(seed, kind)
        params["rows"] = len(data)
        return Variant(kind, kind, seed, data, c, params)
    if kind in OWN_DATA:
        build = {
            "codes": _codes,
            "loans": _loans,
            "choice": _choice,
            "retention": _retention,
            "tariff": _tariff,
            "countdown": _countdown,
            "noshow_age": _noshow_age,
            "returns_sku": _returns_sku,
            "labs_copies": _labs_copies,
            "orders_noseller": _orders_noseller,
            "expenses": _expenses,
            "exp_weekend": lambda s, r: _expenses(s, r, "exp_weekend"),
            "exp_perdiem": lambda s, r: _expenses(s, r, "exp_perdiem"),
        }[kind]
        data, c, params = build(seed, rows)
        params["rows"] = len(data)
        return Variant(kind, kind, seed, data, c, params)
    df, c = base_data(dataset, rows)
    rng = np.random.default_rng(seed)
    label = c.label.column
    y = df[label].to_numpy()
    minority = _minority(df, c)
    params: dict[str, Any] = {"base_rows": len(df)}
    if kind == "subsample":
        frac = float(rng.uniform(0.1, 0.6))
        data = df.sample(frac=frac, random_state=seed)
        params["frac"] = round(frac, 3)
    elif kind == "stratified":
        frac = float(rng.uniform(0.1, 0.6))
        cats = _categoricals(df, c)
        by = list(rng.choice(cats, min(len(cats), int(rng.integers(1, 3))), replace=False))
        data = df.groupby([*by, label], group_keys=False).sample(frac=frac, random_state=seed)
        params.update(frac=round(frac, 3), strata=" x ".join([*map(str, by), label]))
    elif kind == "slice":
        frac = float(rng.uniform(0.2, 0.6))
        nums = amounts(df, c)
        if c.id is None or rng.random() < 0.5:
            col = str(rng.choice(nums))
        else:
            col = c.id
        order = df[col].rank(method="first").to_numpy() - 1
        start = int(rng.integers(0, int(len(df) * (1 - frac)) + 1))
        data = df[(order >= start) & (order < start + int(frac * len(df)))]
        params.update(by=col, frac=round(frac, 3), start=start)
    elif kind == "bootstrap":
        size = float(rng.uniform(0.5, 2.0))
        jit = float(rng.choice([0.0, rng.uniform(0.005, 0.03)]))
        data = df.iloc[rng.integers(0, len(df), int(size * len(df)))].reset_index(drop=True)
        _jitter(data, c, amounts(df, c), jit, rng)
        params.update(size=round(size, 3), amount_jitter=round(jit, 4))
    elif kind == "duplicate":
        which = (
            minority
            if rng.random() < 0.75
            else (c.label.negative if minority == c.label.positive else c.label.positive)
        )
        share = float(rng.uniform(0.3, 1.0))
        jit = float(rng.choice([0.0, rng.uniform(0.01, 0.03)]))
        src = np.flatnonzero(y == which)
        extra = df.iloc[rng.choice(src, int(share * len(src)), replace=False)].copy()
        extra = extra.reset_index(drop=True)
        _jitter(extra, c, amounts(df, c), jit, rng)
        data = pd.concat([df, extra], ignore_index=True)
        params.update(label=_plain(which), share=round(share, 3), amount_jitter=round(jit, 4))
    elif kind == "smote":
        ratio = float(rng.uniform(0.5, 1.0))
        data, n_new = _smote(df, c, minority, ratio, rng)
        params.update(label=_plain(minority), to_ratio=round(ratio, 3), synthetic=n_new)
    elif kind == "undersample":
        per = float(rng.uniform(1.0, 4.0))
        mino = np.flatnonzero(y == minority)
        majo = np.flatnonzero(y != minority)
        keep = rng.choice(majo, min(len(majo), int(per * len(mino))), replace=False)
        data = df.iloc[np.sort(np.concatenate([mino, keep]))]
        params.update(majority_per_minority=round(per, 3))
    elif kind in ("panel", "panel_noentity"):
        accounts = int(rng.integers(len(df) // 8, len(df) // 4 + 1))
        drift = float(rng.uniform(0.03, 0.10))
        data = _panel(df, c, accounts, drift, rng)
        params.update(accounts=accounts, months="3-12", amount_drift=round(drift, 3))
        if kind == "panel":
            c = c.model_copy(update={"entity": "ACCOUNT"})
            params["entity"] = "ACCOUNT"
    elif kind == "mcar":
        share = float(rng.uniform(0.02, 0.10))
        feats = c.model_features()
        k = int(rng.integers(max(1, len(feats) // 3), max(2, 2 * len(feats) // 3) + 1))
        cols = sorted(rng.choice(feats, k, replace=False).tolist(), key=feats.index)
        data = df.copy()
        for n in cols:
            data[n] = data[n].mask(rng.random(len(data)) < share)
        c = _nullable(c, cols)
        params.update(
            share=round(share, 3), features=len(cols), missing=int(data[cols].isna().sum().sum())
        )
    elif kind == "mnar":
        hi = float(rng.uniform(0.08, 0.15))
        lo = float(rng.uniform(0.01, 0.04))
        feats = c.model_features()
        cols = sorted(
            rng.choice(feats, int(rng.integers(2, 5)), replace=False).tolist(), key=feats.index
        )
        data = df.copy()
        rate = np.where(y == minority, hi, lo)
        for n in cols:
            data[n] = data[n].mask(rng.random(len(data)) < rate)
        c = _nullable(c, cols)
        params.update(
            features=",".join(cols),
            minority_missing=round(hi, 3),
            others_missing=round(lo, 3),
            missing=int(data[cols].isna().sum().sum()),
        )
    elif kind == "stores":
        sd = float(rng.uniform(0.5, 1.0))
        data, c = _stores(df, c, sd, rng)
        params.update(stores=600, regions=14, store_effect_sd=round(sd, 3))
    elif kind == "definitional":
        which = c.label.negative if rng.random() < 0.5 else c.label.positive
        share = float(rng.uniform(0.05, 0.25))
        nums = [n for n in c.model_features() if c.features[n].type in ("integer", "number")]
        by = str(rng.choice(nums))
        data = df.copy()
        src = np.flatnonzero(y == which)
        x = data[by].to_numpy(dtype=float)[src]
        z = (x - np.nanmean(x)) / max(float(np.nanstd(x)), 1e-9)
        w = np.exp(np.clip(np.nan_to_num(z), -3, 3))
        pick = rng.choice(src, max(1, int(share * len(src))), replace=False, p=w / w.sum())
        covered = np.zeros(len(data), dtype=bool)
        covered[pick] = True
        data["COVERED"] = covered
        c = c.model_copy(
            update={"features": {**c.features, "COVERED": FeatureSpec(type="boolean")}}
        )
        params.update(
            implies=_plain(which), share=round(share, 3), more_often_with=by, covered=len(pick)
        )
    else:
        raise ValueError(f"unknown variant kind {kind!r}; one of {', '.join(KINDS)}")
    if kind in (
        "subsample",
        "stratified",
        "slice",
        "undersample",
        "mcar",
        "mnar",
        "stores",
        "definitional",
    ):
        data = data.reset_index(drop=True)  # ids unique already: kept
    else:
        data = _fresh_ids(data, c)
    params["rows"] = len(data)
    return Variant(dataset, kind, seed, data, c, params)


def _numeric_spec(x: pd.Series, kind: str = "number") -> FeatureSpec:
    """A numeric feature's contract entry, its range rounded outward (as a reviewed draft)."""
    lo, hi = float(x.min()), float(x.max())
    span = max(hi - lo, 1.0)
    return FeatureSpec(
        type=kind, min=float(np.floor(lo - 0.05 * span)), max=float(np.ceil(hi + 0.05 * span))
    )


def _codes(seed: int, rows: int | None = None) -> tuple[pd.DataFrame, Contract, dict[str, Any]]:
    """``make_classification`` (``rows``, default 15,000) with its first four (informative)
    features as quantile codes."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows or 15_000,
        n_features=12,
        n_informative=4,
        n_redundant=2,
        weights=[0.87],
        flip_y=0.02,
        shuffle=False,
        random_state=seed % (2**31),
    )
    df = pd.DataFrame(np.round(x, 4), columns=[f"x{i}" for i in range(12)])
    feats: dict[str, FeatureSpec] = {}
    for i, bins in enumerate((5, 12, 25, 40)):
        codes = pd.qcut(df[f"x{i}"], bins, labels=False, duplicates="drop").astype(int)
        names = [f"K{b:02d}" for b in range(int(codes.max()) + 1)]
        df[f"code{i}"] = np.asarray(names, dtype=object)[codes.to_numpy()]
        feats[f"code{i}"] = FeatureSpec(type="category", categories=names)
    df = df.drop(columns=[f"x{i}" for i in range(4)])
    for n in [f"x{i}" for i in range(4, 12)]:
        feats[n] = _numeric_spec(df[n])
    df["target"] = y.astype(int)
    c = Contract(
        name="codes", label={"column": "target", "positive": 1, "negative": 0}, features=feats
    )
    return df, c, {"base_rate": round(float(y.mean()), 3), "code_bins": "5,12,25,40"}


def _loans(seed: int, rows: int | None = None) -> tuple[pd.DataFrame, Contract, dict[str, Any]]:
    """2,000 loans (``rows`` / 18) x 18 months, one label per loan, ``days_past_due`` late
    more often where the loan defaults; ``loan_id`` is the entity."""
    rng = np.random.default_rng(seed)
    months = 18
    n = max(rows // months, 20) if rows else 2_000
    income = np.round(np.exp(rng.normal(np.log(52_000), 0.45, n)), -2)
    amount = np.round(np.clip(income * rng.uniform(0.1, 0.6, n), 1_000, None), -2)
    grade = rng.choice(list("ABCDEFG"), n, p=[0.17, 0.28, 0.25, 0.15, 0.09, 0.04, 0.02])
    g = np.searchsorted(list("ABCDEFG"), grade)
    rate = np.round(6.0 + 3.2 * g + rng.normal(0, 1.0, n), 2)
    term = rng.choice([36, 60], n, p=[0.7, 0.3])
    purpose = rng.choice(["debt", "card", "home", "car", "other"], n)
    risk = -3.45 + 0.45 * g + 1.2 * (amount / income) - 0.3 * np.log(income / 52_000)
    risk += rng.normal(0, 0.5, n)
    defaulted = rng.random(n) < 1 / (1 + np.exp(-risk))
    loan = np.repeat(np.arange(1, n + 1), months)
    month = np.tile(np.arange(1, months + 1), n)
    i = loan - 1
    # late payments: a few on any loan, more and later on the loans that default
    p_late = np.where(defaulted[i], 0.08 + 0.3 * month / months, 0.02)
    late = rng.random(n * months) < p_late
    dpd = np.where(late, rng.choice([15, 30, 60, 90], n * months, p=[0.5, 0.3, 0.15, 0.05]), 0)
    balance = np.round(
        amount[i] * np.clip(1 - month / term[i], 0, 1) * rng.uniform(0.98, 1.02, n * months), 2
    )
    df = pd.DataFrame(
        {
            "loan_id": loan,
            "month": month,
            "loan_amount": amount[i],
            "annual_income": income[i],
            "grade": grade[i],
            "interest_rate": rate[i],
            "term": term[i],
            "purpose": purpose[i],
            "balance": balance,
            "days_past_due": dpd,
            "defaulted": defaulted[i].astype(int),
        }
    )
    feats = {
        "month": FeatureSpec(type="integer", min=1, max=months),
        "loan_amount": _numeric_spec(df["loan_amount"]),
        "annual_income": _numeric_spec(df["annual_income"]),
        "grade": FeatureSpec(type="category", categories=list("ABCDEFG")),
        "interest_rate": _numeric_spec(df["interest_rate"]),
        "term": FeatureSpec(type="category", categories=[36, 60]),
        "purpose": FeatureSpec(
            type="category", categories=["debt", "card", "home", "car", "other"]
        ),
        "balance": FeatureSpec(
            type="number", min=0, max=float(np.ceil(df["balance"].max() * 1.05))
        ),
        "days_past_due": FeatureSpec(type="integer", min=0, max=120),
    }
    c = Contract(
        name="loans",
        entity="loan_id",
        label={"column": "defaulted", "positive": 1, "negative": 0},
        features=feats,
    )
    return df, c, {"loans": n, "months": months, "base_rate": round(float(defaulted.mean()), 3)}


_MODES = ("air", "train", "bus", "car")


def _choice(seed: int, rows: int | None = None) -> tuple[pd.DataFrame, Contract, dict[str, Any]]:
    """Long-format choice data shaped as statsmodels' ``modechoice``: 210 travellers x 4 modes,
    one chosen per traveller by a logit of the modes' terminal times and costs. As in that
    file, the terminal time ``ttme`` is 0 for the car, the traveller's own (heaped) answer for
    the mode chosen, and one of two standard values of the route for the modes not chosen
    (air 69 or 64, train 34 or 44, bus 35 or 53): every mode not chosen sits on a standard
    value, every other mode chosen off them. ``rows`` / 4 travellers (default 210)."""
    rng = np.random.default_rng(seed)
    n = max(rows // 4, 20) if rows else 210
    hinc = np.round(np.exp(rng.normal(np.log(30), 0.6, n))).clip(2, 80)
    psize = rng.choice([1, 2, 3, 4, 5, 6], n, p=[0.55, 0.2, 0.1, 0.1, 0.03, 0.02])
    dist = np.exp(rng.normal(np.log(400), 0.4, n))  # km, the trip's
    route = rng.integers(0, 2, n)
    standard = {"air": (69, 64), "train": (34, 44), "bus": (35, 53)}
    asc = {"air": 1.8, "train": 0.6, "bus": 0.0, "car": -1.8}
    util = np.zeros((n, 4))
    cols = []
    for k, mode in enumerate(_MODES):
        if mode == "car":
            std = true = np.zeros(n)
        else:
            std = np.asarray(standard[mode], dtype=float)[route]
            true = np.clip(rng.normal(std, 0.4 * std), 1, 99)
        speed = {"air": 500.0, "train": 110.0, "bus": 80.0, "car": 90.0}[mode]
        invt = np.round(60 * dist / speed * rng.uniform(0.8, 1.2, n))
        cost = {"air": 0.25, "train": 0.12, "bus": 0.08, "car": 0.07}[mode]
        invc = np.round(dist * cost * rng.uniform(0.7, 1.3, n) * (psize if mode != "car" else 1))
        gc = np.round(invc + hinc / 60 * invt / 10)
        util[:, k] = asc[mode] - 0.05 * true - 0.015 * gc - 0.002 * invt
        # the answer a traveller gives for the mode taken: heaped on multiples of 5
        said = np.where(rng.random(n) < 0.7, 5 * np.round(true / 5), np.round(true)).clip(1, 99)
        said = np.where(np.isin(said, standard.get(mode, ())), said + 1, said)
        cols.append((mode, std, said, invc, invt, gc))
    chosen = np.argmax(util + rng.gumbel(size=(n, 4)), axis=1)
    parts = []
    for k, (mode, std, said, invc, invt, gc) in enumerate(cols):
        ttme = np.where(chosen == k, said, std) if mode != "car" else std
        parts.append(
            pd.DataFrame(
                {
                    "individual": np.arange(1, n + 1),
                    "mode": mode,
                    "choice": (chosen == k).astype(int),
                    "ttme": ttme.astype(int),
                    "invc": invc.astype(int),
                    "invt": invt.astype(int),
                    "gc": gc.astype(int),
                    "hinc": hinc.astype(int),
                    "psize": psize,
                }
            )
        )
    df = pd.concat(parts).sort_values(["individual", "mode"], kind="stable").reset_index(drop=True)
    feats = {
        "mode": FeatureSpec(type="category", categories=list(_MODES)),
        "ttme": FeatureSpec(type="integer", min=0, max=100),
        "invc": _numeric_spec(df["invc"], "integer"),
        "invt": _numeric_spec(df["invt"], "integer"),
        "gc": _numeric_spec(df["gc"], "integer"),
        "hinc": FeatureSpec(type="integer", min=0, max=100),
        "psize": FeatureSpec(type="integer", min=1, max=6),
    }
    c = Contract(
        name="choice",
        entity="individual",
        label={"column": "choice", "positive": 1, "negative": 0},
        features=feats,
    )
    shares = np.bincount(chosen, minlength=4) / n
    return (
        df,
        c,
        {
            "travellers": n,
            "chosen": "/".join(f"{m} {s:.2f}" for m, s in zip(_MODES, shares, strict=True)),
        },
    )


def _calibrated(logit: np.ndarray, target: float, rows: np.ndarray | None = None) -> np.ndarray:
    """``logit`` shifted so that the mean probability over ``rows`` (default every row) is
    ``target``; the probabilities of every row."""
    at = np.ones(len(logit), dtype=bool) if rows is None else rows
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(logit[at] + mid)))) < target:
            lo = mid
        else:
            hi = mid
    return 1 / (1 + np.exp(-(logit + (lo + hi) / 2)))


def _retention(seed: int, rows: int | None = None) -> tuple[pd.DataFrame, Contract, dict[str, Any]]:
    """Mobile lines on a price list (4-6 whole-pound fees), legacy x.99 prices from 9.99 to
    59.99 (15-35 % of the lines) and a retention price (12.50-27.50, off the list) offered to
    12-30 % of the lines, longer-tenured ones more often, in place of their plan's fee; their
    data use stays their plan's. The label ``churn`` follows support calls, tenure and the fee
    (0-0.02 log-odds a pound), and the retention price lowers it (a log-odds of -1.2 to
    -2.0: fresh18's ``retention.py``, 17.50 on 20 % of the lines, churning at 1.0 % against
    4.4 %). ``rows`` lines (default 20,000)."""
    rng = np.random.default_rng(seed)
    n = rows or 20_000
    prices = [10, 12, 15, 20, 25, 30, 35, 40, 45, 50]
    listed = np.sort(rng.choice(prices, int(rng.integers(4, 7)), replace=False))
    legacy_share = float(rng.uniform(0.15, 0.35))
    retain_price = float(rng.choice([12.5, 17.5, 22.5, 27.5]))
    retain_share = float(rng.uniform(0.12, 0.30))
    targeting = float(rng.uniform(0.0, 1.0))
    strength = float(rng.uniform(1.2, 2.0))
    base = float(rng.uniform(0.03, 0.06))
    per_pound = float(rng.uniform(0.0, 0.02))
    tenure = np.clip(1 + rng.geometric(1 / 30, n), 1, 120)
    legacy = rng.random(n) < legacy_share
    plan = np.where(
        legacy,
        rng.integers(9, 60, n) + 0.99,
        rng.choice(listed, n, p=rng.dirichlet(np.full(len(listed), 2.0))).astype(float),
    )
    # the offer goes to a share of the lines, the longer-tenured more often when targeted
    z = (np.log(tenure) - np.log(tenure).mean()) / np.log(tenure).std()
    offer = _calibrated(targeting * z, retain_share) > rng.random(n)
    fee = np.where(offer, retain_price, plan)
    data_gb = np.round(np.exp(rng.normal(np.log(plan / 4), 0.6)), 1)
    calls = np.clip(rng.poisson(0.7, n), 0, 8)
    logit = 0.45 * calls - 0.5 * np.log(tenure / 24) + per_pound * (fee - 25) - strength * offer
    churn = rng.random(n) < _calibrated(logit, base, ~offer)
    df = pd.DataFrame(
        {
            "monthly_fee": fee,
            "tenure_months": tenure.astype(int),
            "data_gb": data_gb,
            "support_calls": calls.astype(int),
            "churn": churn.astype(int),
        }
    )
    feats = {
        "monthly_fee": _numeric_spec(df["monthly_fee"]),
        "tenure_months": FeatureSpec(type="integer", min=0, max=130),
        "data_gb": _numeric_spec(df["data_gb"]),
        "support_calls": FeatureSpec(type="integer", min=0, max=12),
    }
    c = Contract(
        name="retention", label={"column": "churn", "positive": 1, "negative": 0}, features=feats
    )
    return (
        df,
        c,
        {
            "price_list": "/".join(str(int(x)) for x in listed),
            "legacy": round(legacy_share, 2),
            "retention": f"{retain_price:.2f} on {offer.mean():.1%}",
            "churn": f"{churn[offer].mean():.1%} against {churn[~offer].mean():.1%}",
            "targeting": round(targeting, 2),
            "per_pound": round(per_pound, 3),
        },
    )


_CLAIM_TYPES = {  # median amount, spread, share of police reports, log-odds of a referral
    "collision": (2_500.0, 0.8, 0.5, 0.0),
    "theft": (6_000.0, 0.7, 0.9, 1.0),
    "vandalism": (800.0, 0.6, 0.6, 0.3),
    "fire": (9_000.0, 0.9, 0.8, 1.2),
    "weather": (1_800.0, 0.7, 0.1, -0.2),
    "injury": (12_000.0, 0.9, 0.7, 0.8),
    "windscreen": (480.0, 0.35, 0.02, -0.5),
}


def _tariff(seed: int, rows: int | None = None) -> tuple[pd.DataFrame, Contract, dict[str, Any]]:
    """Motor claims whose windscreen claims (14-24 % of them) are paid at one of a glass
    partner's three tariff prices (60-85 % of them; the prices drawn, one of them most used)
    or at their own amount; the label ``referred_siu`` follows the claim type, amount, days to
    report, the hour, a police report, a young driver and a new policy, and a claim paid at
    the tariff is all but never referred (a log-odds of -1.2 to -2.2: fresh18's
    ``tariff.py``, 385.00, 450.00 and 625.00, 450.00 on 9.3 % of the claims, referred 0.6 %
    against 7.6 %). ``rows`` claims (default 20,000)."""
    rng = np.random.default_rng(seed)
    n = rows or 20_000
    names = list(_CLAIM_TYPES)
    w = float(rng.uniform(0.14, 0.24))
    share = np.append(rng.dirichlet(np.full(len(names) - 1, 3.0)) * (1 - w), w)
    kind = rng.choice(len(names), n, p=share)
    med, spread, police, risk = (np.array([v[i] for v in _CLAIM_TYPES.values()]) for i in range(4))
    amount = np.round(np.exp(rng.normal(np.log(med[kind]), spread[kind])), 2)
    p1 = 5 * round(float(rng.uniform(300, 400)) / 5)
    p2 = p1 + 5 * round(float(rng.uniform(40, 100)) / 5)
    p3 = p2 + 5 * round(float(rng.uniform(100, 220)) / 5)
    prices = np.array([p1, p2, p3], dtype=float)
    tariff_share = float(rng.uniform(0.6, 0.85))
    glass = kind == names.index("windscreen")
    tariff = glass & (rng.random(n) < tariff_share)
    amount = np.where(tariff, prices[rng.choice(3, n, p=rng.dirichlet([2.0, 5.0, 1.5]))], amount)
    days = np.clip(rng.geometric(1 / 6, n) - 1, 0, 90)
    hour = rng.choice(24, n, p=np.r_[np.full(7, 0.015), np.full(17, (1 - 0.105) / 17)])
    report = rng.random(n) < police[kind]
    driver_age = np.clip(np.round(rng.normal(45, 14, n)), 18, 90)
    cover = np.clip(rng.geometric(1 / 40, n), 1, 240)  # months on cover
    vehicle = np.round(np.exp(rng.normal(np.log(14_000), 0.5, n)), -2)
    strength = float(rng.uniform(1.2, 2.2))
    base = float(rng.uniform(0.06, 0.09))
    logit = (
        risk[kind]
        + 0.35 * np.log(amount / 1_000)
        + 0.03 * days
        + 0.6 * (hour < 6)
        - 0.8 * report
        + 0.6 * (cover <= 3)
        + 0.4 * (driver_age < 25)
        - strength * tariff
        + rng.normal(0, 0.5, n)
    )
    referred = rng.random(n) < _calibrated(logit, base, ~tariff)
    df = pd.DataFrame(
        {
            "claim_type": np.asarray(names, dtype=object)[kind],
            "claim_amount": amount,
            "days_to_report": days.astype(int),
            "hour": hour.astype(int),
            "police_report": report.astype(int),
            "driver_age": driver_age.astype(int),
            "months_on_cover": cover.astype(int),
            "vehicle_value": vehicle,
            "referred_siu": referred.astype(int),
        }
    )
    feats = {
        "claim_type": FeatureSpec(type="category", categories=names),
        "claim_amount": _numeric_spec(df["claim_amount"]),
        "days_to_report": FeatureSpec(type="integer", min=0, max=100),
        "hour": FeatureSpec(type="integer", min=0, max=23),
        "police_report": FeatureSpec(type="category", categories=[0, 1]),
        "driver_age": FeatureSpec(type="integer", min=17, max=100),
        "months_on_cover": FeatureSpec(type="integer", min=0, max=260),
        "vehicle_value": _numeric_spec(df["vehicle_value"]),
    }
    c = Contract(
        name="tariff",
        label={"column": "referred_siu", "positive": 1, "negative": 0},
        features=feats,
    )
    top = int(np.argmax(np.bincount(np.searchsorted(prices, amount[tariff]), minlength=3)))
    return (
        df,
        c,
        {
            "tariff": "/".join(f"{x:.2f}" for x in prices),
            "windscreen": round(w, 2),
            "at_tariff": round(tariff_share, 2),
            "top_price": f"{prices[top]:.2f} on {np.mean(amount == prices[top]):.1%}",
            "referred": f"{referred[tariff].mean():.1%} against {referred[~tariff].mean():.1%}",
        },
    )


def _countdown(seed: int, rows: int | None = None) -> tuple[pd.DataFrame, Contract, dict[str, Any]]:
    """Mobile lines on 24-month, 12-month and SIM-only contracts (SIM-only 20-40 %), one row
    a line and month for up to 24 months: ``months_to_contract_end`` counts a contract down
    to 0, where the line leaves with a hazard of 15-35 % or renews (back to 23 or 11), and
    leaves with a hazard of 0.6-1.5 % in the other months; a SIM-only line is always at 0 (a
    rolling month) and leaves with a hazard of 2-6 %; support calls raise the hazard. The
    label ``churn`` is 1 on a leaving line's last row (fresh18's ``mte.py``: 25 % at 0, 1 %
    elsewhere). ``rows`` rows (default 20,000)."""
    rng = np.random.default_rng(seed)
    n = rows or 20_000
    sim = float(rng.uniform(0.2, 0.4))
    at_end, elsewhere, rolling = (
        float(rng.uniform(0.15, 0.35)),
        float(rng.uniform(0.006, 0.015)),
        float(rng.uniform(0.02, 0.06)),
    )
    names = np.array(["24m", "12m", "sim_only"], dtype=object)
    fees = ([22.0, 28.0, 35.0, 42.0], [22.0, 28.0, 35.0, 42.0], [8.0, 10.0, 12.0, 15.0])
    cols: dict[str, list[Any]] = {
        k: [] for k in ("contract_type", "months_to_contract_end", "monthly_fee", "support_calls")
    }
    churn: list[int] = []
    while len(churn) < n:
        kind = int(rng.choice(3, p=[(1 - sim) * 0.6, (1 - sim) * 0.4, sim]))
        length = (24, 12, 1)[kind]
        mte = int(rng.integers(0, length))
        fee = float(rng.choice(fees[kind]))
        for _ in range(int(rng.integers(1, 25))):
            calls = min(int(rng.poisson(0.6)), 8)
            hazard = rolling if kind == 2 else (at_end if mte == 0 else elsewhere)
            left = rng.random() < min(hazard * np.exp(0.3 * (calls - 0.6)), 0.95)
            for k, x in zip(cols, (names[kind], mte, fee, calls), strict=True):
                cols[k].append(x)
            churn.append(int(left))
            if left or len(churn) >= n:
                break
            mte = length - 1 if mte == 0 else mte - 1
    df = pd.DataFrame({**cols, "churn": churn})
    feats = {
        "contract_type": FeatureSpec(type="category", categories=list(names)),
        "months_to_contract_end": FeatureSpec(type="integer", min=0, max=24),
        "monthly_fee": FeatureSpec(type="number", min=0, max=60),
        "support_calls": FeatureSpec(type="integer", min=0, max=12),
    }
    c = Contract(
        name="countdown", label={"column": "churn", "positive": 1, "negative": 0}, features=feats
    )
    m, y = df["months_to_contract_end"].to_numpy(), df["churn"].to_numpy()
    return (
        df,
        c,
        {
            "sim_only": round(sim, 2),
            "hazard": f"{at_end:.2f} at 0, {elsewhere:.3f} elsewhere, sim {rolling:.3f}",
            "at_0": f"{np.mean(m == 0):.0%}",
            "churn": f"{y[m == 0].mean():.1%} at 0, {y[m == 1].mean():.1%} at 1",
        },
    )


def _noshow_age(
    seed: int, rows: int | None = None
) -> tuple[pd.DataFrame, Contract, dict[str, Any]]:
    """Airline passengers (``rows``, default 20,000) in bookings of 1-6 who share the booking's
    fare class, fare (one published fare per route and class, whole euros), days before
    departure and channel, and (85 %) its outcome; the age is each passenger's own. No booking
    reference in the file (fresh19's ``noshow_age`` repro, session 15). The label ``no_show``
    (about 5.5 %) follows the fare class (flexible and business fares no-show more), the
    channel (corporate bookings more), the lead time and a booking effect N(0, 0.6): every
    value is natural, and group passengers are near-copies of each other by design."""
    rng = np.random.default_rng(seed)
    n = rows or 20_000
    routes = int(rng.integers(25, 41))
    classes = np.array(["basic", "standard", "flex", "business"], dtype=object)
    base = np.exp(rng.normal(np.log(90), 0.45, routes))
    fares = np.round(base[:, None] * np.array([1.0, 1.35, 1.9, 3.2])[None, :])
    channels = np.array(["web", "app", "agency", "corporate"], dtype=object)
    b = int(n / 1.8) + 50
    size = rng.choice([1, 2, 3, 4, 5, 6], b, p=[0.55, 0.25, 0.08, 0.07, 0.03, 0.02])
    chan = rng.choice(4, b, p=[0.45, 0.25, 0.15, 0.15])
    corporate = chan == 3
    cls = np.where(
        corporate,
        rng.choice(4, b, p=[0.1, 0.3, 0.35, 0.25]),
        rng.choice(4, b, p=[0.4, 0.4, 0.15, 0.05]),
    )
    route = rng.integers(0, routes, b)
    days = np.clip(
        np.round(np.exp(rng.normal(np.where(corporate, np.log(7), np.log(30)), 1.0))), 0, 330
    ).astype(int)
    logit = (
        0.9 * (cls == 2)
        + 0.6 * (cls == 3)
        + 0.25 * corporate
        - 0.15 * np.log1p(days)
        + rng.normal(0, 0.6, b)
    )
    p = _calibrated(logit, 0.055)
    booked = rng.random(b) < p
    i = np.repeat(np.arange(b), size)[:n]
    first = np.r_[True, i[1:] != i[:-1]]
    # the first passenger an adult; companions adults or, in parties of three or more, children
    child = ~first & (size[i] >= 3) & (rng.random(len(i)) < 0.45)
    age = np.where(child, rng.integers(2, 18, len(i)), np.round(rng.normal(42, 13, len(i))))
    own = rng.random(len(i)) < p[i]
    no_show = np.where(rng.random(len(i)) < 0.85, booked[i], own)
    df = pd.DataFrame(
        {
            "fare_class": classes[cls[i]],
            "fare": fares[route[i], cls[i]],
            "days_before_departure": days[i],
            "channel": channels[chan[i]],
            "passenger_age": np.clip(age, 0, 90).astype(int),
            "no_show": no_show.astype(int),
        }
    )
    feats = {
        "fare_class": FeatureSpec(type="category", categories=list(classes)),
        "fare": _numeric_spec(df["fare"]),
        "days_before_departure": FeatureSpec(type="integer", min=0, max=365),
        "channel": FeatureSpec(type="category", categories=list(channels)),
        "passenger_age": FeatureSpec(type="integer", min=0, max=100),
    }
    c = Contract(
        name="noshow_age", label={"column": "no_show", "positive": 1, "negative": 0}, features=feats
    )
    corp = df["channel"].to_numpy() == "corporate"
    y = df["no_show"].to_numpy()
    return (
        df,
        c,
        {
            "routes": routes,
            "bookings": int(i[-1]) + 1,
            "no_show": f"{y.mean():.1%}",
            "corporate": f"{corp.mean():.0%} of passengers, {y[corp].mean():.1%} against "
            f"{y[~corp].mean():.1%}",
        },
    )


_RETURN_CATEGORIES = {  # median list price, log-odds of a return against the data's
    "apparel": (39.0, 0.9),
    "shoes": (79.0, 0.6),
    "electronics": (149.0, -0.5),
    "home": (45.0, -0.6),
    "beauty": (24.0, -1.6),
    "toys": (29.0, -1.0),
    "sports": (59.0, -0.1),
}


def _returns_sku(
    seed: int, rows: int | None = None
) -> tuple[pd.DataFrame, Contract, dict[str, Any]]:
    """E-commerce order lines (``rows``, default 20,000) of 400 products (``sku``) in 7
    categories, each with an x.99 list price and a return effect N(0, 0.35), bought by
    customers of 1-15 lines with a return propensity N(0, 0.6) each (no customer column);
    22 % of the lines in a promotion at the product's promo price (70 % or 50 % of the list
    price, to x.99). Every column is the product's but ``paid_price`` and ``promo``, so the
    lines of one product at one price are one record repeated by design (fresh19's
    ``returns_sku`` repro, session 15). The label ``returned`` (about 27 %) follows the
    category, the product, the customer and the promotion."""
    rng = np.random.default_rng(seed)
    n = rows or 20_000
    names = list(_RETURN_CATEGORIES)
    k = 400
    cat = rng.choice(len(names), k, p=rng.dirichlet(np.full(len(names), 8.0)))
    med, lean = (np.array([v[i] for v in _RETURN_CATEGORIES.values()]) for i in range(2))
    list_price = np.floor(np.exp(rng.normal(np.log(med[cat]), 0.5))) + 0.99
    promo_price = np.floor(list_price * rng.choice([0.7, 0.5], k)) + 0.99
    effect = rng.normal(0, 0.35, k)
    popularity = 1.0 / np.arange(1, k + 1) ** 0.8
    sku = rng.choice(k, n, p=rng.permutation(popularity / popularity.sum()))
    customers = rng.normal(0, 0.6, n)[np.minimum(rng.geometric(1 / 4, n), 15).cumsum() % n]
    promo = rng.random(n) < 0.22
    logit = lean[cat[sku]] + effect[sku] + customers + 0.25 * promo
    returned = rng.random(n) < _calibrated(logit, 0.27)
    df = pd.DataFrame(
        {
            "sku": np.array([f"SKU-{i:04d}" for i in range(k)], dtype=object)[sku],
            "category": np.asarray(names, dtype=object)[cat[sku]],
            "list_price": list_price[sku],
            "paid_price": np.where(promo, promo_price[sku], list_price[sku]),
            "promo": promo,
            "returned": returned.astype(int),
        }
    )
    feats = {
        "sku": FeatureSpec(type="category", categories=[f"SKU-{i:04d}" for i in range(k)]),
        "category": FeatureSpec(type="category", categories=names),
        "list_price": _numeric_spec(df["list_price"]),
        "paid_price": _numeric_spec(df["paid_price"]),
        "promo": FeatureSpec(type="boolean"),
    }
    c = Contract(
        name="returns_sku",
        label={"column": "returned", "positive": 1, "negative": 0},
        features=feats,
    )
    by_cat = df.groupby("category")["returned"].mean()
    return (
        df,
        c,
        {
            "returned": f"{returned.mean():.1%}",
            "lines_of_top_sku": int(np.bincount(sku).max()),
            "beauty": f"{by_cat.get('beauty', float('nan')):.1%}",
        },
    )


def _labs_copies(
    seed: int, rows: int | None = None
) -> tuple[pd.DataFrame, Contract, dict[str, Any]]:
    """Emergency visits (``rows``, default 13,792) of patients with 1-6 visits and a frailty
    N(0, 0.5) each (no patient column), with lab values reported at the assay's lower limit
    when below it (lactate 0.5, CRP 5, procalcitonin 0.05, troponin 3: the healthy visits pile
    onto the limits), the heart rate and the ESI triage level 1..5 (fresh19's ``labs_copies``
    repro, session 15). The label ``icu_24h`` (about 15 %) follows the visit's severity, seen
    through the labs, the heart rate and the triage, plus the patient's frailty: healthy
    visits have more look-alikes than random rows by nature."""
    rng = np.random.default_rng(seed)
    n = rows or 13_792
    patients = rng.normal(0, 0.5, n)[np.minimum(rng.geometric(1 / 2, n), 6).cumsum() % n]
    s = patients + rng.normal(0, 1.0, n)  # the visit's severity

    def assay(mu: float, slope: float, sd: float, digits: int, limit: float) -> np.ndarray:
        x = np.round(np.exp(rng.normal(np.log(mu) + slope * s, sd)), digits)
        return np.where(x < limit, limit, x)

    lactate = assay(0.9, 0.35, 0.35, 1, 0.5)
    crp = assay(9.0, 0.8, 0.9, 0, 5.0)
    pct = assay(0.07, 0.9, 0.8, 2, 0.05)
    trop = assay(4.0, 0.6, 0.8, 0, 3.0)
    hr = np.clip(np.round(rng.normal(84 + 9 * s, 11)), 35, 190)
    esi = np.clip(np.round(3.2 - 0.8 * s + rng.normal(0, 0.7, n)), 1, 5)
    logit = (
        1.1 * s
        + 0.6 * np.log(lactate)
        + 0.02 * (hr - 85)
        - 0.4 * (esi - 3)
        + patients
        + rng.normal(0, 0.5, n)
    )
    icu = rng.random(n) < _calibrated(logit, 0.148)
    df = pd.DataFrame(
        {
            "heart_rate": hr.astype(int),
            "lactate": lactate,
            "crp": crp,
            "procalcitonin": pct,
            "troponin": trop,
            "esi": esi.astype(int),
            "icu_24h": icu.astype(int),
        }
    )
    feats = {
        "heart_rate": FeatureSpec(type="integer", min=20, max=250),
        "lactate": _numeric_spec(df["lactate"]),
        "crp": _numeric_spec(df["crp"]),
        "procalcitonin": _numeric_spec(df["procalcitonin"]),
        "troponin": _numeric_spec(df["troponin"]),
        "esi": FeatureSpec(type="integer", min=1, max=5),
    }
    c = Contract(
        name="labs_copies",
        label={"column": "icu_24h", "positive": 1, "negative": 0},
        features=feats,
    )
    at = [np.mean(x == lim) for x, lim in ((lactate, 0.5), (crp, 5.0), (pct, 0.05), (trop, 3.0))]
    return (
        df,
        c,
        {
            "icu": f"{icu.mean():.1%}",
            "at_limits": "/".join(f"{a:.0%}" for a in at),
        },
    )


_ORDER_CATEGORIES = {  # median price, log-odds of a dispute
    "electronics": (89.0, 0.5),
    "apparel": (29.0, 0.2),
    "home": (39.0, 0.0),
    "toys": (24.0, -0.2),
    "beauty": (19.0, -0.4),
    "books": (14.0, -0.8),
    "sports": (49.0, 0.1),
}


def _orders_noseller(
    seed: int, rows: int | None = None
) -> tuple[pd.DataFrame, Contract, dict[str, Any]]:
    """Marketplace orders (``rows``, default 45,000): buyers with three orders each and no
    effect of their own (``buyer_id``, the contract's ``entity``), sellers of Zipf sizes
    (``1 / rank^1.05``) each with a country, a rating and a tenure constant within it and a
    dispute effect N(0, 0.6), plus 2.0 for 3 % of them; the seller's id is not in the file (the
    lead's generated orders, session 15). A category, a price ``floor(lognormal) + 0.99`` by
    category, a quantity, free shipping from 29.99, a promised delivery of 2-10 days and a
    payment method; the label ``dispute`` (about 8 %) a logistic function of the seller's
    effect, the category, the promise, cash on delivery and the rating. A big seller's orders
    are look-alikes of each other by design (its three columns), and its disputes with them."""
    rng = np.random.default_rng(seed)
    n = rows or 45_000
    k = max(n // 28, 20)
    size = 1.0 / np.arange(1, k + 1) ** 1.05
    seller = rng.choice(k, n, p=size / size.sum())
    countries = np.array(["DE", "FR", "GB", "ES", "IT", "NL", "PL", "CN"], dtype=object)
    s_country = rng.choice(len(countries), k, p=[0.2, 0.15, 0.15, 0.1, 0.1, 0.08, 0.07, 0.15])
    rating = np.round(np.clip(rng.normal(4.4, 0.3, k), 3.0, 5.0), 1)
    tenure = np.clip(np.round(rng.gamma(2.0, 18.0, k)), 1, 240).astype(int)
    effect = rng.normal(0, 0.6, k) + 2.0 * (rng.random(k) < 0.03)
    names = list(_ORDER_CATEGORIES)
    med, lean = (np.array([v[i] for v in _ORDER_CATEGORIES.values()]) for i in range(2))
    cat = rng.choice(len(names), n)
    price = np.floor(np.exp(rng.normal(np.log(med[cat]), 0.6))) + 0.99
    quantity = np.minimum(rng.geometric(0.7, n), 6)
    promised = rng.integers(2, 11, n)
    payments = np.array(["card", "paypal", "cod", "invoice"], dtype=object)
    pay = rng.choice(4, n, p=[0.5, 0.3, 0.08, 0.12])
    buyer = rng.permutation(np.repeat(np.arange(n // 3 + 1), 3)[:n])
    b_country = rng.choice(len(countries), n // 3 + 1, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05, 0.0])
    logit = (
        effect[seller]
        + lean[cat]
        + 0.08 * (promised - 5)
        + 0.6 * (pay == 2)
        - 1.2 * (rating[seller] - 4.4)
    )
    dispute = rng.random(n) < _calibrated(logit, 0.077)
    df = pd.DataFrame(
        {
            "buyer_id": buyer + 100_000,
            "buyer_country": countries[b_country[buyer]],
            "seller_country": countries[s_country[seller]],
            "seller_rating": rating[seller],
            "seller_tenure_months": tenure[seller],
            "category": np.asarray(names, dtype=object)[cat],
            "price": price,
            "quantity": quantity.astype(int),
            "free_shipping": price * quantity >= 29.99,
            "promised_days": promised.astype(int),
            "payment": payments[pay],
            "dispute": dispute.astype(int),
        }
    )
    feats = {
        "buyer_country": FeatureSpec(type="category", categories=list(countries)),
        "seller_country": FeatureSpec(type="category", categories=list(countries)),
        "seller_rating": FeatureSpec(type="number", min=0, max=5),
        "seller_tenure_months": FeatureSpec(type="integer", min=0, max=300),
        "category": FeatureSpec(type="category", categories=names),
        "price": _numeric_spec(df["price"]),
        "quantity": FeatureSpec(type="integer", min=1, max=10),
        "free_shipping": FeatureSpec(type="boolean"),
        "promised_days": FeatureSpec(type="integer", min=1, max=14),
        "payment": FeatureSpec(type="category", categories=list(payments)),
    }
    c = Contract(
        name="orders_noseller",
        entity="buyer_id",
        label={"column": "dispute", "positive": 1, "negative": 0},
        features=feats,
    )
    return (
        df,
        c,
        {
            "sellers": k,
            "dispute": f"{dispute.mean():.1%}",
            "top_seller": f"{np.bincount(seller).max()} orders",
        },
    )


_EXPENSE_CATEGORIES = {  # share of the claims, log-odds of a query
    "meals": (0.30, 0.0),
    "taxi": (0.18, -0.3),
    "hotel": (0.14, 0.2),
    "airfare": (0.10, 0.1),
    "mileage": (0.10, -0.5),
    "per_diem": (0.08, -0.7),
    "entertainment": (0.06, 0.7),
    "training": (0.04, -0.4),
}
_DEPARTMENTS = ("sales", "consulting", "engineering", "finance", "hr", "operations", "legal")
_TRAINING_PRICES = (250.0, 450.0, 690.0, 850.0, 1_190.0, 1_450.0, 1_950.0)


def _expenses(
    seed: int, rows: int | None = None, cut: str | None = None
) -> tuple[pd.DataFrame, Contract, dict[str, Any]]:
    """Expense claims under policy caps (``rows``, default about 20,000; fresh20's
    ``expenses``, session 16): employees (``employee_id``, the ``entity``; a department of 7,
    a grade ``G1``-``G6``, a home city tier 1-3 and a sloppiness N(0, 0.6)) with 1-80 claims
    each (geometric, mean 20 in sales and consulting, 8 elsewhere), in 8 categories: meals
    capped at 60 (75 for G5-G6) and claimed at the cap when over it or in 15 % of the claims,
    hotels at 250/180/140 a night by city tier (at the cap in 10 % or when over) times 1-5
    nights, airfare and entertainment log-normal, taxis to one decimal, mileage 0.30 per km
    exactly, per diems 28, 42 or 56, training at list prices from 250 to 1,950.
    ``days_to_submit`` geometric, ``receipt_attached`` 97 % (75 % for taxis and per diems),
    ``weekend`` 12 % and independent of everything else. The label ``queried`` (9.7 %) is a
    logistic function of the sloppiness, the department (N(0, 0.8) each) and the category, the
    days, a missing receipt (+1.6, not for per diems: they need none), ``weekend`` (+0.5), a
    claim at the cap (+0.45), the amount and the grade. ``cut`` keeps fresh20's minimal
    repros' columns: ``exp_weekend`` (the entity, department, grade, category, weekend) and
    ``exp_perdiem`` (no entity; department, grade, category, days, receipt, weekend)."""
    rng = np.random.default_rng(seed)
    n_emp = max(int((rows or 20_000) / 12.4), 20)
    dept = rng.choice(len(_DEPARTMENTS), n_emp, p=[0.22, 0.12, 0.24, 0.1, 0.06, 0.18, 0.08])
    grade = rng.choice(6, n_emp, p=[0.15, 0.25, 0.25, 0.18, 0.12, 0.05])
    tier = rng.choice(3, n_emp, p=[0.35, 0.4, 0.25])
    sloppy = rng.normal(0, 0.6, n_emp)
    d_effect = rng.normal(0, 0.8, len(_DEPARTMENTS))
    mean = np.where(dept <= 1, 20.0, 8.0)
    claims = np.minimum(rng.geometric(1 / mean), 80)
    e = np.repeat(np.arange(n_emp), claims)
    if rows:
        e = e[:rows]
    n = len(e)
    names = list(_EXPENSE_CATEGORIES)
    share, lean = (np.array([v[i] for v in _EXPENSE_CATEGORIES.values()]) for i in range(2))
    cat = rng.choice(len(names), n, p=share)
    amount = np.zeros(n)
    at_cap = np.zeros(n, dtype=bool)

    def capped(
        rows_: np.ndarray, cap: np.ndarray, median: np.ndarray, sd: float, often: float
    ) -> None:
        x = np.round(np.exp(rng.normal(np.log(median), sd)), 2)
        top = (x >= cap) | (rng.random(len(rows_)) < often)
        amount[rows_] = np.where(top, cap, x)
        at_cap[rows_] = top

    m = np.flatnonzero(cat == 0)
    capped(m, np.where(grade[e[m]] >= 4, 75.0, 60.0), np.full(len(m), 32.0), 0.5, 0.15)
    h = np.flatnonzero(cat == 2)
    night = np.array([250.0, 180.0, 140.0])[tier[e[h]]]
    capped(h, night, 0.8 * night, 0.25, 0.10)
    amount[h] *= rng.integers(1, 6, len(h))
    for k, median, sd in ((3, 320.0, 0.5), (6, 140.0, 0.6)):
        r = np.flatnonzero(cat == k)
        amount[r] = np.round(np.exp(rng.normal(np.log(median), sd, len(r))), 2)
    t = np.flatnonzero(cat == 1)
    amount[t] = np.maximum(np.round(np.exp(rng.normal(np.log(22.0), 0.6, len(t))), 1), 4.0)
    km = np.flatnonzero(cat == 4)
    amount[km] = np.round(0.30 * np.ceil(np.exp(rng.normal(np.log(80.0), 0.7, len(km)))), 2)
    pd_ = np.flatnonzero(cat == 5)
    amount[pd_] = rng.choice([28.0, 42.0, 56.0], len(pd_), p=[0.3, 0.45, 0.25])
    tr = np.flatnonzero(cat == 7)
    amount[tr] = rng.choice(_TRAINING_PRICES, len(tr))
    days = np.minimum(rng.geometric(1 / 9, n) - 1, 120)
    receipt = rng.random(n) < np.where(np.isin(cat, [1, 5]), 0.75, 0.97)
    weekend = rng.random(n) < 0.12
    logit = (
        sloppy[e]
        + d_effect[dept[e]]
        + lean[cat]
        + 0.012 * days
        + 1.6 * (~receipt & (cat != 5))
        + 0.5 * weekend
        + 0.45 * at_cap
        + 0.25 * np.log1p(amount / 100)
        - 0.1 * grade[e]
    )
    queried = rng.random(n) < _calibrated(logit, 0.097)  # fresh20's 9.7 %
    grades = np.array([f"G{g + 1}" for g in range(6)], dtype=object)
    df = pd.DataFrame(
        {
            "claim_id": np.arange(1, n + 1) + 500_000,
            "employee_id": e + 10_000,
            "department": np.asarray(_DEPARTMENTS, dtype=object)[dept[e]],
            "grade": grades[grade[e]],
            "city_tier": tier[e] + 1,
            "category": np.asarray(names, dtype=object)[cat],
            "amount": np.round(amount, 2),
            "days_to_submit": days.astype(int),
            "receipt_attached": receipt,
            "weekend": weekend,
            "queried": queried.astype(int),
        }
    )
    feats = {
        "department": FeatureSpec(type="category", categories=list(_DEPARTMENTS)),
        "grade": FeatureSpec(type="category", categories=list(grades)),
        "city_tier": FeatureSpec(type="category", categories=[1, 2, 3]),
        "category": FeatureSpec(type="category", categories=names),
        "amount": _numeric_spec(df["amount"]),
        "days_to_submit": FeatureSpec(type="integer", min=0, max=150),
        "receipt_attached": FeatureSpec(type="boolean"),
        "weekend": FeatureSpec(type="boolean"),
    }
    keep = {
        None: list(feats),
        "exp_weekend": ["department", "grade", "category", "weekend"],
        "exp_perdiem": [
            "department",
            "grade",
            "category",
            "days_to_submit",
            "receipt_attached",
            "weekend",
        ],
    }[cut]
    entity = None if cut == "exp_perdiem" else "employee_id"
    df = df[["claim_id", *([entity] if entity else []), *keep, "queried"]]
    c = Contract(
        name=cut or "expenses",
        id="claim_id",
        entity=entity,
        label={"column": "queried", "positive": 1, "negative": 0},
        features={k: feats[k] for k in keep},
    )
    y = queried
    w = weekend
    return (
        df,
        c,
        {
            "employees": int(e[-1]) + 1,
            "queried": f"{y.mean():.1%}",
            "weekend": f"{w.mean():.0%} of claims, {y[w].mean():.1%} against {y[~w].mean():.1%}",
            "per_diem": f"{(cat == 5).mean():.1%} of claims, {y[cat == 5].mean():.1%} queried",
        },
    )


def _outside(seed: int, kind: str) -> tuple[pd.DataFrame, Contract, dict[str, Any]]:
    """A set of ``benchmarks/outside_sets.py`` drawn as that script draws it with ``--seed
    seed`` (the whole set, not its train part), with the contract ``contract infer`` drafts
    for it (its id and entity guessed as the CLI guesses them). ``rentals``: fresh21's rental
    applications (the draft's entity ``listing_id``); ``rent_f``: its minimal repro of the
    eviction record, ``eviction_record``, ``rent_to_income`` and ``property_manager`` (no
    entity); ``shipments``: parcel shipments (clean22's set, session 18)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_outside_sets", Path(__file__).resolve().parent / "outside_sets.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    name = "rentals" if kind == "rent_f" else kind
    place = list(mod.SETS).index(name)
    df, _ = mod.SETS[name](np.random.default_rng(seed * 10 + place))
    label = str(df.columns[-1])
    if kind == "rent_f":
        df = df[["application_id", "eviction_record", "rent_to_income", "property_manager", label]]
        c = infer_contract(df, label, name=kind, id_column="application_id", find_entity=False)
    else:
        c = infer_contract(df, label, name=kind)
    y = df[label].to_numpy()
    return df, c, {"label": f"{label} {y.mean():.1%}", "entity": c.entity}


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _smote(
    df: pd.DataFrame, c: Contract, minority: Any, ratio: float, rng: np.random.Generator
) -> tuple[pd.DataFrame, int]:
    """The minority label oversampled to ``ratio`` of the majority's rows by SMOTE: each new
    row lies between a minority row and one of its 5 nearest minority neighbours (features
    standardised), numbers interpolated (integers rounded), codes taken from the nearer
    parent."""
    from sklearn.neighbors import NearestNeighbors

    label = c.label.column
    mino = df[df[label] == minority].reset_index(drop=True)
    n_new = max(0, int(ratio * int((df[label] != minority).sum())) - len(mino))
    feats = c.model_features()
    nums = [n for n in feats if c.features[n].type in ("integer", "number")]
    x = mino[nums].to_numpy(dtype=float)
    x = (x - np.nanmean(x, axis=0)) / np.maximum(np.nanstd(x, axis=0), 1e-9)
    x = np.nan_to_num(x)
    nn = NearestNeighbors(n_neighbors=min(6, len(mino))).fit(x)
    _, idx = nn.kneighbors(x)
    a = rng.integers(0, len(mino), n_new)
    b = idx[a, rng.integers(1, idx.shape[1], n_new)] if idx.shape[1] > 1 else a
    t = rng.random(n_new)
    new = mino.iloc[a].reset_index(drop=True).copy()
    other = mino.iloc[b].reset_index(drop=True)
    for n in nums:
        v = new[n].to_numpy(dtype=float) + t * (
            other[n].to_numpy(dtype=float) - new[n].to_numpy(dtype=float)
        )
        new[n] = np.round(v).astype(np.int64) if c.features[n].type == "integer" else np.round(v, 2)
    nearer_b = t > 0.5
    for n in feats:
        if n not in nums:
            new.loc[nearer_b, n] = other.loc[nearer_b, n].to_numpy()
    return pd.concat([df, new], ignore_index=True), n_new


def _panel(
    df: pd.DataFrame, c: Contract, accounts: int, drift: float, rng: np.random.Generator
) -> pd.DataFrame:
    """``accounts`` rows as accounts observed 3-12 months each: every feature but the amounts
    (and the label) constant, each amount a random walk (x e^N(0, drift) a month) from the
    record's value; an ``ACCOUNT`` column names the account."""
    src = rng.choice(len(df), accounts, replace=False)
    months = rng.integers(3, 13, accounts)
    rows = np.repeat(src, months)
    acct = np.repeat(np.arange(1, accounts + 1), months)
    step = np.concatenate([np.arange(m) for m in months])
    data = df.iloc[rows].reset_index(drop=True)
    for n in amounts(df, c):
        shock = rng.normal(0, drift, len(data))
        shock[step == 0] = 0.0
        walk = np.exp(pd.Series(shock).groupby(acct).cumsum().to_numpy())
        x = data[n].to_numpy(dtype=float) * walk
        data[n] = (
            np.round(x).astype(np.int64) if c.features[n].type == "integer" else np.round(x, 2)
        )
    data["ACCOUNT"] = acct
    return data


def _nullable(c: Contract, cols: list[str]) -> Contract:
    """``c`` with ``cols`` made ``nullable`` (what a user does for features with NaN)."""
    feats = {
        n: f.model_copy(update={"nullable": True}) if n in cols else f
        for n, f in c.features.items()
    }
    return c.model_copy(update={"features": feats})


def _stores(
    df: pd.DataFrame, c: Contract, sd: float, rng: np.random.Generator
) -> tuple[pd.DataFrame, Contract]:
    """``df`` with a ``STORE`` (600 stores, Zipf sizes) and its ``REGION`` (14) per row: each
    store's label log-odds are the data's plus N(0, ``sd``), and a row of label y is given
    store s with probability proportional to the store's size times its rate of y (Bayes'
    rule), so the rows keep their labels and the stores their natural effects."""
    y = (df[c.label.column] == c.label.positive).to_numpy()
    base = float(y.mean())
    n_stores = 600
    size = 1.0 / np.arange(1, n_stores + 1) ** float(rng.uniform(0.6, 1.0))
    rate = 1.0 / (1.0 + np.exp(-(np.log(base / (1 - base)) + rng.normal(0, sd, n_stores))))
    store = np.empty(len(df), dtype=np.int64)
    for lab, w in ((True, size * rate), (False, size * (1 - rate))):
        idx = np.flatnonzero(y == lab)
        store[idx] = rng.choice(n_stores, len(idx), p=w / w.sum())
    region = rng.integers(0, 14, n_stores)
    names = [f"S{i + 1:03d}" for i in range(n_stores)]
    regions = [f"R{i + 1:02d}" for i in range(14)]
    data = df.copy()
    data["STORE"] = np.asarray(names, dtype=object)[store]
    data["REGION"] = np.asarray(regions, dtype=object)[region[store]]
    feats = {
        **c.features,
        "STORE": FeatureSpec(type="category", categories=names),
        "REGION": FeatureSpec(type="category", categories=regions),
    }
    return data, c.model_copy(update={"features": feats})


def draw(n: int, seed: int, datasets: list[str], kinds: list[str]) -> list[tuple[str, str, int]]:
    """``n`` (dataset, kind, variant seed) drawn from ``seed``: the kinds in turn from a
    random start (every kind appears once in each ``len(kinds)`` lines), datasets and
    variant seeds at random."""
    rng = np.random.default_rng(seed)
    first = int(rng.integers(0, len(kinds)))
    out = []
    for i in range(n):
        kind = kinds[(first + i) % len(kinds)]
        out.append((str(rng.choice(datasets)), kind, int(rng.integers(0, 100_000))))
    return out


def _named(features: list[str], values: list[Any], message: str) -> str:
    """A finding's condition (``PAY_0=-2 & SEX=1``), or its message's first sentence when it
    names no values (integrity, bias)."""
    if features and values:
        return " & ".join(f"{a}={b!r}" for a, b in zip(features, values, strict=False))
    return message.split(". ")[0][:120]


def audit_in_process(v: Variant, checks: list[str] | None) -> dict[str, Any]:
    res = audit_data(v.data, v.contract, checks=checks)
    crit = [f for f in res.report.findings if f.severity == "critical"]
    return {
        "suspected": len(res.suspicious_rows),
        "critical": len(crit),
        "named": [f"{f.check}: {_named(f.features, f.values, f.message)}" for f in crit],
    }


def audit_cli(v: Variant, checks: list[str] | None, workdir: Path) -> dict[str, Any]:
    """Write the variant and its contract, run ``tabguard audit data``, read findings.json."""
    data = workdir / "data.csv"
    v.data.to_csv(data, index=False)
    contract = save_contract(v.contract, workdir / "contract.yaml")
    out = workdir / "out"
    cmd = [
        str(Path(sys.executable).with_name("tabguard")),
        "audit",
        "data",
        str(data),
        "--contract",
        str(contract),
        "--out",
        str(out),
        "-q",
    ]
    if checks:
        cmd += ["--checks", ",".join(checks)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    doc = json.loads((out / "findings.json").read_text())
    crit = [f for f in doc["findings"] if f.get("severity") == "critical"]
    return {
        "suspected": int(doc["summary"]["suspicious_rows"]),
        "critical": len(crit),
        "named": [
            f"{f['check']}: "
            + _named(f.get("features", []), f.get("values", []), f.get("message", ""))
            for f in crit
        ],
        "exit": proc.returncode,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--random", type=int, default=6, metavar="N", help="variants to draw")
    ap.add_argument(
        "--seed", type=int, default=None, help="seed of the draw (default: a fresh one, printed)"
    )
    ap.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated: credit,fraud")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated variant kinds")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="SEED:KIND[:DATASET]",
        help="re-run one printed line (its variant seed and kind; dataset credit by default)",
    )
    ap.add_argument(
        "--rows",
        type=int,
        default=None,
        help="rows of the base data (credit: the first ROWS rows, default 30,000; fraud: ROWS "
        "generated rows, default 20,000)",
    )
    ap.add_argument(
        "--checks",
        type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
        help="comma-separated checks (default: every check)",
    )
    ap.add_argument("--cli", action="store_true", help="run each variant through the CLI")
    ap.add_argument("--json", type=Path, help="also write the lines as JSON to this file")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    for k in kinds:
        if k not in KINDS + OUTSIDE:
            ap.error(f"--kinds: unknown kind {k!r}; one of {', '.join(KINDS + OUTSIDE)}")
    for d in datasets:
        if d not in DATASETS:
            ap.error(f"--datasets: unknown data set {d!r}; one of {', '.join(DATASETS)}")
    if args.variant:
        todo = []
        for spec in args.variant:
            parts = spec.split(":")
            todo.append((parts[2] if len(parts) > 2 else "credit", parts[1], int(parts[0])))
        print(
            f"# clean_data: {len(todo)} given variant(s), base rows {args.rows or 'default'}",
            flush=True,
        )
    else:
        seed = secrets.randbelow(100_000) if args.seed is None else args.seed
        todo = draw(args.random, seed, datasets, kinds)
        print(
            f"# clean_data: --random {args.random} --seed {seed} --datasets {','.join(datasets)} "
            f"--kinds {','.join(kinds)} "
            f"{f' --rows {args.rows}' if args.rows else ''}"
            f"{' --cli' if args.cli else ''}"
            f"{' --checks ' + ','.join(args.checks) if args.checks else ''}",
            flush=True,
        )
    lines = []
    alarms = 0
    for i, (dataset, kind, vseed) in enumerate(todo, 1):
        v = make_variant(dataset, kind, vseed, args.rows)
        t0 = time.perf_counter()
        if args.cli:
            with tempfile.TemporaryDirectory(prefix="clean_data_") as tmp:
                out = audit_cli(v, args.checks, Path(tmp))
        else:
            out = audit_in_process(v, args.checks)
        secs = time.perf_counter() - t0
        alarms += bool(out["suspected"] or out["critical"])
        named = "; ".join(out["named"]) or "-"
        print(
            f"#{i} {v.describe()}: suspected {out['suspected']}, critical {out['critical']}, "
            f"named {named} [{secs:.0f} s; --variant {vseed}:{kind}:{dataset}]",
            flush=True,
        )
        lines.append({"dataset": dataset, "kind": kind, "seed": vseed, **v.params, **out})
    print(f"# clean variants with a false alarm: {alarms}/{len(todo)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(lines, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
