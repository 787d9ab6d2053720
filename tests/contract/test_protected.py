"""Recognising protected and sensitive attributes from names and values."""

from __future__ import annotations

import pytest

from tabguard.contract import looks_protected, protected_name_match, protected_value_match


@pytest.mark.parametrize(
    ("name", "attribute"),
    [
        ("SEX", "sex"),
        ("gender", "gender"),
        ("customerGender", "gender"),
        ("applicant_race", "race"),
        ("EthnicGroup", "ethnicity"),
        ("religion", "religion"),
        ("nationality", "nationality"),
        ("national_origin", "nationality"),
        ("has_disability", "disability"),
        ("is_pregnant", "pregnancy"),
        ("sexual_orientation", "sexual orientation"),
        ("skin_colour", "skin colour"),
    ],
)
def test_protected_names(name: str, attribute: str) -> None:
    m = protected_name_match(name)
    assert m is not None and m.tier == "protected" and m.attribute == attribute
    assert looks_protected(name)


@pytest.mark.parametrize(
    "name",
    ["essex_branch", "trace_id", "national_id", "screen_orientation", "account_age_days", "amount"],
)
def test_ordinary_names_do_not_match(name: str) -> None:
    assert protected_name_match(name) is None
    assert not looks_protected(name)


@pytest.mark.parametrize(
    ("name", "attribute"),
    [("AGE", "age"), ("customer_age", "age"), ("MARRIAGE", "marital status"), ("dob", "age")],
)
def test_sensitive_names_are_a_separate_tier(name: str, attribute: str) -> None:
    m = protected_name_match(name)
    assert m is not None and m.tier == "sensitive" and m.attribute == attribute
    assert not looks_protected(name)


def test_values_that_look_like_sex_codes() -> None:
    assert protected_value_match(["M", "F"]) is not None
    assert protected_value_match(["female", "male", "other"]) is not None
    assert protected_value_match(["M", "S", "L"]) is None  # sizes, not sexes
    assert protected_value_match(["F"]) is None
    assert protected_value_match([1, 2]) is None
