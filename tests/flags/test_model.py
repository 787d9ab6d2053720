"""Flag rules: parsing, canonical values, errors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tabguard.flags import FLAG_SPECS, FlagError, Flags, parse_flag
from tabguard.flags._model import flags_from_values


def test_every_spec_has_a_field_and_a_default() -> None:
    assert set(FLAG_SPECS) == set(Flags.model_fields)
    for spec in FLAG_SPECS.values():
        assert parse_flag(spec.name, spec.default) == spec.default


@given(st.floats(min_value=0.0, max_value=1.0))
def test_threshold_accepts_every_number_in_the_unit_interval(x: float) -> None:
    assert parse_flag("threshold", repr(x)) == x
    assert parse_flag("threshold", x) == x


@given(st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not 0.0 <= x <= 1.0))
def test_threshold_refuses_everything_else(x: float) -> None:
    with pytest.raises(FlagError, match="threshold"):
        parse_flag("threshold", str(x))


@given(st.lists(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True), max_size=6))
def test_neutralize_round_trips_through_the_command_line_form(names: list[str]) -> None:
    expected = list(dict.fromkeys(names))  # repeats dropped, order kept
    assert parse_flag("neutralize", ",".join(names) if names else "none") == expected
    assert parse_flag("neutralize", names) == expected


@pytest.mark.parametrize("word", ["unset", "default", "none", "NULL", ""])
def test_unset_words_reset_threshold(word: str) -> None:
    assert parse_flag("threshold", word) is None


def test_booleans_are_not_numbers() -> None:
    with pytest.raises(FlagError):
        parse_flag("delay", True)


def test_delay_must_be_finite() -> None:
    with pytest.raises(FlagError, match=">= 0"):
        parse_flag("delay", math.inf)


def test_stored_garbage_falls_back_to_defaults() -> None:
    # A value edited by hand or written by a newer version must not stop the service.
    flags = flags_from_values({"threshold": 7, "flow": "disabled", "future_flag": 1})
    assert flags == Flags(flow="disabled")


def test_flags_are_immutable_and_serialisable() -> None:
    flags = Flags(neutralize=("AGE",))
    with pytest.raises(Exception, match="frozen"):
        flags.flow = "disabled"  # type: ignore[misc]
    assert flags.to_dict() == {
        "flow": "enabled",
        "model": "main",
        "threshold": None,
        "neutralize": ["AGE"],
        "delay": 0.0,
    }
