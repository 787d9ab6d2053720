"""The request path's fast forms agree with the reference: contract check, transform, JSON.

Each fast form answers only the ordinary case and hands everything else to the reference, so
the property is: whenever the fast form answers, its answer is the reference's.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tabguard.contract import FeatureTransform, RecordValidator, TransformOptions
from tabguard.datasets import card_fraud_contract, credit_default_contract
from tabguard.serving import random_records
from tabguard.serving._compiled import CompiledRecord, CompiledTransform, compile_contract
from tabguard.serving._guards import _parse_json_strict, guarded_features, new_decision_id
from tabguard.serving._guards import parse_json as fast_parse
from tabguard.serving._limits import MemoryMovingWindow
from tabguard.serving._record import dumps_json
from tabguard.serving._reference import RawEncoder

CREDIT = credit_default_contract()
FRAUD = card_fraud_contract()
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)


def transforms(contract: Any) -> list[FeatureTransform]:
    gameable = tuple(contract.gameable_features())
    binnable = tuple(n for n in gameable if contract.features[n].bins)
    return [
        FeatureTransform(contract),
        FeatureTransform(contract, TransformOptions(bins=binnable)),
        FeatureTransform(contract, TransformOptions(drop=gameable, clip=False)),
        FeatureTransform(contract, TransformOptions(neutralize=gameable[:1])),
    ]


@pytest.mark.parametrize("contract", [CREDIT, FRAUD], ids=["credit", "card_fraud"])
def test_compile_contract_checks_every_transform(contract: Any) -> None:
    record, compiled, reason = compile_contract(contract, transforms(contract))
    assert record is not None and reason is None
    assert all(c is not None for c in compiled)


@pytest.mark.parametrize("contract", [CREDIT, FRAUD], ids=["credit", "card_fraud"])
@SETTINGS
@given(data=st.data())
def test_compiled_record_answers_only_what_the_reference_accepts(contract: Any, data: Any) -> None:
    base = random_records(contract, 1, seed=data.draw(st.integers(0, 50)))[0]
    record = dict(base)
    for name in data.draw(st.lists(st.sampled_from(list(contract.features)), max_size=3)):
        record[name] = data.draw(JSON_VALUES)
    if data.draw(st.booleans()):  # edge values of a numeric feature
        name = data.draw(st.sampled_from(list(contract.features)))
        spec = contract.features[name]
        if spec.is_numeric:
            edges = [v for v in (spec.min, spec.max, *(spec.clip or ())) if v is not None]
            if edges:
                record[name] = data.draw(st.sampled_from(edges)) + data.draw(
                    st.sampled_from([-1, 0, 1, 0.5])
                )
    vector = CompiledRecord(contract).encode(record)
    errors = RecordValidator(contract).errors(record)
    if vector is None:
        return
    assert errors == []
    np.testing.assert_array_equal(vector, RawEncoder(contract).encode(record))
    neutralize = data.draw(st.lists(st.sampled_from(list(contract.features)), max_size=2))
    for transform in transforms(contract):
        row, actions = CompiledTransform(transform, contract.model_features()).apply(
            vector, neutralize
        )
        want_row, want_actions = transform.transform_record(record, neutralize)
        np.testing.assert_array_equal(row, want_row)
        assert actions == want_actions
        decoded = CompiledTransform(transform, contract.model_features()).features(row[0])
        assert decoded is None or decoded == guarded_features(transform, row[0])


def test_ordinary_records_take_the_compiled_path() -> None:
    compiled = CompiledRecord(CREDIT)
    records = random_records(CREDIT, 50, seed=4)
    assert all(compiled.encode(r) is not None for r in records)
    clipped = {**records[0], "AGE": 99}  # valid, beyond the clip edge
    assert compiled.encode(clipped) is not None
    assert compiled.encode({**records[0], "AGE": 999}) is None  # the reference names the error
    assert compiled.encode({**records[0], "EXTRA": 1}) is None
    assert compiled.encode({**records[0], "EDUCATION": True}) is None


def test_a_transform_that_differs_is_left_to_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong(self: Any, raw: np.ndarray, neutralize: Any = ()) -> Any:
        return raw.reshape(1, -1) + 1.0, []

    monkeypatch.setattr(CompiledTransform, "apply", wrong)
    record, compiled, reason = compile_contract(CREDIT, transforms(CREDIT)[:1])
    assert record is not None and compiled == [None]
    assert reason is not None and "transform differs" in reason


# ---- JSON ------------------------------------------------------------------------------------

OBJECTS = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(alphabet=st.sampled_from('ab:"\\{}[], é'), max_size=6),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)


def same_parse(body: bytes) -> None:
    fast, strict = fast_parse(body), _parse_json_strict(body)
    assert (fast[1] is None) == (strict[1] is None)
    if fast[1] is None:
        assert json.dumps(fast[0]) == json.dumps(strict[0])  # the same values, types included
    else:
        assert strict[1] is not None and fast[1].to_dict() == strict[1].to_dict()


@SETTINGS
@given(value=OBJECTS, duplicate=st.booleans())
def test_fast_json_reading_equals_the_strict_one(value: Any, duplicate: bool) -> None:
    text = json.dumps(value)
    if duplicate and text.startswith("{") and len(text) > 2:
        first = text[1 : text.index(":", 1 + text.index('"', 1))]  # '"key"' of the first member
        text = "{" + first + ": 0, " + text[1:]  # the same key twice
    same_parse(text.encode())


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1, "a": 2}',
        b'{"a": "x:y", "a": 1}',
        b'{"s": "\\":", "s": 1}',
        b'{"x": 100000000000000000000}',
        b'{"x": 1e19}',
        b'{"x": 1e400}',
        b'{"x": NaN}',
        b"",
        b"\xff",
        b'"\\ud800"',
        b"[" * 1100 + b"]" * 1100,
        b'[{"a": 1}, {"a": 1, "a": 2}]',
    ],
)
def test_fast_json_reading_of_the_awkward_bodies(body: bytes) -> None:
    same_parse(body)


@SETTINGS
@given(value=OBJECTS)
def test_fast_log_json_reads_back_as_the_standard_one(value: Any) -> None:
    text = dumps_json(value)
    assert json.loads(text) == json.loads(json.dumps(value))


def test_log_json_keeps_non_finite_numbers_as_text() -> None:
    assert json.loads(dumps_json({"a": math.nan, "b": [math.inf]})) == {
        "a": "NaN",
        "b": ["Infinity"],
    }


def test_decision_ids_are_random_uuid4() -> None:
    ids = {new_decision_id() for _ in range(2000)}
    assert len(ids) == 2000
    for h in list(ids)[:200]:
        u = uuid.UUID(hex=h)
        assert u.version == 4 and u.variant == uuid.RFC_4122 and u.hex == h


# ---- the in-memory moving window -------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_moving_window_counts_like_limits() -> None:
    clock = FakeClock()
    window = MemoryMovingWindow(clock=clock)
    assert [window.hit(3, 60, "a") for _ in range(3)] == [None, None, None]
    assert window.hit(3, 60, "a") == pytest.approx(60.0)  # the oldest leaves in 60 s
    assert window.hit(3, 60, "b") is None  # another counter
    clock.now += 30
    window.hit(3, 60, "a")
    assert window.hit(3, 60, "a") == pytest.approx(30.0)
    clock.now += 30  # the first three hits are exactly one period old: still in the window
    assert window.hit(3, 60, "a") == pytest.approx(0.0)
    clock.now += 0.001
    assert window.hit(3, 60, "a") is None


def test_memory_moving_window_forgets_idle_counters() -> None:
    clock = FakeClock()
    window = MemoryMovingWindow(max_counters=50, clock=clock)
    for i in range(40):
        window.hit(1, 10, f"s{i}")
    clock.now += 11
    window.hit(1, 10, "late")
    assert len(window) == 1  # every counter idle for its period is gone
    for i in range(100):
        window.hit(1, 3600, f"t{i}")
    assert len(window) == 50  # bounded: least recently used out
