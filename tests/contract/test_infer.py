"""Drafting a contract from data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from tests._orders import seller_orders

from tabguard.contract import (
    date_columns,
    guess_entity,
    guess_id,
    infer_contract,
    unnamed_entities,
    validate_frame,
)
from tabguard.contract._entity import label_design_effect
from tabguard.datasets import make_card_fraud
from tabguard.errors import DataError


def test_infer_credit(credit_df: pd.DataFrame) -> None:
    c = infer_contract(credit_df, "DEFAULT", name="credit")
    assert c.id == "ID" and c.entity is None
    assert c.features["SEX"].protected
    assert c.features["AGE"].type == "integer"
    assert c.features["AGE"].min is not None and c.features["AGE"].min <= 21
    assert c.features["EDUCATION"].type == "category"
    assert validate_frame(credit_df, c).ok  # the draft accepts the data it came from


def test_infer_strings_and_booleans() -> None:
    df = make_card_fraud(2000)
    c = infer_contract(df, "is_fraud")
    assert c.features["channel"].type == "category"
    assert set(c.features["channel"].categories or []) == {
        "in_store",
        "contactless",
        "online",
        "phone",
    }
    assert c.features["card_present"].type == "boolean"
    assert c.features["amount"].type == "number" and c.features["amount"].precision == 2
    assert c.features["gender"].protected
    assert validate_frame(df, c).ok


def test_infer_bad_label() -> None:
    df = pd.DataFrame({"a": [1, 2], "y": [0, None]})
    with pytest.raises(DataError, match="1 missing value"):
        infer_contract(df, "y")
    with pytest.raises(DataError, match="label column 'z' is not in the data"):
        infer_contract(df, "z")


@pytest.mark.parametrize(
    ("hi", "expected"),
    [
        (0.3, 0.3),
        (0.27, 0.27),
        (0.271, 0.28),
        (0.7, 0.7),
        (0.613, 0.62),
        (0.00421, 0.0043),
        (3000.0, 3000.0),
        (2501.0, 2600.0),
        (23.0, 23.0),  # an hour of the day: one digit drafted 30
        (699171.0, 700000.0),
    ],
)
def test_inferred_upper_bounds_are_round_numbers(hi: float, expected: float) -> None:
    from tabguard.contract._infer import _nice_ceil

    got = _nice_ceil(hi)
    assert got == expected
    assert got >= hi
    assert repr(got) == repr(expected)  # no binary artefact such as 0.30000000000000004


@example(999999999.9999999)  # log10 says 9.0
@given(st.floats(min_value=1e-6, max_value=1e9, allow_nan=False))
def test_inferred_bounds_enclose_the_value(x: float) -> None:
    from tabguard.contract._infer import _nice_ceil, _nice_floor

    assert x <= _nice_ceil(x) <= 1.1 * x + 1e-9  # widened by a tenth at most
    assert _nice_floor(x) <= x
    assert x < 10 or _nice_floor(x) >= x / 1.1 - 1e-9
    assert _nice_floor(-x) <= -x
    assert _nice_ceil(-x) >= -x
    assert repr(_nice_ceil(-min(x, 9.0))) == "0.0"  # never -0.0


def test_infer_says_a_long_category_list_is_cut() -> None:
    # 120 store ids: the draft lists 50 of them, and its note must say so; the other stores'
    # rows would break the contract as drafted.
    df = pd.DataFrame({"store": [f"S{i:03d}" for i in range(120)] * 2, "y": [0, 1] * 120})
    spec = infer_contract(df, label="y").features["store"]
    assert len(spec.categories or []) == 50
    assert "categories lists only the first 50" in (spec.description or "")
    assert "120 distinct text values" in (spec.description or "")


def test_a_violation_of_a_cut_list_says_the_draft_cut_it() -> None:
    # the integrity finding of the 70 stores the draft left out named the 50 listed as the
    # rule, as if the data had broken a list someone wrote
    from tabguard.contract import validate_frame

    df = pd.DataFrame({"store": [f"S{i:03d}" for i in range(120)] * 2, "y": [0, 1] * 120})
    contract = infer_contract(df, label="y")
    (group,) = validate_frame(df, contract).groups
    assert group.rule == "category" and group.count == 140
    assert "the 50 values listed ('S000', 'S001', 'S002', 'S003', 'S004', ...)" in group.message
    assert "`contract infer` cut" in group.message and "S049" not in group.message
    # a list written by hand (no draft's note) is quoted whole, as before
    written = contract.features["store"].model_copy(update={"description": None})
    from tabguard.contract._validate import category_message

    assert category_message("store", written) == f"store must be one of {written.categories!r}"


def test_infer_lists_every_code_of_a_category_whose_codes_repeat() -> None:
    # 400 product codes, 15 rows each: a category, not free text; a draft listing 50 of them
    # broke the contract on most rows
    df = pd.DataFrame({"sku": [f"SKU-{i:04d}" for i in range(400)] * 15, "y": [0, 1] * 3000})
    spec = infer_contract(df, label="y").features["sku"]
    assert spec.categories is not None and len(spec.categories) == 400
    assert "400 codes, all listed" in (spec.description or "")
    assert "free text" not in (spec.description or "")


def test_infer_small_scales_are_ordinal() -> None:
    # a 7-point scale and a 1..5 rating (every point used) are drafted as integer, with the
    # guess stated; named codes stay categories: a code list with a rare "other" code, three
    # codes, and codes that are not consecutive
    n = 700
    i = pd.Series(range(n))
    df = pd.DataFrame(
        {
            "party": i % 7,
            "rating": 1 + i % 5,
            "kind": i % 6,
            "region": i % 3,
            "years": (i % 4).map({0: 9, 1: 12, 2: 14, 3: 16}),
            "y": i % 2,
        }
    )
    df.loc[:2, "kind"] = 6  # 3 of 700 rows: a rare trailing code of a code list
    c = infer_contract(df, "y")
    party = c.features["party"]
    assert (party.type, party.min, party.max) == ("integer", 0, 6)
    assert "ordinal scale" in (party.description or "")
    assert c.features["rating"].type == "integer"
    assert (c.features["rating"].min, c.features["rating"].max) == (1, 5)
    assert c.features["kind"].type == "category"
    assert c.features["region"].type == "category"
    assert c.features["years"].type == "category"
    assert validate_frame(df, c).ok


def test_infer_counts_with_a_thinning_tail_are_integers() -> None:
    # witnesses 0..6 drafted as seven categories: a claim with seven witnesses broke the draft
    n = 3000
    witnesses = np.repeat(np.arange(7), [2200, 520, 180, 60, 25, 10, 5])
    calls = np.repeat(np.arange(1, 7), [900, 1000, 700, 300, 90, 10])  # mode at the second
    df = pd.DataFrame({"witnesses": witnesses, "calls": calls, "y": np.arange(n) % 2})
    c = infer_contract(df, "y")
    w = c.features["witnesses"]
    assert (w.type, w.min, w.max) == ("integer", 0, 12) and "count" in (w.description or "")
    assert (c.features["calls"].type, c.features["calls"].min) == ("integer", 1)
    # a code list: rare codes that do not only thin out (credit EDUCATION), a mode further
    # up (MARRIAGE), a tail that rises again
    education = np.repeat(np.arange(7), [14, 1050, 1400, 491, 12, 28, 5])
    marriage = np.repeat(np.arange(4), [54, 1366, 1560, 20])
    rises = np.repeat(np.arange(5), [2000, 600, 190, 205, 5])
    df = pd.DataFrame({"education": education, "marriage": marriage, "rises": rises})
    c = infer_contract(df.assign(y=np.arange(n) % 2), "y")
    assert [c.features[k].type for k in ("education", "marriage", "rises")] == ["category"] * 3


def test_a_two_valued_label_drafts_both_values() -> None:
    df = pd.DataFrame({"x": range(40), "y": [0, 1] * 20})
    c = infer_contract(df, "y")
    assert (c.label.positive, c.label.negative) == (1, 0)
    three = infer_contract(df.assign(y=[0, 1, 2, 2] * 10), "y")
    assert three.label.negative is None  # "not <positive>" stands for two values


def _loan_panel(loans: int = 40, months: int = 6) -> pd.DataFrame:
    """``loans`` loans observed monthly: amount and income fixed per loan, arrears varying."""
    rng = np.random.default_rng(3)
    amount = rng.integers(1, 50, loans) * 1000
    income = rng.integers(20, 90, loans) * 1000
    default = rng.random(loans) < 0.2
    rows = [
        {
            "loan_id": 100 + i,
            "loan_amount": int(amount[i]),
            "annual_income": int(income[i]),
            "days_past_due": int(rng.integers(0, 4) * 30 * default[i]),
            "defaulted": int(default[i]),
        }
        for i in range(loans)
        for _ in range(months)
    ]
    return pd.DataFrame(rows)


def test_a_repeated_id_is_drafted_as_the_entity() -> None:
    df = _loan_panel()
    guess = guess_entity(df, "defaulted")
    assert guess is not None and guess.column == "loan_id"
    assert (guess.entities, guess.rows) == (40, 240)
    assert {"loan_amount", "annual_income"} <= set(guess.constant)
    assert "entity: loan_id" in guess.message()
    c = infer_contract(df, "defaulted")
    assert c.entity == "loan_id" and "loan_id" not in c.features
    assert validate_frame(df, c).ok
    # opted out, or the column named as an attribute: a feature as before
    assert infer_contract(df, "defaulted", find_entity=False).entity is None
    for attribute in ("paid", "loan_age"):  # named as an attribute, not a unit
        assert guess_entity(df.rename(columns={"loan_id": attribute}), "defaulted") is None
    assert guess_entity(df.rename(columns={"loan_id": "LoanID"}), "defaulted") is not None
    # a unit's word and a numbering word name a unit too (fresh20's account_no); a numbering
    # word after anything else does not (an invoice's number repeating is no person)
    for unit in ("account_no", "policy_number", "CustomerNr"):
        found = guess_entity(df.rename(columns={"loan_id": unit}), "defaulted")
        assert found is not None and found.column == unit
    assert guess_entity(df.rename(columns={"loan_id": "invoice_no"}), "defaulted") is None
    # an id that does not repeat (one row per loan) is no entity
    assert guess_entity(df.drop_duplicates("loan_id"), "defaulted") is None
    assert infer_contract(df, "defaulted", entity="loan_amount").entity == "loan_amount"
    with pytest.raises(DataError, match="entity column 'account'"):
        infer_contract(df, "defaulted", entity="account")


def test_ids_of_other_units_are_left_out_and_unnamed_ones_named_beside_the_entity() -> None:
    """Orders of buyers from sellers: the buyer (more values) is drafted as the entity, the
    seller left out with a note (drafted as a category it listed 50 of 1,584 sellers); a
    phone number repeating per line is named although an entity was drafted (fresh18)."""
    rng = np.random.default_rng(8)
    n = 3000
    buyer = rng.integers(0, 600, n)
    seller = rng.integers(0, 120, n)
    line = rng.integers(0, 700, n)
    df = pd.DataFrame(
        {
            "buyer_id": buyer,
            "buyer_country": rng.choice(["DE", "FR", "IT"], 600)[buyer],
            "seller_id": seller,
            "seller_rating": np.round(rng.uniform(3, 5, 120), 1)[seller],
            "msisdn": 447900000000 + line,
            "line_plan": rng.choice(["S", "M", "L", "XL"], 700)[line],
            "price": np.round(rng.gamma(2, 20, n), 2),
            "dispute": (rng.random(n) < 0.1).astype(int),
        }
    )
    notes: list[str] = []
    c = infer_contract(df, "dispute", notes=notes)
    assert c.entity == "buyer_id" and "seller_id" not in c.features
    said = " ".join(" ".join(notes).split())
    assert "left out: seller_id repeats like an id of another unit" in said
    assert "msisdn repeats like an id of units" in said and "msisdn" in c.features
    # named by the user, the entity is the seller, and the buyer is left out
    c = infer_contract(df, "dispute", entity="seller_id")
    assert c.entity == "seller_id" and "buyer_id" not in c.features


def test_the_entity_is_the_unit_the_label_clusters_by() -> None:
    """Orders whose disputes are the sellers' (a few big sellers with their own rates): the
    seller is drafted, not the finer buyer, with the design effects said; patients within
    hospitals stay the entity whatever the hospitals' rates (fresh18's orders, lead)."""
    rng = np.random.default_rng(9)
    df, rate = seller_orders(rng)
    n = len(df)
    assert label_design_effect(df, "seller_id", "dispute") > 5.0
    assert label_design_effect(df, "buyer_id", "dispute") < 1.5
    guess = guess_entity(df, "dispute")
    assert guess is not None and guess.column == "seller_id"
    assert "the label clusters by it (design effect" in guess.message()
    assert infer_contract(df, "dispute").entity == "seller_id"
    # the disputes nobody's: the finest unit, as before
    flat = df.assign(dispute=(rng.random(n) < 0.1).astype(int))
    assert infer_contract(flat, "dispute").entity == "buyer_id"
    # patients nested in hospitals with their own rates: patients
    hospital = rng.integers(0, 30, 2000)
    nested = df.rename(columns={"buyer_id": "patient_id", "seller_id": "hospital_id"})
    nested["hospital_id"] = hospital[df["buyer_id"]]
    nested["seller_rating"] = np.round(rng.uniform(3, 5, 30), 1)[nested["hospital_id"]]
    nested["dispute"] = (rng.random(n) < rate[nested["hospital_id"]]).astype(int)
    assert label_design_effect(nested, "hospital_id", "dispute") > 2.0
    assert infer_contract(nested, "dispute").entity == "patient_id"


def test_a_unique_column_named_as_an_id_is_the_row_id() -> None:
    rng = np.random.default_rng(5)
    df = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 50.0, 200).round(2),
            "order_id": rng.permutation(200) + 5000,
            "y": rng.integers(0, 2, 200),
        }
    )
    assert guess_id(df, "y") == "order_id"
    c = infer_contract(df, "y")
    assert c.id == "order_id" and "order_id" not in c.features
    # named as an attribute, repeated, or a fraction: a feature
    assert guess_id(df.rename(columns={"order_id": "order_total"}), "y") is None
    assert guess_id(df.assign(order_id=df["order_id"] % 150), "y") is None
    assert guess_id(df.assign(order_id=df["order_id"] + 0.5), "y") is None
    # the names recognised before stay first
    assert guess_id(df.assign(ID=np.arange(200)), "y") == "ID"


def test_an_id_not_named_as_one_is_named_but_not_drafted() -> None:
    # a person id called zper, household columns constant within it: named for review
    df = _loan_panel().rename(columns={"loan_id": "zper"})
    assert guess_entity(df, "defaulted") is None
    found = unnamed_entities(df, "defaulted")
    assert [f.column for f in found] == ["zper"] and "loan_amount" in found[0].constant
    # a code with few values is a feature, not a candidate
    coarse = df.assign(zper=df["zper"] % 5)
    assert unnamed_entities(coarse, "defaulted") == []


def test_row_ids_named_with_a_number_word_and_dates_are_no_features() -> None:
    n = 120
    df = pd.DataFrame(
        {
            "invoice_no": np.arange(n) + 7000,
            "issued": pd.date_range("2026-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M"),
            "due": pd.date_range("2026-02-01", periods=n, freq="D").strftime("%d/%m/%Y"),
            "stamp": pd.date_range("2026-03-01", periods=n, freq="min"),
            "amount": np.linspace(1.0, 99.0, n),
            "y": np.arange(n) % 2,
        }
    )
    assert guess_id(df, "y") == "invoice_no"
    assert date_columns(df, "y") == ["issued", "due", "stamp"]
    c = infer_contract(df, "y")
    assert c.id == "invoice_no" and list(c.features) == ["amount"]
    # text that only starts like a number is not a date
    assert date_columns(df.assign(issued="2026 units"), "y") == ["due", "stamp"]
    # a billing month is a date: drafted as a category, every new month broke the contract
    months = pd.date_range("2024-01-01", periods=n, freq="MS")
    for fmt in ("%Y-%m", "%Y/%m", "%m/%Y"):
        assert date_columns(df.assign(issued=months.strftime(fmt)), "y")[0] == "issued", fmt
    # a code of four digits, a dash and two is a month only when it could be one
    assert date_columns(df.assign(issued="2024-13"), "y") == ["due", "stamp"]
    # an ISO week is a date too (fresh21's weekly payouts); a week 54 or a W-code is not
    for week in ("2026-W07", "2026W07", "2026-W07-3"):
        assert date_columns(df.assign(issued=week), "y")[0] == "issued", week
    for code in ("2026-W54", "W07", "2026-X07"):
        assert date_columns(df.assign(issued=code), "y") == ["due", "stamp"], code


def test_a_missing_label_names_its_other_spelling_and_every_column() -> None:
    df = pd.DataFrame({f"c{i}": [1, 2] for i in range(14)} | {"default": [0, 1]})
    with pytest.raises(DataError, match=r"\(the data has 'default'\).* and 3 more; give --label"):
        infer_contract(df, "DEFAULT")


def test_a_label_named_as_an_approval_drafts_positive_means_approve() -> None:
    """fresh21's rentals: ``approved`` drafted as a denial reported an approval rate of 41 %
    for a model approving 59 %; a refusal, or a rarer "no", stays a denial."""
    rng = np.random.default_rng(4)
    n = 400
    df = pd.DataFrame({"income": rng.normal(50, 10, n), "approved": (rng.random(n) < 0.6) * 1})
    notes: list[str] = []
    c = infer_contract(df, "approved", notes=notes)
    assert c.decision.positive_means == "approve" and c.favorable_label == 1
    assert any("decision.positive_means: approve drafted" in s for s in notes)
    for name in ("not_approved", "default", "is_fraud"):
        assert (
            infer_contract(df.rename(columns={"approved": name}), name).decision.positive_means
            == "deny"
        )
    # a text label whose rarer class (the positive by default) is "no": a refusal
    text = df.assign(approved=np.where(df["approved"] == 1, "yes", "no"))
    assert infer_contract(text, "approved").decision.positive_means == "deny"
    assert (
        infer_contract(
            df.rename(columns={"approved": "LoanApproval"}), "LoanApproval"
        ).decision.positive_means
        == "approve"
    )


def test_a_month_is_drafted_as_one_to_twelve() -> None:
    # loss_month observed 1..12 was drafted with min: 0 (the observed range rounded down); a
    # month seen only from 1 to 6 was six codes, and July would break the contract
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "loss_month": rng.integers(1, 13, 600),
            "RenewalMonth": rng.integers(1, 7, 600),
            "day_of_week": rng.integers(0, 7, 600),
            "tenure_months": rng.integers(1, 13, 600),  # a duration, not a calendar part
            "y": [0, 1] * 300,
        }
    )
    features = infer_contract(df, label="y").features
    for name in ("loss_month", "RenewalMonth"):
        spec = features[name]
        assert (spec.type, spec.min, spec.max) == ("integer", 1, 12), name
        assert "month of the year" in (spec.description or "")
    assert (features["day_of_week"].min, features["day_of_week"].max) == (0, 6)
    assert features["tenure_months"].min == 0  # the observed range, as before
