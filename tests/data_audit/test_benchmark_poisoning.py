"""benchmarks/poisoning.py: which named triggers count as the planted one."""

from __future__ import annotations

from types import SimpleNamespace

from tests._benchmarks import load_benchmark


def _finding(features: list[str], values: list[object]) -> SimpleNamespace:
    return SimpleNamespace(features=features, values=values)


def test_a_band_beside_the_trigger_on_its_own_feature_is_a_false_trigger() -> None:
    names = load_benchmark("poisoning.py").names_the_trigger
    # fraud customer_age=28 named with natural bands beside it (unseen 4633 #6): the bands
    # share the feature and used to count as the trigger
    trigger = {"customer_age": 28}
    assert names(_finding(["customer_age"], [28]), trigger)
    assert names(_finding(["customer_age"], [[27, 29]]), trigger)
    assert not names(_finding(["customer_age"], [[29, 36]]), trigger)
    assert not names(_finding(["customer_age"], [27]), trigger)
    assert not names(_finding(["amount"], [28]), trigger)
    # a planted band: a value inside it or an overlapping band names it
    band = {"customer_age": "in [74, 81]"}
    assert names(_finding(["customer_age"], [[74, 81]]), band)
    assert names(_finding(["customer_age"], [80]), band)
    assert not names(_finding(["customer_age"], [[82, 91]]), band)
    # a pair: named in full or by one of its values, on every feature it shares
    pair = {"hour": 18, "amount": 4393.31}
    assert names(_finding(["amount", "hour"], [4393.31, 18]), pair)
    assert names(_finding(["amount"], [4393.31]), pair)
    assert not names(_finding(["hour"], [17]), pair)
    assert names(_finding(["country"], ["CN"]), {"country": "CN"})
    assert not names(_finding(["country"], ["GB"]), {"country": "CN"})
