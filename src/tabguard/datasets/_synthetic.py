"""A synthetic card-fraud data set with string categories and its contract.

It exists so that tests and benchmarks exercise a second domain: text categories, a boolean,
decimals, a combination rule and a rare positive class. The generator is a fixed logistic
model of plausible risk factors; nothing about it is tuned to tabguard's detectors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabguard.contract import Contract, contract_from_dict

CHANNELS = ["in_store", "contactless", "online", "phone"]
MERCHANTS = [
    "grocery",
    "fuel",
    "restaurants",
    "electronics",
    "travel",
    "gaming",
    "jewelry",
    "digital_goods",
]
COUNTRIES = ["PT", "ES", "FR", "DE", "GB", "US", "BR", "NG", "CN"]
GENDERS = ["F", "M", "X"]


def card_fraud_contract() -> Contract:
    """The contract of :func:`make_card_fraud`."""
    return contract_from_dict(
        {
            "name": "card_fraud",
            "version": "1",
            "description": "Synthetic card transactions; the score is the probability of fraud.",
            "id": "tx_id",
            "label": {"column": "is_fraud", "positive": 1, "negative": 0, "favorable": 0},
            "decision": {"positive_means": "deny", "threshold": 0.5},
            "segments": ["channel"],
            "features": {
                "amount": {
                    "type": "number",
                    "min": 0.01,
                    "max": 50000,
                    "precision": 2,
                    "clip": [0.01, 20000],
                    "gameable": True,
                    "neutral": 45.0,
                    "bins": [0, 10, 50, 100, 500, 1000, 5000, 50000],
                },
                "hour": {
                    "type": "integer",
                    "min": 0,
                    "max": 23,
                    "gameable": True,
                    "neutral": 14,
                    "bins": [0, 6, 12, 18, 23],
                },
                "channel": {
                    "type": "category",
                    "categories": CHANNELS,
                    "gameable": True,
                    "neutral": "in_store",
                },
                "card_present": {"type": "boolean"},
                "merchant_category": {"type": "category", "categories": MERCHANTS},
                "country": {"type": "category", "categories": COUNTRIES},
                "customer_age": {"type": "integer", "min": 18, "max": 110},
                "gender": {"type": "category", "categories": GENDERS, "protected": True},
                "account_age_days": {
                    "type": "integer",
                    "min": 0,
                    "max": 36500,
                    "monotone": "decreasing",
                },
                "n_tx_24h": {"type": "integer", "min": 0, "max": 500, "monotone": "increasing"},
                "distance_km": {"type": "number", "min": 0, "max": 20000, "precision": 1},
            },
            "rules": [
                {
                    "name": "remote_channel_card_absent",
                    "description": "online and phone payments cannot have the card present",
                    "when": {"channel": {"in": ["online", "phone"]}},
                    "require": {"card_present": {"equals": False}},
                }
            ],
            "unacceptable": [
                {"name": "negative_amount", "case": {"amount": -5.0}, "expect": "reject"},
                {"name": "hour_25", "case": {"hour": 25}, "expect": "reject"},
            ],
        }
    )


def make_card_fraud(n_rows: int = 20_000, *, random_state: int = 0) -> pd.DataFrame:
    """Generate the synthetic card-fraud data set.

    Parameters
    ----------
    n_rows : int
        Number of transactions.
    random_state : int
        Seed; the same seed gives the same frame.

    Returns
    -------
    DataFrame
        Columns of :func:`card_fraud_contract` plus ``tx_id`` and the label ``is_fraud``.
    """
    rng = np.random.default_rng(random_state)
    n = n_rows
    channel = rng.choice(CHANNELS, size=n, p=[0.35, 0.25, 0.33, 0.07])
    merchant = rng.choice(MERCHANTS, size=n, p=[0.25, 0.12, 0.18, 0.1, 0.08, 0.1, 0.04, 0.13])
    country = rng.choice(COUNTRIES, size=n, p=[0.7, 0.08, 0.05, 0.04, 0.04, 0.03, 0.02, 0.02, 0.02])
    gender = rng.choice(GENDERS, size=n, p=[0.49, 0.49, 0.02])
    age = np.clip(np.round(rng.normal(42, 14, n)), 18, 95).astype(int)
    account_age = np.clip(np.round(rng.exponential(900, n)), 0, 36500).astype(int)
    scale = {
        "grocery": 35,
        "fuel": 50,
        "restaurants": 30,
        "electronics": 300,
        "travel": 400,
        "gaming": 40,
        "jewelry": 600,
        "digital_goods": 25,
    }
    amount = np.round(
        np.clip(np.array([scale[m] for m in merchant]) * rng.lognormal(0, 0.9, n), 0.01, 45000), 2
    )
    hour = np.clip(np.round(rng.normal(14, 5, n)), 0, 23).astype(int)
    n_tx = rng.poisson(2.0, n)
    # no two places on Earth are over ~20,000 km apart (the contract's maximum): the
    # exponential's tail is cut there (about 1 row in 600,000 reached past it)
    distance = np.round(
        np.minimum(
            np.where(country == "PT", rng.exponential(12, n), rng.exponential(1500, n)), 20000.0
        ),
        1,
    )
    card_present = np.isin(channel, ["in_store", "contactless"]) & (rng.random(n) > 0.02)
    logit = (
        -5.1
        + 1.1 * (channel == "online")
        + 1.3 * (channel == "phone")
        + 0.9 * np.isin(merchant, ["electronics", "jewelry", "digital_goods"])
        + 0.5 * (merchant == "gaming")
        + 0.8 * (country != "PT")
        + 0.9 * (hour <= 5)
        + 0.35 * np.log1p(amount / 50)
        + 0.22 * n_tx
        - 0.6 * np.log1p(account_age / 365)
        - 0.01 * (age - 42)
    )
    p = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < p).astype(int)
    return pd.DataFrame(
        {
            "tx_id": np.arange(1, n + 1),
            "amount": amount,
            "hour": hour,
            "channel": channel,
            "card_present": card_present,
            "merchant_category": merchant,
            "country": country,
            "customer_age": age,
            "gender": gender,
            "account_age_days": account_age,
            "n_tx_24h": n_tx,
            "distance_km": distance,
            "is_fraud": y,
        }
    )
