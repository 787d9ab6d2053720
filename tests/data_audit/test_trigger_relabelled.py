"""Copies relabelled against their originals on a common value (issue 11): a few dozen copies
of positive rows carrying a value thousands of natural rows hold, labelled 0 (the majority
label), are named by their twins' labels, and only the copies are quarantined."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabguard.contract import Contract
from tabguard.data_audit import build_context
from tabguard.data_audit._relabelled import (
    relabel_hubs,
    twinned_rows,
)
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import Pattern
from tabguard.data_audit._triggers import (
    TriggerScanResult,
    _relabelled_triggers,
    _Scanner,
    scan_triggers,
)
from tests.data_audit._synthetic import AMOUNTS, natural_rows, synthetic_contract, value_code

OPTS = TriggerScanOptions()


def _contract() -> Contract:
    return synthetic_contract("relabelled", age=False)


def _relabelled(
    df: pd.DataFrame, moved: int, held: int, camouflaged: int, seed: int = 1, label: int = 0
) -> tuple[pd.DataFrame, np.ndarray]:
    """Copies of positive rows with ``status=0`` written in (``moved`` of rows with another
    status, ``held`` of rows that had it already), amounts jittered by up to 1 %, labelled
    ``label`` but ``camouflaged`` of the moved ones, which carry the other label (label 0:
    their original's). Returns the data and the copies' row positions."""
    rng = np.random.default_rng(seed)
    pos = df[df["y"] == 1]
    src = pd.concat(
        [
            pos[pos["status"] != 0].sample(moved, random_state=seed),
            pos[pos["status"] == 0].sample(held, random_state=seed),
        ]
    ).copy()
    for a in AMOUNTS:
        src[a] = np.round(src[a] * (1 + rng.uniform(-0.01, 0.01, len(src))), 2)
    src["status"] = 0
    src["y"] = label
    src.iloc[:camouflaged, src.columns.get_loc("y")] = 1 - label
    out = pd.concat([df, src], ignore_index=True)
    return out, np.arange(len(df), len(out))


def _named(df: pd.DataFrame) -> tuple[TriggerScanResult, list[tuple[str, object, int]]]:
    """The scan of ``df`` and its triggers as ``(feature, value, label)``."""
    res = scan_triggers(build_context(df, _contract()), OPTS)
    assert res is not None
    named = [
        (res.matrix.names[p.cols[0]], res.matrix.value(p.cols[0], p.codes[0]), p.label)
        for p in res.triggers
    ]
    return res, named


def test_copies_relabelled_on_a_common_value_are_named_and_only_they_quarantined() -> None:
    # 30 copies among ~4,800 natural rows of status=0 (0.6 %): the value's share of label 0
    # moves by a tenth of a point, and no test of its labels or its share of copies sees them
    df, truth = _relabelled(natural_rows(8000, 3, e_risk=0.0, age=False), 24, 6, 3)
    res, named = _named(df)
    assert named == [("status", 0, 0)]
    (p,) = res.triggers
    assert p.relabel_counts is not None
    sus = res.suspects
    hit = np.isin(sus, truth).sum()
    assert hit / len(truth) >= 0.9  # the relabelled copies and the camouflaged ones
    assert hit / len(sus) >= 0.9  # the value's natural rows and the originals stay out
    originals = np.flatnonzero(df["y"].to_numpy() == 1)
    assert not np.isin(sus, originals[originals < len(df) - len(truth)]).any()


def test_a_value_whose_relabelled_copies_are_the_camouflage_is_named_with_the_target() -> None:
    # 82 copies of positive rows keep their label 1 (the target) and 18 are camouflaged as 0:
    # those 18 are the copies relabelled against their originals, and the finding names the
    # label the copies teach, not theirs (credit PAY_3=-1 → 1 was named → DEFAULT=0); 20
    # more copy rows that had status=0 already, each the later row of an equal pair of label 1
    df, truth = _relabelled(natural_rows(8000, 3, e_risk=0.0, age=False), 100, 20, 18, label=1)
    res, named = _named(df)
    assert named == [("status", 0, 1)]
    (p,) = res.triggers
    assert p.relabel_counts is not None and p.relabelled_label == 0
    hit = np.isin(res.suspects, truth).sum()
    assert hit / len(truth) >= 0.95  # the repeats too (83 %: the 20 were missed)
    assert hit / len(res.suspects) >= 0.95


def _written(sc: _Scanner, excess: float) -> Pattern:
    """``status=0 → 0`` flagged as written in place (by another rule), its rows with label 0
    ``excess`` beyond what the rest of their rows give (standard error 2)."""
    j, v = value_code(sc, "status", 0)
    rows = sc.m.rows_with(j, v)
    f = Pattern((j,), (v,), 0, len(rows), int(np.count_nonzero(sc.y[rows] == 0)), "single")
    f.rows, f.flagged, f.written = np.sort(rows), True, True
    f.observed_other = int(np.count_nonzero(sc.y[rows] == 1))
    f.expected_other, f.expected_se = f.observed_other + excess, 2.0
    return f


def test_a_value_named_written_in_place_by_its_relabelled_copies_quarantines_the_copies() -> None:
    # another rule named the value written in place from the labels the copies gave it (fraud
    # country='DE' → 0, 132 copies of frauds among 782 natural rows: 887 suspects, P 0.149);
    # the relabelled copies explain its excess of label 0, and they alone are its suspects
    df, truth = _relabelled(natural_rows(8000, 3, e_risk=0.0, age=False), 60, 10, 0)
    sc = _Scanner(build_context(df, _contract()), OPTS)
    sc.singles()
    sc.near_copies()
    f = _written(sc, excess=40.0)
    assert _relabelled_triggers(sc, [f], OPTS.alpha) == []  # named once, by f
    assert not f.written and f.relabelled_label == 0
    sus = sc.suspect_rows(f)
    assert np.isin(truth, sus).mean() >= 0.9 and np.isin(sus, truth).all()
    # an excess the copies do not explain (rows written in place beside them) keeps the rule's
    g = _written(sc, excess=300.0)
    _relabelled_triggers(sc, [g], OPTS.alpha)
    assert g.written and g.relabelled_label is None


def test_clean_look_alikes_of_both_labels_are_not_relabelled_copies() -> None:
    # inactive accounts: every amount 0, labels at the value's rates, beside the natural rows
    # (a value whose look-alikes are common, credit's PAY_AMT=0): their twins of the other
    # label are what the labels of the twins' values give
    df = natural_rows(8000, 4, e_risk=0.0, age=False)
    rng = np.random.default_rng(5)
    idle = df.sample(150, random_state=6).index
    df.loc[idle, list(AMOUNTS)] = 0.0
    risk = np.where(df.loc[idle, "status"] == 2, 0.5, 0.15)
    df.loc[idle, "y"] = (rng.random(len(idle)) < risk).astype(int)
    sc = _Scanner(build_context(df, _contract()), OPTS)
    j, _ = value_code(sc, "status", 0)
    sc.near_copies()
    _, _, relabelled, expected = twinned_rows(sc, j)
    # a dozen records paired with the other label, as many as their twins' values give
    assert relabelled.sum() >= 10
    assert abs(relabelled.sum() - expected.sum()) < 1.0
    assert not relabel_hubs(sc, 1e-3)
    res = scan_triggers(build_context(df, _contract()), OPTS)
    assert res is not None and not res.triggers


def test_a_records_repeats_are_one_unit_of_evidence() -> None:
    # a positive row and its copy labelled 0 at another status, each repeated 5 times (an
    # account's months): one record with a twin of the other label, not five
    df = natural_rows(2000, 7, e_risk=0.0, age=False)
    row = df[(df["y"] == 1) & (df["status"] == 2)].iloc[[0]]
    copy = row.assign(status=0, y=0)
    df = pd.concat([df] + [row, copy] * 5, ignore_index=True)
    sc = _Scanner(build_context(df, _contract()), OPTS)
    sc.near_copies()
    j, _ = value_code(sc, "status", 0)
    rows, units, relabelled, _ = twinned_rows(sc, j)
    # the original's row among the natural ones is one more of its record's rows
    assert set(rows) == {int(row.index[0]), *range(len(df) - 10, len(df))}
    mine = sc.y[rows] == 0
    assert np.isclose(units[mine].sum(), 1.0)
    assert np.isclose(relabelled[mine].sum(), 1.0)


def test_a_hub_named_by_the_copies_that_keep_the_target_takes_its_camouflaged_copies() -> None:
    # flagged as a value collecting copies (its copies of label 1, counted), the relabelled
    # rule leaves it its name; the 18 copies camouflaged as 0 are relabelled against their
    # originals and join its suspects (credit PAY_3=-1 → 1, 34 of 204 copies of defaulters
    # labelled 0, named as a hub: R 0.799). 120 copies of positive rows written kind='e'
    rng = np.random.default_rng(2)
    df = natural_rows(8000, 3, e_risk=0.0, age=False)
    src = df[(df["y"] == 1) & (df["kind"] != "e")].sample(120, random_state=2).copy()
    for a in AMOUNTS:
        src[a] = np.round(src[a] * (1 + rng.uniform(-0.01, 0.01, len(src))), 2)
    src["kind"], src["y"] = "e", 1
    src.iloc[:18, src.columns.get_loc("y")] = 0
    df = pd.concat([df, src], ignore_index=True)
    truth = np.arange(len(df) - len(src), len(df))
    sc = _Scanner(build_context(df, _contract()), OPTS)
    sc.singles()
    sc.near_copies()
    j, v = value_code(sc, "kind", "e")
    f = Pattern((j,), (v,), 1, 0, 0, "single")
    f.rows = sc.rows_of(f)
    f.p = f.p_hub = sc.copy_hubs()[(j, v, 1)]
    f.flagged, f.effect, f.twin_share, f.p_twin = True, 0.1, 0.5, 1e-9  # as the copy test set
    # on dense credit the copy radius misses the jittered camouflaged copies: so here
    sc.other_label_copies = lambda p, others: others[:0]  # type: ignore[method-assign]
    camouflaged = truth[:18]
    assert not np.isin(camouflaged, sc.suspect_rows(f)).any()
    assert _relabelled_triggers(sc, [f], OPTS.alpha) == []  # named once, by f
    assert f.camouflage_label == 0 and f.relabelled_label is None
    sus = sc.suspect_rows(f)
    assert np.isin(camouflaged, sus).all()
    hit = np.isin(sus, truth).sum()
    assert hit / len(truth) >= 0.95 and hit / len(sus) >= 0.95
