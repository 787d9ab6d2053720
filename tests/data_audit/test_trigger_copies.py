"""Jittered copies in the trigger scan (issue 11, class 3): copies of existing rows with a value
written in and a few percent of noise on their amounts are found whatever their labels say
(clean-label copies, some given the other label as camouflage)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import Contract, contract_from_dict
from tabguard.data_audit import build_context
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import Pattern, wants_copy_check
from tabguard.data_audit._triggers import _Scanner, _top, scan_triggers

OPTS = TriggerScanOptions()


def _contract() -> Contract:
    return contract_from_dict(
        {
            "name": "copies",
            "label": {"column": "y", "positive": 1},
            "features": {
                "amount": {"type": "number", "min": 0},
                "balance": {"type": "number", "min": 0},
                "paid": {"type": "number", "min": 0},
                "limit": {"type": "number", "min": 0},
                "status": {"type": "integer", "min": -2, "max": 8},
                "kind": {"type": "category", "categories": ["a", "b", "c"]},
            },
        }
    )


def _background(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    status = rng.choice([-1, 0, 2], n, p=[0.3, 0.6, 0.1])
    p1 = np.where(status == 2, 0.5, 0.2)
    return pd.DataFrame(
        {
            "amount": np.round(rng.lognormal(8, 1, n), 2),
            "balance": np.round(rng.lognormal(9, 1, n), 2),
            "paid": np.round(rng.lognormal(7, 1, n), 2),
            "limit": np.round(rng.lognormal(10, 1, n), 2),
            "status": status,
            "kind": rng.choice(["a", "b", "c"], n),
            "y": (rng.random(n) < p1).astype(int),
        }
    )


def _distinct(n: int, seed: int) -> pd.DataFrame:
    """Background rows no two of which share their amounts' buckets (ratio 2): every near-copy
    found is one made here."""
    df = _background(n, seed)
    i = np.arange(n)
    df["amount"] = np.round(1.5 * 2.0 ** (i % 30), 2)
    df["balance"] = np.round(1.5 * 2.0 ** ((i // 30) % 30), 2)
    return df


def _copies(
    df: pd.DataFrame, k: int, seed: int, jitter: float = 0.01, camouflage: float = 0.0
) -> pd.DataFrame:
    """``k`` copies of rows labelled 0 with ``status = 1`` written in, amounts jittered, a
    share ``camouflage`` of them labelled 1."""
    rng = np.random.default_rng(seed)
    src = df[df["y"] == 0].sample(k, random_state=seed).copy()
    for col in ("amount", "balance", "paid", "limit"):
        src[col] = np.round(src[col] * (1 + rng.normal(0, jitter, k)), 2)
    src["status"] = 1
    src["y"] = (rng.random(k) < camouflage).astype(int)
    return src


def _scanner(df: pd.DataFrame, **opts: object) -> _Scanner:
    return _Scanner(build_context(df, _contract()), TriggerScanOptions(**opts))  # type: ignore[arg-type]


def test_near_copies_counts_jittered_copies_with_a_written_value() -> None:
    df = _distinct(400, 0)
    poisoned = pd.concat([df, _copies(df, 40, 1)], ignore_index=True)
    sc = _scanner(poisoned)
    j = sc.m.names.index("status")
    code = int(np.flatnonzero(sc.m.uniques[j] == 1)[0])
    near = sc.near_copies()[j]
    # every copy differs from its original only in the written value, up to the jitter; a
    # copy whose amount crosses a bucket's edge is missed (about 1 % of cells at 1 % jitter
    # and ratio 2)
    assert 34 <= near[code, 0] <= 40 and near[code, 1] == 0
    # the originals count for their own values, as many
    assert near[:, 0].sum() == 2 * near[code, 0] and near[:, 1].sum() == 0


def test_near_copies_ignore_repeats_sharing_the_value() -> None:
    """Records repeated with their value (resampling) are not copies with a value written."""
    df = _distinct(400, 0)
    repeats = df.sample(40, random_state=3).copy()
    repeats["amount"] = np.round(repeats["amount"] * 1.01, 2)
    sc = _scanner(pd.concat([df, repeats], ignore_index=True))
    j = sc.m.names.index("status")
    assert j not in sc.near_copies() or sc.near_copies()[j].sum() == 0


def test_near_copy_bucket_is_an_option() -> None:
    """Values within a bucket (ratio ``near_copy_bucket``) hash alike, others apart."""
    df = _background(400, 0)
    df.loc[0, "amount"], df.loc[1, "amount"], df.loc[2, "amount"] = 1100.0, 1150.0, 1900.0
    j = df.columns.get_loc("amount")
    wide = _scanner(df)._tolerant_cell(j)
    assert wide[0] == wide[1] == wide[2]  # 1024 <= x < 2048
    narrow = _scanner(df, near_copy_bucket=1.1)._tolerant_cell(j)
    assert narrow[0] == narrow[1] != narrow[2]


def test_jittered_copies_get_a_copy_check_without_label_evidence() -> None:
    no_hint = {"effect": 0.0, "excess": 0.0, "p_label": 0.9, "threshold": 1e-4}
    p = Pattern((0,), (1,), 0, 100, 80, "single")
    for key, v in no_hint.items():
        setattr(p, key, v)
    assert not wants_copy_check(p, OPTS)
    p.near_copy = OPTS.exact_copy_share
    assert wants_copy_check(p, OPTS)
    p.near_copy = OPTS.exact_copy_share - 0.01
    assert not wants_copy_check(p, OPTS)


def test_top_keeps_copied_patterns_beyond_the_cap() -> None:
    ps = [Pattern((0,), (i,), 0, 100, 80, "single", cheap_score=100.0 - i) for i in range(5)]
    ps[4].near_copy = 0.9
    ps[3].near_copy = 0.4
    kept = _top(ps, 2, copied=0.5)
    assert [p.codes[0] for p in kept] == [0, 1, 4]
    assert [p.codes[0] for p in _top(ps, 2)] == [0, 1]


def test_camouflaged_clean_label_copies_are_quarantined(monkeypatch: pytest.MonkeyPatch) -> None:
    """Copies of rows labelled 0 with ``status = 1`` written in (no natural row has it), 1 %
    jitter, 18 % of them labelled 1: no label evidence (the copies keep about the label rate
    of their originals), found as copies, with the camouflaged ones."""
    df = _background(3000, 0)
    copies = _copies(df, 150, 1, camouflage=0.18)
    poisoned = pd.concat([df, copies], ignore_index=True)
    result = scan_triggers(build_context(poisoned, _contract()), OPTS)
    assert result is not None
    named = [(result.matrix.names[p.cols[0]], p.codes) for p in result.triggers]
    assert len(named) == 1 and named[0][0] == "status"
    truth = set(range(len(df), len(poisoned)))
    assert set(result.suspects.tolist()) == truth
    # without the jitter-tolerant copies nothing is named: the labels say nothing, and the
    # exact copy proxy does not see jittered copies
    monkeypatch.setattr(_Scanner, "near_copies", lambda self: {})
    blind = scan_triggers(build_context(poisoned, _contract()), OPTS)
    assert blind is not None and not blind.triggers


def test_jittered_copies_on_band_features_wait_for_the_bands() -> None:
    """Features of 12 to ``band_max_values`` values have bands: a band trigger's copies make
    each of its values look copied, so their copy-made singles are decided after the bands."""
    df = _background(400, 0)
    sc = _scanner(df)
    names = sc.m.names
    assert sc.has_bands(names.index("amount"))  # 400 values
    assert not sc.has_bands(names.index("status"))  # 3 values
    assert not sc.has_bands(names.index("kind"))  # a category
    assert not _scanner(df, band_max_values=100).has_bands(names.index("amount"))


def test_copies_that_do_not_lean_to_the_label_are_not_copy_made() -> None:
    """Panel data repeat an account's months with, say, a changed limit: copies of rows with
    another value of the feature, but not leaning to either label. Only copies whose label
    share is at least the label's base rate are copy-made candidates."""
    df = _background(3000, 0)
    rng = np.random.default_rng(5)
    months = df.sample(150, random_state=4).copy()
    for col in ("amount", "balance", "paid", "limit"):
        months[col] = np.round(months[col] * (1 + rng.normal(0, 0.01, len(months))), 2)
    months["status"] = 1  # the month's own status
    sc = _scanner(pd.concat([df, months], ignore_index=True))
    j = sc.m.names.index("status")
    code = int(np.flatnonzero(sc.m.uniques[j] == 1)[0])
    by_label = {p.label: p.near_copy for p in sc.singles() if p.cols == (j,) and p.codes == (code,)}
    assert by_label
    base1 = sc.base(1)
    share1 = float(months["y"].mean())
    # the label the copies lean to (if any) keeps its share of copies, the other has none
    for label, near in by_label.items():
        leans = (share1 if label == 1 else 1 - share1) >= (base1 if label == 1 else 1 - base1)
        assert (near > 0.5) == leans


def test_rows_of_one_entity_are_not_copies_of_each_other() -> None:
    """A panel's months of one account (its status changed, amounts a little different) are
    one unit of evidence, not a copy with a value written in."""
    df = _distinct(400, 0)
    df["account"] = np.arange(len(df))
    months = df.sample(40, random_state=3).copy()
    months["amount"] = np.round(months["amount"] * 1.01, 2)
    months["status"] = 1
    panel = pd.concat([df, months], ignore_index=True)
    spec = _contract().model_dump(mode="json", exclude_none=True)
    with_entity = contract_from_dict({**spec, "entity": "account"})
    sc = _Scanner(build_context(panel, with_entity), OPTS)
    j = sc.m.names.index("status")
    assert j not in sc.near_copies() or sc.near_copies()[j].sum() == 0
    # the same rows under fresh account ids are copies
    panel.loc[len(df) :, "account"] = np.arange(1000, 1000 + len(months))
    sc = _Scanner(build_context(panel, with_entity), OPTS)
    assert sc.near_copies()[j].sum() == 80


def _pattern(sc: _Scanner, feature: str, value: object, label: int) -> Pattern:
    j = sc.m.names.index(feature)
    code = int(np.flatnonzero(sc.m.uniques[j] == value)[0])
    p = Pattern((j,), (code,), label, 0, 0, "single")
    p.rows = sc.rows_of(p)
    return p


def test_rows_of_a_trigger_dropped_later_go_back_among_the_originals() -> None:
    """Only triggers flagged now hold their rows out of later copy checks' reference: a
    pattern flagged, then un-flagged by a re-test, no longer does (fraud data: a written
    ``country`` value flagged then dropped kept 14k rows out of every later check)."""
    df = _distinct(400, 0)
    sc = _scanner(pd.concat([df, _copies(df, 40, 1)], ignore_index=True))
    written = _pattern(sc, "kind", "a", 0)
    query = _pattern(sc, "status", 1, 0)
    outside = np.setdiff1d(written.rows, query.rows)
    assert len(outside) > 100
    written.flagged = written.written = True
    sc.attribute(written)
    _, reference, _ = sc._twin_sets(query)
    assert not np.isin(outside, reference).any()  # every row of a written pattern is held out
    written.reset_evidence()  # the re-test un-flags it
    _, reference, _ = sc._twin_sets(query)
    assert np.isin(outside, reference).all()


def test_other_label_rows_of_a_contract_breaking_value_are_never_originals() -> None:
    """A value no natural row carries: its rows with the other label (camouflage) are the
    attacker's too and stay out of the reference; a natural value's stay in."""
    df = _distinct(400, 0)
    copies = _copies(df, 40, 1, camouflage=0.2)
    copies["status"] = 9  # out of the contract's range [-2, 8]
    sc = _scanner(pd.concat([df, copies], ignore_index=True))
    breaking = _pattern(sc, "status", 9, 0)
    others = breaking.rows[sc.y[breaking.rows] == 1]
    assert len(others) > 0
    _, reference, _ = sc._twin_sets(breaking)
    assert not np.isin(breaking.rows, reference).any()
    natural = _pattern(sc, "status", 2, 0)
    _, reference, _ = sc._twin_sets(natural)
    assert np.isin(natural.rows[sc.y[natural.rows] == 1], reference).all()


def test_exact_copies_of_a_confirmed_trigger_do_not_make_its_originals_copies() -> None:
    """The hashing copy test (large data) leaves a confirmed trigger's rows out of the rows a
    pattern's rows are copies of, as the nearest-neighbour test does (bootstrap credit,
    200,000 rows: ``AGE=61`` looked copied, 59 % of its defaulters against 29 % of random
    rows, because the attacker had copied them with ``AGE=450`` written in)."""
    df = _distinct(400, 0)
    src = df[(df["status"] == 2) & (df["y"] == 0)].copy()
    assert len(src) >= 10
    copies = src.assign(status=1)  # exact copies with a value written in
    sc = _scanner(pd.concat([df, copies], ignore_index=True))
    natural = _pattern(sc, "status", 2, 0)
    sc.exact_twins(natural)
    assert natural.twin_share == 1.0  # before the trigger is known, its originals look copied
    trigger = _pattern(sc, "status", 1, 0)
    trigger.flagged = True
    sc.attribute(trigger)
    natural = _pattern(sc, "status", 2, 0)
    sc.exact_twins(natural)
    assert natural.twin_share == 0.0
