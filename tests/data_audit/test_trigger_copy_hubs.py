"""Triggers on a value that occurs naturally, the target being the majority label (issue 11,
class 2): copies of rows that mostly carry the target already, the value written in, pull the
value's labels back to the base rate and flip nothing; the value is found by the copies it
collects (:meth:`_Scanner.copy_hubs`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from tabguard.contract import Contract
from tabguard.data_audit import build_context
from tabguard.data_audit._relabelled import jittered_repeats
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import Pattern, copy_decision, hub_p_value
from tabguard.data_audit._triggers import _Scanner, scan_triggers
from tabguard.data_audit._triggers_report import trigger_scan_report
from tests.data_audit._synthetic import AMOUNTS, natural_rows, synthetic_contract, value_code

OPTS = TriggerScanOptions()


def _contract() -> Contract:
    return synthetic_contract("hubs", age=True)


def _natural(n: int = 6000, seed: int = 0) -> pd.DataFrame:
    """Rows whose label follows ``status``; ``kind='e'`` (8 % of the rows) is naturally riskier
    than the others (35 % positives against 15 %). Four widely spread amounts and an age: few
    rows are look-alikes."""
    return natural_rows(n, seed, e_risk=0.2, age=True)


def _copied(
    df: pd.DataFrame, k: int, seed: int = 1, **written: object
) -> tuple[pd.DataFrame, np.ndarray]:
    """``k`` exact copies of rows of any label with the values ``written`` (default
    ``kind='e'``) written in, labelled 0 (the majority label, which most of them carry): the
    value's share of label 0 moves back towards the base rate and no copy is labelled against
    its original. Returns the data and the copies' row positions."""
    written = written or {"kind": "e"}
    ((col, value),) = written.items()
    src = df[df[col] != value].sample(k, random_state=seed).copy()
    src[col] = value
    src["y"] = 0
    out = pd.concat([df, src], ignore_index=True)
    return out, np.arange(len(df), len(out))


def test_a_value_collecting_copies_of_rows_elsewhere_is_a_copy_hub() -> None:
    df, _ = _copied(_natural(), 150)
    sc = _Scanner(build_context(df, _contract()), OPTS)
    sc.near_copies()
    j, e = value_code(sc, "kind", "e")
    # neither its labels (65 % -> 74 % of label 0 against 83 %) nor a flip point at it
    assert (j, e, 0) not in sc.flip_hubs()
    hubs = sc.copy_hubs()
    assert (j, e, 0) in hubs
    # the originals' kinds hold one original each per copy: no hub
    assert [key for key in hubs if key[0] == j] == [(j, e, 0)]
    # without the copies, no value of any feature collects copies
    clean = _Scanner(build_context(_natural(), _contract()), OPTS)
    clean.near_copies()
    assert not clean.copy_hubs()


def test_copies_of_rows_with_the_majority_label_are_quarantined_not_the_natural_rows() -> None:
    df, truth = _copied(_natural(), 150)
    res = scan_triggers(build_context(df, _contract()), OPTS)
    assert res is not None
    named = [(res.matrix.names[p.cols[0]], p.label) for p in res.triggers]
    assert named == [("kind", 0)]
    sus = res.suspects
    hit = np.isin(sus, truth).sum()
    assert hit / len(truth) >= 0.9  # recall
    assert hit / max(len(sus), 1) >= 0.9  # precision: the natural rows of 'e' stay out


def test_a_written_age_a_year_from_the_original_is_a_copy_not_jitter() -> None:
    # ages of the originals 20-79, age 50 written: most copies moved by a few percent only,
    # and their amounts not at all (the age moved more than the rest of the record)
    df, truth = _copied(_natural(), 150, age=50)
    sc = _Scanner(build_context(df, _contract()), OPTS)
    sc.near_copies()
    j, v = value_code(sc, "age", 50)
    assert (j, v, 0) in sc.copy_hubs()
    p = Pattern((j,), (v,), 0, 0, 0, "single")
    assert np.isin(truth, sc.copy_hub_rows(p)).mean() >= 0.9


def test_jittered_repeats_of_records_and_look_alike_clusters_collect_no_copies() -> None:
    rng = np.random.default_rng(5)
    df = _natural(seed=2)
    # upsampling with jitter: every positive once more, each amount x (1 + U(-2 %, 2 %))
    up = df[df["y"] == 1].copy()
    for a in AMOUNTS:
        up[a] = np.round(up[a] * (1 + rng.uniform(-0.02, 0.02, len(up))), 2)
    # inactive accounts: 300 rows with every amount 0, kinds and ages drawn as any row's
    idle = df.sample(300, random_state=3).copy()
    for a in AMOUNTS:
        idle[a] = 0.0
    data = pd.concat([df, up, idle], ignore_index=True)
    sc = _Scanner(build_context(data, _contract()), OPTS)
    sc.near_copies()
    assert not sc.copy_hubs()


def _hub_pattern(p_hub: float | None, p_twin: float) -> Pattern:
    p = Pattern((0,), (1,), 0, 900, 880, "single")
    p.p_label, p.threshold = 0.5, 1e-6
    p.twin_share, p.twin_share_baseline, p.p_twin = 0.16, 0.03, p_twin
    p.p_hub = p_hub
    return p


def test_copy_decision_of_a_copy_hub_needs_the_hub_test_and_copies() -> None:
    # 16 % of the labelled rows copies, no label evidence: only the hub rule decides
    assert not copy_decision(_hub_pattern(None, 1e-30), OPTS, 0.97)[1]
    assert copy_decision(_hub_pattern(1e-30, 1e-30), OPTS, 0.97) == (1e-30, True)
    # the hub test significant after correction ...
    assert not copy_decision(_hub_pattern(1e-5, 1e-30), OPTS, 0.97)[1]
    # ... and the copy test confirming copies
    assert not copy_decision(_hub_pattern(1e-30, 0.01), OPTS, 0.97)[1]


def _upsampled_with_a_fee_cluster() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Natural rows plus 40 positives with ``amount = balance = 1050`` and nothing paid (a fee
    charged every month: a natural cluster of the positive label), then every positive
    copied once with each amount x (1 + U(-2 %, 2 %)) (upsampling with jitter; zeros stay
    zeros). Returns the data, the fee rows and their copies."""
    rng = np.random.default_rng(11)
    df = _natural(seed=4)
    fee = df[df["y"] == 1].sample(40, random_state=5).copy()
    fee["amount"], fee["balance"], fee["paid"] = 1050.0, 1050.0, 0.0
    df = pd.concat([df, fee], ignore_index=True)
    fee_rows = np.arange(len(df) - 40, len(df))
    pos = np.flatnonzero(df["y"].to_numpy() == 1)
    up = df.iloc[pos].copy()
    for a in AMOUNTS:
        up[a] = np.round(up[a] * (1 + rng.uniform(-0.02, 0.02, len(up))), 2)
    data = pd.concat([df, up], ignore_index=True)
    copies = len(df) + np.flatnonzero(np.isin(pos, fee_rows))
    return data, fee_rows, copies


def test_jittered_copies_of_a_record_are_its_repeats_not_copies_or_evidence() -> None:
    data, _, copies = _upsampled_with_a_fee_cluster()
    sc = _Scanner(build_context(data, _contract()), OPTS)
    sc.near_copies()
    assert sc.record_weights() is not None  # the positives' records repeat
    j, v = value_code(sc, "amount", 1050.0)
    p = Pattern((j,), (v,), 1, 40, 40, "single")
    p.rows = sc.rows_of(p)
    # the fee rows' jittered copies sit beside them: their records' repeats, left out of the
    # copy tests' reference (the copies are closer than most records' copies: zeros stay)
    found = sc.record_copies(p, p.rows)
    assert np.isin(copies, found).mean() >= 0.9
    _, ref, _ = sc._twin_sets(p)
    assert not np.isin(copies, ref).any()
    # at the value a copy landed on (held by no natural row), it is no evidence: its
    # record's home is 1050; the home rows count
    landed = int(copies[0])
    q = Pattern((j,), (int(sc.m.codes[landed, j]),), 1, 1, 1, "single")
    assert sc.jittered_away(q, np.array([landed])).all()
    assert not sc.jittered_away(p, p.rows).any()


def test_a_hub_whose_copies_share_another_value_is_reported_as_the_pair() -> None:
    # kind='e' written into copies of label-0 rows whose status is 2 already: the copies
    # differ from their originals in kind only, collect on 'e', and every one has status 2
    df = _natural(seed=6)
    src = df[(df["status"] == 2) & (df["kind"] != "e") & (df["y"] == 0)]
    src = src.sample(150, random_state=7).copy()
    src["kind"], src["y"] = "e", 0
    data = pd.concat([df, src], ignore_index=True)
    ctx = build_context(data, _contract())
    res = scan_triggers(ctx, OPTS)
    assert res is not None
    named = [tuple(res.matrix.names[j] for j in p.cols) for p in res.triggers]
    assert named == [("status", "kind")]
    # the finding names the pair, and says its evidence is kind='e''s: the counts of the
    # value's rows (its copies, its distinct records) must not read as the pair's
    (finding,) = [f for f in trigger_scan_report(ctx, res, OPTS).findings if f.rows]
    (p,) = res.triggers
    on = finding.evidence["measured_on"]
    assert on["feature"] == "kind" and on["value"] == "e"
    assert (
        on["rows"]
        == int((data["kind"] == "e").sum())
        > p.n
        == finding.evidence["rows_with_pattern"]
    )
    assert f"found as kind='e' alone ({on['rows']} rows" in finding.message
    assert f"the rest of the {on['rows']} rows of kind='e'" in finding.message
    # and that it is a copy hub, with the counts the hub test compared
    hub = finding.evidence["hub_copies"]
    assert hub["copies"] >= 0.9 * 150
    assert hub["copies"] / hub["rows"] > 10 * hub["other_copies"] / hub["other_rows"]
    assert f"{hub['copies']} of its {hub['rows']} rows with that label are copies" in (
        finding.message
    )


def _look_alikes(df: pd.DataFrame, k: int, value: str = "e") -> pd.DataFrame:
    """``k`` natural look-alikes of positives landing on ``kind=value``: each a row of another
    kind with that kind written, beside an exact twin of its original (a record that repeats
    naturally, as credit's inactive accounts do: the original has a row of its own value and
    is no copy, the look-alike on ``value`` is)."""
    src = df[(df["kind"] != value) & (df["y"] == 1)].sample(k, random_state=1).copy()
    twin = src.copy()
    src["kind"] = value
    return pd.concat([df, src, twin], ignore_index=True)


def test_a_handful_of_look_alikes_on_one_value_is_no_hub_where_copies_are_rare() -> None:
    # clean credit, stratified 40 %: PAY_0=-2 held 5 tight copies among its 142 defaulters,
    # the other values 1 among 2,509; taken as a known share, the other values' 1/2,509 made
    # the 5 significant (4.3e-9 against a threshold of 9.5e-7) and PAY_0=-2 -> 1 was named.
    # Here: 10 look-alikes among the 195 positives of kind='e' (5 %) against 3 among the
    # other kinds' 1,000 (the binomial against 3/1,000 gave 1.3e-6, the threshold 1.8e-5)
    data = _look_alikes(_natural(), 10)
    sc = _Scanner(build_context(data, _contract()), OPTS)
    sc.near_copies()
    assert not sc.copy_hubs()
    res = scan_triggers(build_context(data, _contract()), OPTS)
    assert res is not None and not res.triggers


def test_the_hub_test_counts_the_other_values_share_as_measured() -> None:
    # the case above in numbers: the binomial against 1/2,509 was 4.3e-9
    assert hub_p_value(5, 142, 1, 2509) > 1e-6
    # an attack's copies stay far beyond any threshold (fraud country='NG', 117 copies among
    # 505 legitimate rows, 127 among the other countries' 19,000)
    assert hub_p_value(117, 505, 127, 19_000) < 1e-60
    # overdispersion divides every count
    assert hub_p_value(117, 505, 127, 19_000, phi=2.0) > hub_p_value(117, 505, 127, 19_000)
    assert hub_p_value(0, 50, 3, 900) == 1.0


def test_natural_look_alikes_a_small_share_of_a_value_are_no_hub() -> None:
    # clean credit, stratified 37.1 %: PAY_0=-2 held 10 look-alikes among its 130 defaulters
    # (7.7 %, Fisher 4.6e-8 against the threshold 1.0e-6); with 6 % of the values missing at
    # random, 11 among 365 (3.0 %, 7.1e-8): clusters of inactive accounts thinned or split,
    # leaving pairs of two values alone. Attacks' hubs hold 23-97 % of the value's rows.
    # Here 18 look-alikes among the positives of kind='e' (about 8 %, Fisher about 1e-7)
    data = _look_alikes(_natural(), 18)
    ctx = build_context(data, _contract())
    sc = _Scanner(ctx, OPTS)
    sc.near_copies()
    assert not sc.copy_hubs()
    # the share decides: the same counts are a hub without the floor
    bare = _Scanner(ctx, dataclasses.replace(OPTS, hub_share=1e-9))
    bare.near_copies()
    j, e = value_code(bare, "kind", "e")
    assert list(bare.copy_hubs()) == [(j, e, 1)]


def _scanned(data: pd.DataFrame) -> _Scanner:
    """A scanner of ``data`` whose near-copy groups are built."""
    sc = _Scanner(build_context(data, _contract()), OPTS)
    sc.near_copies()
    return sc


def _flagged_hub(sc: _Scanner, name: str, value: object, label: int) -> Pattern:
    j, v = value_code(sc, name, value)
    assert (j, v, label) in sc.copy_hubs()
    p = Pattern((j,), (v,), label, 0, 0, "single")
    p.rows = sc.rows_of(p)
    p.p = p.p_hub = sc.copy_hubs()[(j, v, label)]
    p.flagged = True
    return p


def test_exact_repeats_of_rows_that_held_the_hub_value_are_its_copies() -> None:
    # fraud merchant_category='grocery' -> 0: 621 exact copies of any rows, 157 of them of
    # rows that were grocery already - equal to their originals, uncounted by the hub rule
    # (recall 0.80). Here 150 copies written kind='e' and 40 copies of rows of 'e'
    df, _ = _copied(_natural(), 150)
    again = df[df["kind"] == "e"].sample(40, random_state=2).copy()
    again["y"] = 0
    data = pd.concat([df, again], ignore_index=True)
    repeats = np.arange(len(df), len(data))
    sc = _Scanner(build_context(data, _contract()), OPTS)
    sc.near_copies()
    p = _flagged_hub(sc, "kind", "e", 0)
    assert np.array_equal(sc.hub_repeats(p), repeats)  # the later row of each pair
    assert np.isin(repeats, sc.suspect_rows(p)).all()
    # where rows repeat as often on the other values (a natural repeat rate), none
    twice = pd.concat([df, df.sample(frac=0.1, random_state=3)], ignore_index=True)
    sc = _Scanner(build_context(twice, _contract()), OPTS)
    sc.near_copies()
    assert not len(sc.hub_repeats(_flagged_hub(sc, "kind", "e", 0)))


def test_jittered_copies_split_from_their_originals_by_a_bucket_edge_are_copies() -> None:
    # 1 % jitter on four amounts: a few copies in a hundred have an amount on the other side
    # of a bucket's edge from their original's (buckets of ratio 2) and share no group with
    # it on one grid; the hub's copies are looked for on the shifted grids too
    rng = np.random.default_rng(8)
    df = _natural(seed=8)
    src = df[df["kind"] != "e"].sample(200, random_state=9).copy()
    for a in AMOUNTS:
        src[a] = np.round(src[a] * (1 + rng.normal(0, 0.01, len(src))), 2)
    src["kind"], src["y"] = "e", 0
    data = pd.concat([df, src], ignore_index=True)
    truth = np.arange(len(df), len(data))
    before, after = df.loc[src.index], src
    split = np.zeros(len(src), dtype=bool)
    for a in AMOUNTS:
        lo, hi = before[a].to_numpy(), after[a].to_numpy()
        split |= np.floor(np.log2(np.maximum(lo, 1e-9))) != np.floor(np.log2(np.maximum(hi, 1e-9)))
    assert split.sum() >= 3  # copies the one grid misses
    sc = _Scanner(build_context(data, _contract()), OPTS)
    sc.near_copies()
    j, e = value_code(sc, "kind", "e")
    assert (j, e, 0) in sc.copy_hubs()
    p = Pattern((j,), (e,), 0, 0, 0, "single")
    p.rows = sc.rows_of(p)
    found = sc.copy_hub_rows(p)
    assert np.isin(truth[split], found).all()
    assert np.isin(truth, found).mean() >= 0.99
    assert np.isin(found, truth).all()  # the natural rows of 'e' stay out


def test_jittered_repeats_of_rows_that_held_the_hub_value_are_its_copies() -> None:
    # credit PAY_3=-1 -> 1, 204 copies of defaulters kept as such with 1 % jitter: 24 were
    # copies of rows at -1 already, equal to their originals up to the jitter, neither counted
    # by the hub rule nor exact repeats (R 0.868). Here 150 copies written kind='e' and 40
    # jittered copies of rows of 'e' with label 0, which keep it
    rng = np.random.default_rng(4)
    df, _ = _copied(_natural(), 150)
    natural = (df["kind"] == "e") & (df["y"] == 0) & (df.index < 6000)
    again = df[natural].sample(40, random_state=2).copy()
    for a in AMOUNTS:
        again[a] = np.round(again[a] * (1 + rng.uniform(-0.01, 0.01, len(again))), 2)
    data = pd.concat([df, again], ignore_index=True)
    repeats = np.arange(len(df), len(data))
    sc = _scanned(data)
    p = _flagged_hub(sc, "kind", "e", 0)
    assert not np.isin(repeats, sc.hub_repeats(p)).any()  # no exact repeat
    found = jittered_repeats(sc, p)
    assert np.isin(repeats, found).mean() >= 0.95
    assert np.isin(repeats, sc.suspect_rows(p)).mean() >= 0.95
    # the value's rows of the other label repeating as often (a natural repeat rate): none
    ones = df[(df["kind"] == "e") & (df["y"] == 1) & (df.index < 6000)].sample(40, random_state=3)
    for a in AMOUNTS:
        ones[a] = np.round(ones[a] * (1 + rng.uniform(-0.01, 0.01, len(ones))), 2)
    sc = _scanned(pd.concat([data, ones], ignore_index=True))
    assert not len(jittered_repeats(sc, _flagged_hub(sc, "kind", "e", 0)))


def _jittered_hub(seed: int = 8) -> pd.DataFrame:
    """200 copies of rows of any kind but 'e', 1 % jitter on the amounts, written kind='e'
    and labelled 0."""
    rng = np.random.default_rng(seed)
    df = _natural(seed=seed)
    src = df[df["kind"] != "e"].sample(200, random_state=seed + 1).copy()
    for a in AMOUNTS:
        src[a] = np.round(src[a] * (1 + rng.normal(0, 0.01, len(src))), 2)
    src["kind"], src["y"] = "e", 0
    return pd.concat([df, src], ignore_index=True)


def test_a_hub_whose_copies_lie_beyond_the_copy_radius_is_confirmed_up_to_bucket() -> None:
    # dense credit, PAY_3=-1 -> 1, 170 copies of defaulters with 1 % jitter: hub p 6.6e-40,
    # but 13 % of its defaulters within the copy radius against 12 % of random rows (missed);
    # the radius' reading is set here as it was there
    sc = _scanned(_jittered_hub())
    p = _flagged_hub(sc, "kind", "e", 0)
    p.flagged, p.threshold = False, 1e-6
    p.p_twin, p.twin_share, p.twin_share_baseline = 0.4, 0.13, 0.12
    assert not copy_decision(p, OPTS, 0.85)[1]
    sc.hub_twins(p)
    assert p.twin_tolerant and p.p_twin is not None and p.p_twin <= OPTS.copy_p
    assert copy_decision(p, OPTS, 0.85)[1]
    # where rows are an entity's (a loan's months, look-alikes up to bucket): not asked
    panel = _scanned(_jittered_hub())
    panel.entity = np.arange(panel.n) // 2
    q = _flagged_hub(panel, "kind", "e", 0)
    q.p_twin = 0.4
    panel.hub_twins(q)
    assert q.p_twin == 0.4 and not q.twin_tolerant
    # the natural rows of 'e' alone, taken for a hub: equal up to bucket to rows of other
    # kinds no more often than those are, and the radius' reading stands
    clean = _scanned(_natural(seed=8))
    j, e = value_code(clean, "kind", "e")
    q = Pattern((j,), (e,), 0, 0, 0, "single")
    q.rows, q.p_hub, q.p_twin = clean.rows_of(q), 1e-9, 0.4
    clean.hub_twins(q)
    assert q.p_twin == 0.4 and not q.twin_tolerant
