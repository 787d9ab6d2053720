"""Data sets shipped with tabguard (no download at run time).

* :func:`load_credit_default` - the UCI "default of credit card clients" data (30,000 rows,
  CC BY 4.0, see ``ATTRIBUTION.md`` beside this module) and :func:`credit_default_contract`.
* :func:`make_card_fraud` - a synthetic card-fraud generator with string categories and
  :func:`card_fraud_contract`.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import pandas as pd

from tabguard.contract import Contract, load_contract
from tabguard.datasets._synthetic import card_fraud_contract, make_card_fraud

__all__ = [
    "ATTRIBUTION",
    "card_fraud_contract",
    "credit_default_contract",
    "credit_default_contract_path",
    "credit_default_path",
    "load_credit_default",
    "make_card_fraud",
]

_PKG = resources.files(__name__)
ATTRIBUTION = (
    'UCI "default of credit card clients", I-Cheng Yeh (2009), DOI 10.24432/C55S3H, CC BY 4.0'
)


def credit_default_path() -> Path:
    """Path of the bundled, gzip-compressed CSV."""
    return Path(str(_PKG.joinpath("credit_default.csv.gz")))


def credit_default_contract_path() -> Path:
    """Path of the bundled contract YAML."""
    return Path(str(_PKG.joinpath("credit_default.yaml")))


@lru_cache(maxsize=1)
def _credit_default() -> pd.DataFrame:
    return pd.read_csv(credit_default_path())


def load_credit_default() -> pd.DataFrame:
    """Load the bundled UCI credit-default data.

    Returns
    -------
    DataFrame
        30,000 rows: ``ID``, 23 attributes and the label ``DEFAULT`` (1 = default).
        A fresh copy on every call.

    Notes
    -----
    Source: UCI Machine Learning Repository, "default of credit card clients", I-Cheng Yeh,
    DOI 10.24432/C55S3H, licensed CC BY 4.0.
    """
    return _credit_default().copy()


def credit_default_contract() -> Contract:
    """The bundled credit-default contract (SEX protected; AGE and PAY_AMT* gameable)."""
    return load_contract(credit_default_contract_path())
