"""Recognising legally protected or sensitive attributes from a column's name (and values).

Used by :func:`~tabguard.contract.infer_contract` (to draft ``protected: true``) and by the
data audit's unlawful-feature check (D4). Names are split into lower-case tokens first
(``customerGender`` → ``customer gender``, ``SEX_CODE`` → ``sex code``), so ``essex`` or
``trace_id`` never match ``sex`` or ``race``.

Two tiers:

* ``protected`` — attributes that anti-discrimination law protects in credit, insurance and
  employment almost everywhere (sex, gender, race, ethnicity, religion, nationality, skin colour,
  disability, pregnancy, sexual orientation, caste, genetic data). Using one as a model input is
  unlawful.
* ``sensitive`` — attributes protected in some jurisdictions or products only (a person's age,
  marital status, health): the reviewer must confirm the use is lawful, e.g. the US ECOA allows
  age in credit scoring only in empirically derived, demonstrably sound systems.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

Tier = Literal["protected", "sensitive"]

# Single tokens that name a protected attribute wherever they appear in a column name.
_PROTECTED_TOKENS: dict[str, str] = {
    "sex": "sex",
    "gender": "gender",
    "race": "race",
    "racial": "race",
    "ethnic": "ethnicity",
    "ethnicity": "ethnicity",
    "religion": "religion",
    "religious": "religion",
    "nationality": "nationality",
    "citizenship": "nationality",
    "disability": "disability",
    "disabled": "disability",
    "handicap": "disability",
    "pregnant": "pregnancy",
    "pregnancy": "pregnancy",
    "maternity": "pregnancy",
    "sexuality": "sexual orientation",
    "caste": "caste",
    "genetic": "genetic data",
}
# Token pairs: each token alone is too common ("national_id", "screen_orientation").
_PROTECTED_PAIRS: dict[tuple[str, str], str] = {
    ("national", "origin"): "nationality",
    ("country", "origin"): "nationality",
    ("sexual", "orientation"): "sexual orientation",
    ("skin", "color"): "skin colour",
    ("skin", "colour"): "skin colour",
    ("skin", "tone"): "skin colour",
}
_SENSITIVE_TOKENS: dict[str, str] = {
    "marital": "marital status",
    "marriage": "marital status",
    "married": "marital status",
    "spouse": "marital status",
    "health": "health",
    "birth": "age",
    "dob": "age",
}
# "age" names a person's age alone or after a word for the person, not "account_age_days".
_PERSON_WORDS = {
    "customer",
    "client",
    "applicant",
    "borrower",
    "person",
    "holder",
    "cardholder",
    "user",
    "member",
    "insured",
    "driver",
    "employee",
    "subject",
}
# Values of a sex/gender column (lower-case), used when the name says nothing.
_SEX_VALUES_M = {"m", "male", "man", "men", "masculine"}
_SEX_VALUES_F = {"f", "female", "woman", "women", "feminine"}
_SEX_VALUES_OTHER = {"x", "other", "non-binary", "nonbinary", "unknown", "u", "d", "diverse"}

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SPLIT = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class ProtectedMatch:
    """Why a column looks protected.

    Attributes
    ----------
    tier : {"protected", "sensitive"}
    attribute : str
        The attribute it names, e.g. ``"sex"``, ``"ethnicity"``, ``"age"``.
    reason : str
        Human text, e.g. ``"its name contains 'gender'"``.
    """

    tier: Tier
    attribute: str
    reason: str


def name_tokens(name: str) -> list[str]:
    """Split a column name into lower-case tokens (snake, kebab, camel and Pascal case)."""
    return [t for t in _SPLIT.split(_CAMEL.sub(" ", str(name)).lower()) if t]


def protected_name_match(name: str) -> ProtectedMatch | None:
    """Whether a column's name names a protected or sensitive attribute.

    Parameters
    ----------
    name : str
        The column name.

    Returns
    -------
    ProtectedMatch or None

    Examples
    --------
    >>> protected_name_match("customerGender").attribute
    'gender'
    >>> protected_name_match("account_age_days") is None
    True
    >>> protected_name_match("AGE").tier
    'sensitive'
    """
    tokens = name_tokens(name)
    for a, b in pairwise(tokens):
        if (a, b) in _PROTECTED_PAIRS:
            return ProtectedMatch("protected", _PROTECTED_PAIRS[a, b], f"its name has '{a} {b}'")
    for t in tokens:
        if t in _PROTECTED_TOKENS:
            return ProtectedMatch("protected", _PROTECTED_TOKENS[t], f"its name has '{t}'")
    for t in tokens:
        if t in _SENSITIVE_TOKENS:
            return ProtectedMatch("sensitive", _SENSITIVE_TOKENS[t], f"its name has '{t}'")
    if "age" in tokens:
        i = tokens.index("age")
        if len(tokens) == 1 or (i > 0 and tokens[i - 1] in _PERSON_WORDS):
            return ProtectedMatch("sensitive", "age", "its name says a person's age")
    return None


def looks_protected(name: str) -> bool:
    """True when the name names an attribute protected almost everywhere (tier ``protected``)."""
    m = protected_name_match(name)
    return m is not None and m.tier == "protected"


def protected_value_match(values: Iterable[object]) -> ProtectedMatch | None:
    """Whether a column's distinct values look like sex/gender codes (``M``/``F``, ``male``...).

    Parameters
    ----------
    values : iterable
        The column's distinct non-missing values.

    Returns
    -------
    ProtectedMatch or None
        Tier ``protected`` when every value is a sex/gender word and both a male and a female
        word occur.
    """
    vals = {str(v).strip().lower() for v in values}
    if not vals or len(vals) > 6:
        return None
    known = _SEX_VALUES_M | _SEX_VALUES_F | _SEX_VALUES_OTHER
    if vals <= known and vals & _SEX_VALUES_M and vals & _SEX_VALUES_F:
        shown = sorted(vals)
        return ProtectedMatch("protected", "sex", f"its values {shown} are sex/gender codes")
    return None
