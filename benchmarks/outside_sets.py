"""Clean tabular sets of kinds no earlier session used, for auditing tabguard as an outside user.

Writes three generated data sets whose label is a known function of the features, a per-unit
random effect and row noise, with nothing planted: every suspected row and every critical
trigger the data audit reports on them is a false alarm by construction. Each set has the
structure real data has - ids, units with repeated rows, caps and list prices, hierarchies of
codes, interactions, skewed amounts - and is written whole and split 70/30 by unit (train on
the first, audit the model on the second).

- ``homeclaims``: home-insurance claims of policies (``policy_no``, 1 + Poisson(0.8) claims
  each) under a product hierarchy (``line`` -> ``product``) and a peril hierarchy
  (``peril_group`` -> ``peril``); amounts log-normal, capped at the policy's coverage limit and
  at the theft sublimit; label ``denied``.
- ``payouts``: weekly marketplace seller payouts (``seller_id``, Zipf-sized sellers over up to
  26 weeks) under a ``vertical`` -> ``category`` hierarchy; subscription sellers repeat one
  gross amount every week, payouts of new sellers are capped at 5,000; label ``held``.
- ``rentals``: rental applications of applicants (``applicant_id``, 1-5 each) to listings priced
  from a rent table (``city`` -> ``neighborhood``, bedrooms, rounded to 25) handled by 60
  property managers, each with a strictness of its own; pets against ``pets_allowed`` and
  guarantors for students are interactions; label ``approved``.
- ``shipments`` (session 18, clean22): parcel shipments of 1,800 business shippers
  (``shipper_id``, Zipf sizes up to 150, a shipper effect N(0, 0.5)) under a ``carrier`` ->
  ``service`` hierarchy (promised days), destination regions (islands far and slow), storms by
  region and week, a fifth of the shippers sending one boxed product (one weight and declared
  value: near-copies within the shipper), hazmat (pharma 8 %, others 1 %; by air an
  interaction, +1.1), an address corrected in transit (2.5 %, independent of the row, +2.2
  log-odds: a rare natural cause with a strong effect); label ``late``.

It imports no part of tabguard (numpy and pandas only), so any version can be audited on it::

    python benchmarks/outside_sets.py OUTDIR --seed 1
    tabguard contract infer OUTDIR/payouts.csv --label held --out payouts.yaml
    tabguard audit data OUTDIR/payouts.csv --contract payouts.yaml --out audit_payouts -q
    tabguard train OUTDIR/payouts_train.csv --contract payouts.yaml --out model_payouts
    tabguard audit model model_payouts --data OUTDIR/payouts_test.csv -q

Written in session 17 (fresh21); results in ``docs/benchmarks.md`` ("Clean data through the
CLI, session 17 (fresh21)").
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd


def _logistic(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _pick_within(
    rng: np.random.Generator,
    parents: np.ndarray,
    table: Mapping[str, Mapping[str, tuple[float, ...]]],
) -> Iterator[tuple[np.ndarray, list[str], np.ndarray, Mapping[str, tuple[float, ...]]]]:
    """Pick a child for every row of each parent group, by the shares in the table's first field.

    Yields, group by group in the table's order, the rows, the children's names, the index of
    the child picked for each row and the group's table. A generator so the caller can draw
    more per group in the same order (the sets are seeded).
    """
    for group, children in table.items():
        at = np.flatnonzero(parents == group)
        names = list(children)
        pick = rng.choice(len(names), at.size, p=[children[c][0] for c in names])
        yield at, names, pick, children


def homeclaims(rng: np.random.Generator, n_policies: int = 12_000) -> tuple[pd.DataFrame, str]:
    """Home-insurance claims; the label ``denied`` (about 12 %)."""
    products = {  # line -> {product: (share within the line, median dwelling limit)}
        "homeowners": {"HO-3": (0.70, 320_000), "HO-5": (0.22, 520_000), "HO-8": (0.08, 180_000)},
        "renters": {"HO-4": (1.0, 40_000)},
        "condo": {"HO-6": (1.0, 110_000)},
        "landlord": {"DP-1": (0.35, 210_000), "DP-3": (0.65, 260_000)},
    }
    line_share = {"homeowners": 0.55, "renters": 0.2, "condo": 0.12, "landlord": 0.13}
    line_effect = {"homeowners": 0.0, "renters": -0.2, "condo": 0.1, "landlord": 0.35}
    product_effect = {"HO-3": 0.0, "HO-5": -0.3, "HO-8": 0.4, "HO-4": 0.0, "HO-6": 0.0,
                      "DP-1": 0.5, "DP-3": 0.0}  # fmt: skip
    perils = {  # group -> {peril: (share within the group, log-median amount, denial effect)}
        "water": {"burst_pipe": (0.5, 8.9, -0.2), "seepage": (0.3, 8.3, 1.0),
                  "flood": (0.2, 9.6, 1.6)},
        "weather": {"wind": (0.45, 9.0, -0.4), "hail": (0.4, 9.3, -0.5),
                    "lightning": (0.15, 8.4, -0.2)},
        "fire": {"kitchen_fire": (0.7, 9.4, -0.3), "wildfire": (0.3, 11.2, -0.6)},
        "theft": {"burglary": (0.6, 8.2, 0.2), "theft_away": (0.4, 7.6, 0.5)},
        "liability": {"dog_bite": (0.45, 9.5, 0.4), "slip_fall": (0.55, 9.9, 0.6)},
    }  # fmt: skip
    group_share = {"water": 0.32, "weather": 0.3, "fire": 0.1, "theft": 0.16, "liability": 0.12}
    regions = [f"R{i}" for i in range(1, 9)]
    region_effect = dict(zip(regions, rng.normal(0, 0.25, len(regions)), strict=True))
    cat_months = {r: set(rng.choice(np.arange(1, 13), 2, replace=False)) for r in regions}

    lines = rng.choice(list(line_share), n_policies, p=list(line_share.values()))
    product = np.empty(n_policies, dtype=object)
    limit = np.empty(n_policies)
    for at, names, pick, prods in _pick_within(rng, lines, products):
        product[at] = np.array(names, dtype=object)[pick]
        medians = np.array([prods[p][1] for p in names])[pick]
        limit[at] = np.round(medians * rng.lognormal(0, 0.35, at.size), -4).clip(10_000)
    pol = pd.DataFrame(
        {
            "policy_no": [f"HP-{i:07d}" for i in rng.choice(9_000_000, n_policies, replace=False)],
            "line": lines,
            "product": product,
            "coverage_limit": limit.astype(int),
            "deductible": rng.choice([500, 1000, 2500, 5000], n_policies, p=[0.3, 0.45, 0.2, 0.05]),
            "region": rng.choice(regions, n_policies),
            "construction": rng.choice(["frame", "masonry", "superior"], n_policies,
                                       p=[0.55, 0.35, 0.1]),
            "year_built": rng.integers(1920, 2025, n_policies),
            "insured_age": rng.integers(19, 90, n_policies),
            "prior_claims_5y": np.minimum(rng.poisson(0.4, n_policies), 6),
        }
    )  # fmt: skip
    pol.loc[pol["line"] == "renters", "year_built"] = rng.integers(
        1950, 2025, (pol["line"] == "renters").sum()
    )
    effect = rng.normal(0, 0.6, n_policies)
    n_claims = 1 + rng.poisson(0.8, n_policies)
    idx = np.repeat(np.arange(n_policies), n_claims)
    df = pol.iloc[idx].reset_index(drop=True)
    n = len(df)
    groups = rng.choice(list(group_share), n, p=list(group_share.values()))
    peril = np.empty(n, dtype=object)
    logmed = np.empty(n)
    peril_eff = np.empty(n)
    for at, names, pick, ps in _pick_within(rng, groups, perils):
        peril[at] = np.array(names, dtype=object)[pick]
        logmed[at] = np.array([ps[p][1] for p in names])[pick]
        peril_eff[at] = np.array([ps[p][2] for p in names])[pick]
    df.insert(0, "claim_id", [f"CLM-2026-{i:06d}" for i in rng.choice(999_999, n, replace=False)])
    df["peril_group"] = groups
    df["peril"] = peril
    df["loss_month"] = rng.integers(1, 13, n)
    winter = np.isin(df["loss_month"], [12, 1, 2])
    df.loc[(df["peril"] == "burst_pipe") & ~winter & (rng.random(n) < 0.3), "loss_month"] = 1
    amount = np.exp(logmed + rng.normal(0, 0.9, n))
    amount *= np.where(df["line"].isin(["renters", "condo"]), 0.5, 1.0)
    # theft of valuables is paid up to a sublimit of 2,500; a total loss at the coverage limit
    theft = df["peril_group"].to_numpy() == "theft"
    amount = np.where(theft, np.minimum(amount, 2500.0), amount)
    amount = np.minimum(amount, df["coverage_limit"].to_numpy())
    df["claim_amount"] = np.round(amount, 2)
    df["days_to_report"] = np.minimum(rng.geometric(0.18, n) - 1, 365)
    slow_water = df["peril"].isin(["seepage"]).to_numpy()
    df.loc[slow_water, "days_to_report"] += rng.geometric(0.05, slow_water.sum())
    df["reported_by"] = rng.choice(["insured", "agent", "contractor"], n, p=[0.7, 0.2, 0.1])
    df["police_report"] = np.where(theft, rng.random(n) < 0.75, False)
    df["photos_submitted"] = rng.random(n) < 0.82
    df["public_adjuster"] = rng.random(n) < 0.08  # independent of the rest of the row
    reg_cat = np.array(
        [m in cat_months[r] for r, m in zip(df["region"], df["loss_month"], strict=True)]
    )
    df["catastrophe_event"] = (
        reg_cat & (df["peril_group"].to_numpy() == "weather") & (rng.random(n) < 0.8)
    )
    z = (
        -2.4
        + effect[idx]
        + df["line"].map(line_effect).to_numpy()
        + df["product"].map(product_effect).to_numpy()
        + peril_eff
        + df["region"].map(region_effect).to_numpy()
        + 0.25 * np.log1p(df["claim_amount"].to_numpy() / df["deductible"].to_numpy())
        + 0.012 * np.minimum(df["days_to_report"].to_numpy(), 120)
        + 0.8 * df["public_adjuster"].to_numpy()
        + 0.6 * (df["reported_by"].to_numpy() == "contractor")
        - 0.9 * (theft & df["police_report"].to_numpy())
        - 0.5 * df["photos_submitted"].to_numpy()
        - 0.6 * df["catastrophe_event"].to_numpy()
        + 0.006 * np.maximum(1980 - df["year_built"].to_numpy(), 0)
        + 0.2 * df["prior_claims_5y"].to_numpy()
        # seepage reported late is wear and tear, not a sudden loss
        + 0.8 * (slow_water & (df["days_to_report"].to_numpy() > 30))
        + rng.normal(0, 0.4, n)
    )
    df["denied"] = (rng.random(n) < _logistic(z)).astype(int)
    df["police_report"] = df["police_report"].astype(bool)
    return df, "policy_no"


def payouts(rng: np.random.Generator, n_sellers: int = 2_500) -> tuple[pd.DataFrame, str]:
    """Weekly marketplace seller payouts; the label ``held`` (held for review, about 8 %)."""
    verticals = {
        "electronics": {"phones": 0.4, "laptops": 0.2, "accessories": 0.4},
        "fashion": {"shoes": 0.35, "apparel": 0.45, "bags": 0.2},
        "home": {"furniture": 0.3, "kitchen": 0.4, "decor": 0.3},
        "collectibles": {"cards": 0.45, "coins": 0.25, "art": 0.3},
    }
    vertical_share = {"electronics": 0.25, "fashion": 0.35, "home": 0.25, "collectibles": 0.15}
    fee = {"electronics": 0.08, "fashion": 0.15, "home": 0.12, "collectibles": 0.13}
    vertical_effect = {"electronics": 0.3, "fashion": -0.2, "home": -0.1, "collectibles": 0.5}
    countries = ["US", "UK", "DE", "FR", "ES", "IT", "PL", "NL"]
    country_share = [0.35, 0.15, 0.14, 0.1, 0.08, 0.07, 0.06, 0.05]
    country_effect = dict(zip(countries, rng.normal(0, 0.3, len(countries)), strict=True))

    vert = rng.choice(list(vertical_share), n_sellers, p=list(vertical_share.values()))
    cat = np.array(
        [rng.choice(list(verticals[v]), p=list(verticals[v].values())) for v in vert], dtype=object
    )
    age_days = np.round(rng.lognormal(6.0, 1.0, n_sellers)).astype(int).clip(1, 4000)
    size = np.minimum(rng.zipf(1.8, n_sellers), 400).astype(float)  # orders a week, Zipf
    tier = np.where(
        age_days < 90, "new", np.where((size >= 8) & (age_days > 365), "top_rated", "standard")
    )
    sellers = pd.DataFrame(
        {
            "seller_id": [f"S{i:06d}" for i in rng.choice(900_000, n_sellers, replace=False)],
            "vertical": vert,
            "category": cat,
            "country": rng.choice(countries, n_sellers, p=country_share),
            "seller_tier": tier,
            "kyc_level": rng.choice([1, 2, 3], n_sellers, p=[0.25, 0.5, 0.25]),
            "payout_method": rng.choice(["bank", "wallet", "card"], n_sellers, p=[0.7, 0.2, 0.1]),
        }
    )  # fmt: skip
    subscription = rng.random(n_sellers) < 0.15  # fixed-price boxes: one gross a week
    price = rng.choice([19.0, 24.99, 29.0, 39.0, 49.99], n_sellers)
    effect = rng.normal(0, 0.7, n_sellers)
    first = rng.integers(1, 27, n_sellers)
    weeks_active = np.minimum(rng.geometric(0.06, n_sellers), 27 - first)
    rows = []
    for s in range(n_sellers):
        for w in range(first[s], first[s] + weeks_active[s]):
            rows.append((s, w))
    si = np.array([r[0] for r in rows])
    week = np.array([r[1] for r in rows])
    df = sellers.iloc[si].reset_index(drop=True)
    n = len(df)
    df.insert(0, "payout_id", [f"PO-{i:09d}" for i in rng.choice(10**9, n, replace=False)])
    df["week"] = [f"2026-W{w:02d}" for w in week]
    df["account_age_days"] = age_days[si] + 7 * (week - first[si])
    n_orders = rng.poisson(size[si] * rng.lognormal(0, 0.3, n)) + 1
    basket = {"electronics": 180, "fashion": 55, "home": 90, "collectibles": 120}
    gross = n_orders * df["vertical"].map(basket).to_numpy() * rng.lognormal(0, 0.5, n)
    sub = subscription[si]
    n_orders = np.where(sub, np.maximum(np.round(size[si]), 1).astype(int), n_orders)
    gross = np.where(sub, n_orders * price[si], gross)
    df["n_orders"] = n_orders
    df["gross_sales"] = np.round(gross, 2)
    refund_rate = np.clip(
        rng.beta(1.2, 20, n) + 0.03 * (df["vertical"].to_numpy() == "fashion"), 0, 0.9
    )
    refund_rate = np.where(sub, 0.0, refund_rate)
    df["refunds"] = np.round(gross * refund_rate, 2)
    df["chargebacks"] = rng.poisson(0.02 * n_orders**0.7)
    net = gross * (1 - df["vertical"].map(fee).to_numpy()) - df["refunds"].to_numpy()
    promo = rng.random(n) < 0.1  # fees waived in a promotion week, drawn per payout
    net = np.where(promo, gross - df["refunds"].to_numpy(), net)
    capped = (df["seller_tier"].to_numpy() == "new") & (net > 5000)
    df["payout_amount"] = np.round(np.where(capped, 5000.0, net), 2)
    df["fee_waived"] = promo
    df["bank_changed_7d"] = rng.random(n) < 0.03
    df["first_payout"] = week == first[si]
    z = (
        -3.1
        + effect[si]
        + df["vertical"].map(vertical_effect).to_numpy()
        + df["country"].map(country_effect).to_numpy()
        + df["seller_tier"].map({"new": 0.7, "standard": 0.0, "top_rated": -0.8}).to_numpy()
        - 0.3 * (df["kyc_level"].to_numpy() - 2)
        + 1.8 * df["bank_changed_7d"].to_numpy()
        + 0.6 * df["first_payout"].to_numpy()
        + 0.25 * np.minimum(df["chargebacks"].to_numpy(), 6)
        + 3.0 * refund_rate
        + 0.25 * np.log1p(gross / 500)
        + 0.5 * capped
        + 0.4 * (df["payout_method"].to_numpy() == "card")
        # a collectibles seller's big week is looked at (resale of stolen cards)
        + 0.6 * ((df["vertical"].to_numpy() == "collectibles") & (gross > 3000))
        + rng.normal(0, 0.4, n)
    )
    df["held"] = (rng.random(n) < _logistic(z)).astype(int)
    return df, "seller_id"


def rentals(rng: np.random.Generator, n_applicants: int = 6_000) -> tuple[pd.DataFrame, str]:
    """Rental applications; the label ``approved`` (about 55 %)."""
    cities = {
        "Lisbon": ["Alfama", "Baixa", "Belem", "Campo de Ourique", "Graca", "Parque"],
        "Porto": ["Ribeira", "Boavista", "Bonfim", "Foz"],
        "Braga": ["Centro", "Gualtar", "Maximinos"],
        "Faro": ["Se", "Montenegro", "Gambelas", "Penha", "Bom Joao"],
    }
    city_rent = {"Lisbon": 1300, "Porto": 1000, "Braga": 750, "Faro": 850}
    hoods = [(c, h) for c, hs in cities.items() for h in hs]
    hood_factor = {
        h: f for (_, h), f in zip(hoods, rng.lognormal(0, 0.15, len(hoods)), strict=True)
    }
    n_listings = 1_500
    hood_pick = rng.integers(0, len(hoods), n_listings)
    bedrooms = rng.choice([0, 1, 2, 3, 4], n_listings, p=[0.12, 0.33, 0.32, 0.18, 0.05])
    listing_city = np.array([hoods[i][0] for i in hood_pick], dtype=object)
    listing_hood = np.array([hoods[i][1] for i in hood_pick], dtype=object)
    rent = (
        np.array([city_rent[c] for c in listing_city])
        * np.array([hood_factor[h] for h in listing_hood])
        * (0.65 + 0.25 * bedrooms)
        * rng.lognormal(0, 0.08, n_listings)
    )
    managers = [f"PM{i:03d}" for i in range(60)]
    manager_size = rng.zipf(1.6, 60).clip(1, 80).astype(float)
    manager = rng.choice(managers, n_listings, p=manager_size / manager_size.sum())
    strict = dict(zip(managers, rng.normal(0, 0.6, 60), strict=True))
    listings = pd.DataFrame(
        {
            "listing_id": [f"L{i:05d}" for i in rng.choice(90_000, n_listings, replace=False)],
            "city": listing_city,
            "neighborhood": listing_hood,
            "bedrooms": bedrooms,
            "monthly_rent": (np.round(rent / 25) * 25).astype(int),
            "deposit_months": rng.choice([1.0, 1.5, 2.0], n_listings, p=[0.5, 0.2, 0.3]),
            "pets_allowed": rng.random(n_listings) < 0.45,
            "property_manager": manager,
        }
    )
    employment = rng.choice(["salaried", "self_employed", "contractor", "student", "retired"],
                            n_applicants, p=[0.58, 0.12, 0.1, 0.12, 0.08])  # fmt: skip
    student = employment == "student"
    income = np.round(rng.lognormal(np.log(32_000), 0.45, n_applicants), -3)
    income = np.where(
        student, np.round(rng.lognormal(np.log(9_000), 0.5, n_applicants), -3), income
    )
    score = np.round(rng.normal(690, 60, n_applicants)).clip(300, 850)
    pet_share = [0.62, 0.17, 0.16, 0.05]
    no_file = student & (rng.random(n_applicants) < 0.5) | (rng.random(n_applicants) < 0.04)
    app = pd.DataFrame(
        {
            "applicant_id": [f"A{i:06d}" for i in rng.choice(900_000, n_applicants, replace=False)],
            "employment": employment,
            "annual_income": np.maximum(income, 1000).astype(int),
            "credit_score": np.where(no_file, np.nan, score),
            "household_size": np.minimum(rng.geometric(0.45, n_applicants), 6),
            "pets": rng.choice(["none", "cat", "dog", "both"], n_applicants, p=pet_share),
            "eviction_record": rng.random(n_applicants) < 0.02,
            "guarantor": rng.random(n_applicants) < np.where(student, 0.6, 0.08),
            "smoker": rng.random(n_applicants) < 0.09,  # independent of the rest of the row
        }
    )  # fmt: skip
    effect = rng.normal(0, 0.5, n_applicants)
    n_apps = np.minimum(rng.geometric(0.45, n_applicants), 5)
    ai = np.repeat(np.arange(n_applicants), n_apps)
    # applicants look at listings they can about afford
    afford = app["annual_income"].to_numpy()[ai] / 12 * rng.uniform(0.2, 0.6, ai.size)
    order = np.argsort(listings["monthly_rent"].to_numpy())
    pos = np.searchsorted(listings["monthly_rent"].to_numpy()[order], afford)
    pos = np.clip(pos + rng.integers(-60, 60, ai.size), 0, n_listings - 1)
    li = order[pos]
    df = pd.concat(
        [app.iloc[ai].reset_index(drop=True), listings.iloc[li].reset_index(drop=True)], axis=1
    )
    n = len(df)
    df.insert(0, "application_id", [f"APP{i:07d}" for i in rng.choice(9_000_000, n, replace=False)])
    df["rent_to_income"] = np.round(12 * df["monthly_rent"] / df["annual_income"], 2)
    df["lease_months"] = rng.choice([6, 12, 24], n, p=[0.15, 0.65, 0.2])
    df["move_in_days"] = np.minimum(rng.geometric(0.07, n), 120)
    pets = df["pets"].to_numpy() != "none"
    employment_effect = {"salaried": 0.3, "self_employed": -0.2, "contractor": -0.3,
                         "student": -0.6, "retired": 0.2}  # fmt: skip
    cs = df["credit_score"].to_numpy()
    z = (
        0.9
        + effect[ai]
        + df["property_manager"].map(strict).to_numpy()
        + 5.0 * (0.33 - np.minimum(df["rent_to_income"].to_numpy(), 1.5))
        + np.where(np.isnan(cs), -0.4, 0.01 * (np.nan_to_num(cs, nan=690) - 690))
        + df["employment"].map(employment_effect).to_numpy()
        + np.where(df["employment"].to_numpy() == "student", 1.4, 0.5) * df["guarantor"].to_numpy()
        - 2.5 * df["eviction_record"].to_numpy()
        - 1.8 * (pets & ~df["pets_allowed"].to_numpy())
        - 0.35 * df["smoker"].to_numpy()
        - 0.15 * np.maximum(df["household_size"].to_numpy() - df["bedrooms"].to_numpy() - 1, 0)
        + 0.2 * (df["lease_months"].to_numpy() == 24)
        - 0.004 * df["move_in_days"].to_numpy()
        + rng.normal(0, 0.4, n)
    )
    df["approved"] = (rng.random(n) < _logistic(z)).astype(int)
    return df, "applicant_id"


def shipments(rng: np.random.Generator, n_shippers: int = 1_800) -> tuple[pd.DataFrame, str]:
    """Parcel shipments of business shippers; the label ``late`` (delivered after the promised
    date, about 12 %). Written in session 18 (clean22)."""
    services = {  # carrier -> {service: (share within the carrier, promised days, effect)}
        "NorthPost": {"NP-Standard": (0.7, 4, 0.0), "NP-Express": (0.3, 2, 0.3)},
        "Velo": {"VL-Economy": (0.5, 6, -0.2), "VL-Priority": (0.5, 2, 0.4)},
        "Cargonet": {"CN-Freight": (0.8, 5, 0.2), "CN-Pallet": (0.2, 7, 0.5)},
        "AirLink": {"AL-NextDay": (0.6, 1, 0.6), "AL-SameDay": (0.4, 0, 0.9)},
        "LocalRun": {"LR-City": (1.0, 1, -0.3)},
    }
    carrier_share = {"NorthPost": 0.38, "Velo": 0.24, "Cargonet": 0.14, "AirLink": 0.12,
                     "LocalRun": 0.12}  # fmt: skip
    carrier_effect = {"NorthPost": 0.0, "Velo": 0.25, "Cargonet": -0.1, "AirLink": -0.2,
                      "LocalRun": 0.1}  # fmt: skip
    regions = ["north", "south", "east", "west", "central", "islands"]
    region_effect = dict(zip(regions, [0.0, 0.1, -0.1, 0.2, -0.2, 0.9], strict=True))
    hubs = [f"HUB{i:02d}" for i in range(14)]
    hub_effect = dict(zip(hubs, rng.normal(0, 0.35, len(hubs)), strict=True))
    industry = rng.choice(["retail", "pharma", "electronics", "apparel", "industrial"],
                          n_shippers, p=[0.4, 0.08, 0.17, 0.25, 0.1])  # fmt: skip
    size = np.minimum(rng.zipf(1.7, n_shippers), 150)
    shipper_effect = rng.normal(0, 0.5, n_shippers)
    home_hub = rng.choice(len(hubs), n_shippers)
    # a fifth of the shippers send one boxed product: one weight and one declared value
    boxed = rng.random(n_shippers) < 0.2
    box_weight = np.round(rng.lognormal(np.log(2.0), 0.6, n_shippers), 1)
    box_value = np.round(rng.lognormal(np.log(60.0), 0.7, n_shippers) / 5) * 5
    si = np.repeat(np.arange(n_shippers), size)
    n = si.size
    carriers = list(services)
    carrier = rng.choice(len(carriers), n, p=[carrier_share[c] for c in carriers])
    service = np.empty(n, dtype=object)
    promised = np.zeros(n)
    s_effect = np.zeros(n)
    for k, c in enumerate(carriers):
        rows = np.flatnonzero(carrier == k)
        names = list(services[c])
        pick = rng.choice(len(names), rows.size, p=[services[c][x][0] for x in names])
        service[rows] = np.asarray(names, dtype=object)[pick]
        promised[rows] = [services[c][names[i]][1] for i in pick]
        s_effect[rows] = [services[c][names[i]][2] for i in pick]
    dest = rng.choice(len(regions), n, p=[0.2, 0.22, 0.18, 0.18, 0.17, 0.05])
    distance = np.round(np.where(dest == 5, rng.uniform(300, 900, n),
                                 rng.lognormal(np.log(180), 0.7, n)))  # fmt: skip
    weight = np.where(boxed[si], box_weight[si], np.round(rng.lognormal(np.log(3.0), 0.9, n), 1))
    value = np.where(boxed[si], box_value[si], np.round(rng.lognormal(np.log(90.0), 1.0, n), 2))
    pickup_day = rng.choice(7, n, p=[0.18, 0.18, 0.18, 0.18, 0.2, 0.05, 0.03])
    hazmat = rng.random(n) < np.where(industry[si] == "pharma", 0.08, 0.01)
    # an address corrected in transit: 2.5 % of the shipments whatever the rest of the row,
    # a strong natural cause of lateness (+2.2 log-odds), as the rentals' eviction record
    corrected = rng.random(n) < 0.025
    signature = rng.random(n) < np.where(value > 250, 0.7, 0.15)
    weeks = rng.integers(1, 27, n)
    storm = {(r, w) for r in range(6) for w in range(1, 27) if rng.random() < 0.06}
    in_storm = np.array([(d, w) in storm for d, w in zip(dest, weeks, strict=True)])
    z = (
        -2.6
        + shipper_effect[si]
        + np.array([carrier_effect[carriers[c]] for c in carrier])
        + s_effect
        + np.array([region_effect[regions[d]] for d in dest])
        + np.array([hub_effect[hubs[h]] for h in home_hub[si]])
        + 0.35 * np.log(distance / 180)
        + 0.1 * np.log1p(weight)
        + 0.25 * (pickup_day >= 4)
        + 2.2 * corrected
        + 0.6 * hazmat
        + 1.1 * (hazmat & np.isin(carrier, [3]))  # hazmat by air waits for clearance
        + 1.3 * in_storm
        + 0.2 * signature
        - 0.15 * promised
        + rng.normal(0, 0.3, n)
    )
    late = (rng.random(n) < _logistic(z)).astype(int)
    df = pd.DataFrame(
        {
            "shipment_id": [f"SH{i:08d}" for i in rng.choice(90_000_000, n, replace=False)],
            "shipper_id": [f"S{i:05d}" for i in si],
            "industry": industry[si],
            "origin_hub": np.asarray(hubs, dtype=object)[home_hub[si]],
            "carrier": np.asarray(carriers, dtype=object)[carrier],
            "service": service,
            "promised_days": promised.astype(int),
            "dest_region": np.asarray(regions, dtype=object)[dest],
            "distance_km": distance.astype(int),
            "weight_kg": weight,
            "declared_value": value,
            "pickup_weekday": pickup_day,
            "ship_week": weeks,
            "hazmat": hazmat,
            "address_corrected": corrected,
            "signature_required": signature,
            "late": late,
        }
    )
    return df, "shipper_id"


def travelclaims(rng: np.random.Generator, n_policies: int = 9_000) -> tuple[pd.DataFrame, str]:
    """Travel-insurance claims of policyholders with seasonal products; the label ``denied``
    (about 15 %). Written in session 19 (clean23)."""
    products = {  # product -> (share, months it sells in (1-12), claim-amount scale, effect)
        "ski_week": (0.08, (12, 1, 2, 3), 900.0, 0.3),
        "summer_beach": (0.22, (6, 7, 8), 400.0, -0.1),
        "annual_multi": (0.30, tuple(range(1, 13)), 600.0, -0.3),
        "single_trip": (0.30, tuple(range(1, 13)), 500.0, 0.0),
        "cruise": (0.06, (4, 5, 9, 10), 1500.0, 0.2),
        "student_year": (0.04, (8, 9), 300.0, 0.4),
    }
    names = list(products)
    channels = ["agent", "web", "bank_partner", "airline"]
    product = rng.choice(len(names), n_policies, p=[products[p][0] for p in names])
    channel = rng.choice(len(channels), n_policies, p=[0.25, 0.45, 0.15, 0.15])
    age = np.clip(np.round(rng.normal(44, 15, n_policies)), 18, 89).astype(int)
    age = np.where(
        np.array(names)[product] == "student_year", rng.integers(18, 27, n_policies), age
    )
    effect = rng.normal(0, 0.4, n_policies)
    claims = 1 + rng.poisson(np.where(np.array(names)[product] == "annual_multi", 1.2, 0.3))
    pi = np.repeat(np.arange(n_policies), claims)
    n = pi.size
    month = np.array([rng.choice(products[names[product[i]]][1]) for i in pi])
    kinds = ["medical", "cancellation", "baggage", "delay", "theft"]
    kind_share = {"ski_week": [0.5, 0.2, 0.1, 0.1, 0.1], "cruise": [0.3, 0.4, 0.1, 0.15, 0.05]}
    kind = np.array([rng.choice(5, p=kind_share.get(names[product[i]], [0.25, 0.3, 0.2, 0.15, 0.1]))
                     for i in pi])  # fmt: skip
    scale = np.array([products[names[product[i]]][2] for i in pi])
    amount = np.round(scale * rng.lognormal(0, 0.9, n) * np.where(kind == 1, 2.0, 1.0), 2)
    limit = np.where(np.array(names)[product[pi]] == "student_year", 2000.0, 10000.0)
    amount = np.minimum(amount, limit)  # the policy's limit caps the claim
    days_to_report = np.minimum(rng.geometric(0.08, n), 365)
    receipts = rng.random(n) < np.where(kind == 3, 0.6, 0.85)
    abroad = rng.random(n) < 0.7
    pre_existing = (kind == 0) & (rng.random(n) < 0.05 + 0.004 * (age[pi] - 18))
    # a storm in one winter month grounds flights: delay claims pile up, all paid
    storm_month = int(rng.choice([1, 2, 12]))
    z = (
        -2.4
        + effect[pi]
        + np.array([products[names[product[i]]][3] for i in pi])
        + np.array([0.0, 0.3, -0.2, -0.4, 0.5])[kind]
        + np.array([-0.2, 0.2, -0.1, 0.1])[channel[pi]]
        + 0.3 * np.log1p(amount / 500)
        + 0.012 * np.maximum(days_to_report - 30, 0)
        - 1.0 * receipts
        + 2.0 * pre_existing
        - 1.5 * ((kind == 3) & (month == storm_month))
        + 0.5 * ((np.array(names)[product[pi]] == "ski_week") & (kind == 0) & (age[pi] > 65))
        + rng.normal(0, 0.3, n)
    )
    df = pd.DataFrame(
        {
            "claim_id": [f"TC{i:08d}" for i in rng.choice(90_000_000, n, replace=False)],
            "policy_id": [f"P{i:06d}" for i in pi],
            "product": np.asarray(names, dtype=object)[product[pi]],
            "sales_channel": np.asarray(channels, dtype=object)[channel[pi]],
            "insured_age": age[pi],
            "claim_month": month,
            "claim_kind": np.asarray(kinds, dtype=object)[kind],
            "amount_claimed": amount,
            "days_to_report": days_to_report,
            "receipts_attached": receipts,
            "abroad": abroad,
            "pre_existing_condition": pre_existing,
            "denied": (rng.random(n) < _logistic(z)).astype(int),
        }
    )
    return df, "policy_id"


def loanpanel(rng: np.random.Generator, n_loans: int = 2_500) -> tuple[pd.DataFrame, str]:
    """Monthly snapshots of instalment loans (a panel: one row per loan and month, the loan's
    static attributes repeated); the label ``delinquent_next`` (30+ days past due the next
    month, about 4 %). Written in session 19 (clean23)."""
    grades = ["A", "B", "C", "D", "E"]
    grade = rng.choice(5, n_loans, p=[0.2, 0.3, 0.25, 0.15, 0.1])
    purposes = ["car", "home_improvement", "debt_consolidation", "medical", "wedding", "other"]
    purpose = rng.choice(len(purposes), n_loans, p=[0.25, 0.2, 0.35, 0.05, 0.03, 0.12])
    regions = [f"R{i}" for i in range(9)]
    region = rng.choice(9, n_loans, p=[0.2, 0.15, 0.15, 0.1, 0.1, 0.1, 0.08, 0.07, 0.05])
    term = rng.choice([12, 24, 36, 48, 60], n_loans, p=[0.1, 0.25, 0.35, 0.15, 0.15])
    principal = np.round(rng.lognormal(np.log(9000), 0.6, n_loans) / 100) * 100
    rate = np.round(0.04 + 0.025 * grade + rng.normal(0, 0.005, n_loans), 4)
    income = np.round(rng.lognormal(np.log(42000), 0.45, n_loans) / 1000) * 1000
    effect = rng.normal(0, 0.8, n_loans)
    start = rng.integers(1, 19, n_loans)  # months of the 24-month window
    months = np.minimum(term, 25 - start)
    li = np.repeat(np.arange(n_loans), months)
    age = np.concatenate([np.arange(m) for m in months])  # months since origination
    n = li.size
    paid_share = age / term[li]
    balance = np.round(principal[li] * (1 - paid_share), 2)
    instalment = np.round(principal * (rate / 12) / (1 - (1 + rate / 12) ** -term), 2)
    # days past due: a loan's own path (a missed payment carries over to the next month)
    dpd = np.zeros(n, dtype=int)
    starts = np.r_[0, np.cumsum(months)[:-1]]
    for k in range(n_loans):
        d = 0
        for t in range(months[k]):
            risk = _logistic(-4.2 + 0.45 * grade[k] + effect[k] + 1.8 * (d > 0))
            d = d + 30 if rng.random() < risk else max(d - 30, 0)
            dpd[starts[k] + t] = min(d, 120)
    calendar = start[li] + age
    unemployment = 0.3 * np.sin(calendar / 24 * 2 * np.pi) + rng.normal(0, 0.05, 24)[calendar - 1]
    z = (
        -4.3
        + effect[li]
        + 0.4 * grade[li]
        + np.array([0.0, -0.2, 0.3, 0.5, 0.2, 0.1])[purpose[li]]
        + 0.6 * np.log(instalment[li] * 12 / income[li] / 0.1)
        + 1.6 * (dpd >= 30)
        + 0.9 * (dpd >= 60)
        - 0.8 * (paid_share > 0.75)
        + 0.8 * unemployment
        + rng.normal(0, 0.2, n)
    )
    df = pd.DataFrame(
        {
            "snapshot_id": [f"L{i:09d}" for i in rng.choice(900_000_000, n, replace=False)],
            "loan_id": [f"LN{i:06d}" for i in li],
            "grade": np.asarray(grades, dtype=object)[grade[li]],
            "purpose": np.asarray(purposes, dtype=object)[purpose[li]],
            "region": np.asarray(regions, dtype=object)[region[li]],
            "term_months": term[li],
            "interest_rate": rate[li],
            "annual_income": income[li],
            "principal": principal[li],
            "months_on_book": age,
            "balance": balance,
            "instalment": instalment[li],
            "days_past_due": dpd,
            "calendar_month": calendar,
            "delinquent_next": (rng.random(n) < _logistic(z)).astype(int),
        }
    )
    return df, "loan_id"


def telecom(rng: np.random.Generator, n_customers: int = 15_000) -> tuple[pd.DataFrame, str]:
    """Mobile customers, one row each (households of 1-4 lines share an account); heavy
    category cardinality (a handset model of about 400, a home city of about 600, both Zipf);
    the label ``churned`` (about 18 %). Written in session 19 (clean23)."""
    n_handsets, n_cities = 400, 600
    handset_w = 1.0 / np.arange(1, n_handsets + 1) ** 1.1
    city_w = 1.0 / np.arange(1, n_cities + 1) ** 0.9
    brand_of = rng.choice(8, n_handsets, p=[0.3, 0.25, 0.12, 0.1, 0.08, 0.06, 0.05, 0.04])
    handset_age = rng.integers(0, 7, n_handsets)  # years since release
    city_effect = rng.normal(0, 0.25, n_cities)
    sizes = rng.choice([1, 2, 3, 4], n_customers // 2, p=[0.55, 0.25, 0.12, 0.08])
    hh = np.repeat(np.arange(sizes.size), sizes)[:n_customers]
    n = hh.size
    city = rng.choice(n_cities, sizes.size, p=city_w / city_w.sum())[hh]
    hh_effect = rng.normal(0, 0.6, sizes.size)[hh]
    handset = rng.choice(n_handsets, n, p=handset_w / handset_w.sum())
    plans = ["prepaid", "basic", "plus", "unlimited", "family"]
    plan = np.where(sizes[hh] > 1, 4, rng.choice(4, n, p=[0.25, 0.35, 0.25, 0.15]))
    tenure = np.minimum(rng.geometric(1 / 30, n), 120)
    contract_left = np.where(plan == 0, 0, np.maximum(24 - tenure % 24, 0))
    monthly = np.round(np.array([15, 30, 45, 65, 95])[plan] * rng.lognormal(0, 0.15, n), 2)
    data_gb = np.round(rng.lognormal(np.log(np.array([2, 5, 12, 40, 30])[plan]), 0.7), 1)
    drops = rng.poisson(0.6 + 0.3 * (handset_age[handset] > 4), n)
    support_calls = rng.poisson(0.4, n)
    ported_in = rng.random(n) < 0.15
    z = (
        -1.8
        + hh_effect
        + city_effect[city]
        + np.array([0.8, 0.1, -0.1, -0.3, -0.6])[plan]
        - 0.9 * (contract_left > 2)
        + 0.25 * np.minimum(drops, 5)
        + 0.35 * np.minimum(support_calls, 4)
        + 0.15 * handset_age[handset]
        - 0.25 * np.log1p(tenure / 12)
        + 0.5 * ported_in * (tenure < 12)
        + rng.normal(0, 0.3, n)
    )
    brands = ["Apex", "Borealis", "Corvid", "Dynamo", "Ember", "Fjord", "Gale", "Halo"]
    df = pd.DataFrame(
        {
            "customer_id": [f"C{i:07d}" for i in rng.choice(9_000_000, n, replace=False)],
            "account_id": [f"A{i:06d}" for i in hh],
            "home_city": [f"city_{c:03d}" for c in city],
            "handset_brand": np.asarray(brands, dtype=object)[brand_of[handset]],
            "handset_model": [f"{brands[brand_of[h]]}-{h:03d}" for h in handset],
            "plan": np.asarray(plans, dtype=object)[plan],
            "tenure_months": tenure,
            "months_left_on_contract": contract_left,
            "monthly_charge": monthly,
            "data_gb": data_gb,
            "dropped_calls_30d": drops,
            "support_calls_90d": support_calls,
            "ported_in": ported_in,
            "churned": (rng.random(n) < _logistic(z)).astype(int),
        }
    )
    return df, "account_id"


SETS: dict[str, Callable[[np.random.Generator], tuple[pd.DataFrame, str]]] = {
    "homeclaims": homeclaims,
    "payouts": payouts,
    "rentals": rentals,
    # appended: each set draws from seed * 10 + its place, so the sets before it are unchanged
    "shipments": shipments,
    # session 19 (clean23), appended in turn
    "travelclaims": travelclaims,
    "loanpanel": loanpanel,
    "telecom": telecom,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--seed", type=int, default=1, help="each set draws from seed * 10 + k")
    ap.add_argument("--only", default=None, help="comma-separated sets (default: all)")
    ap.add_argument("--train-share", type=float, default=0.7, help="share of the units in _train")
    args = ap.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)
    todo = args.only.split(",") if args.only else list(SETS)
    for k, name in enumerate(SETS):
        if name not in todo:
            continue
        rng = np.random.default_rng(args.seed * 10 + k)
        df, unit = SETS[name](rng)
        units = df[unit].unique()
        train_units = set(rng.permutation(units)[: round(args.train_share * units.size)])
        in_train = df[unit].isin(train_units)
        df.to_csv(args.outdir / f"{name}.csv", index=False)
        df[in_train].to_csv(args.outdir / f"{name}_train.csv", index=False)
        df[~in_train].to_csv(args.outdir / f"{name}_test.csv", index=False)
        label = df.columns[-1]
        print(
            f"{name}: {len(df):,} rows, {units.size:,} units of {unit}, label {label} "
            f"{df[label].mean():.1%}; train {int(in_train.sum()):,} rows, "
            f"test {int((~in_train).sum()):,}"
        )


if __name__ == "__main__":
    main()
