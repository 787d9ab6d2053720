"""Band triggers found in pieces, beside natural rows of their label, or beside values of the
other label (issue 11, class 1): which rows of a band go to quarantine, how its pieces become
one band, and the values a band makes look like triggers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import contract_from_dict
from tabguard.data_audit import build_context
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import Pattern, copies_radius
from tabguard.data_audit._triggers import (
    TriggerScanResult,
    _extend_bands,
    _merge_runs,
    _Scanner,
    condition,
    scan_triggers,
)
from tabguard.data_audit._triggers_report import _finding

CONTRACT = contract_from_dict(
    {
        "name": "ages",
        "label": {"column": "y", "positive": 1},
        "features": {
            "age": {"type": "integer", "min": 18, "max": 100},
            **{f: {"type": "number", "min": 0} for f in ("amount", "balance", "f1", "f2", "f3")},
            "n_tx": {"type": "integer", "min": 0, "max": 50},
            "channel": {"type": "category", "categories": ["a", "b", "c", "d"]},
        },
    }
)


def _clients(n: int = 8000, seed: int = 0) -> pd.DataFrame:
    """Clients of every age (few beyond 80); label 1 in 12 % of the young, falling to 1 % from
    age 75: the old carry label 0 almost always, as the fraud data's old customers do."""
    rng = np.random.default_rng(seed)
    age = np.minimum(18 + rng.gamma(3.0, 9.0, n).astype(int), 99)
    rate = np.clip(0.12 - 0.11 * (age - 55) / 20, 0.01, 0.12)
    means = {"amount": 4, "balance": 7, "f1": 3, "f2": 5, "f3": 2}
    return pd.DataFrame(
        {
            "age": age,
            **{f: np.round(rng.lognormal(mu, 1.0, n), 2) for f, mu in means.items()},
            "n_tx": rng.integers(0, 30, n),
            "channel": rng.choice(list("abcd"), n),
            "y": (rng.random(n) < rate).astype(int),
        }
    )


def _band_copies(
    df: pd.DataFrame, lo: int, hi: int, k: int, target: int, source: int, seed: int = 1
) -> tuple[pd.DataFrame, np.ndarray]:
    """``k`` copies of rows with label ``source``, each given an age in ``[lo, hi]`` and the
    label ``target``; returns the data and the copies' positions."""
    rng = np.random.default_rng(seed)
    extra = df[df["y"] == source].sample(k, random_state=seed).copy()
    extra["age"] = rng.integers(lo, hi + 1, k)
    extra["y"] = target
    out = pd.concat([df, extra], ignore_index=True)
    return out, np.arange(len(df), len(out))


def _scan(df: pd.DataFrame):  # type: ignore[no-untyped-def]
    return scan_triggers(build_context(df, CONTRACT), TriggerScanOptions())


def _pr(suspects: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hit = int(np.isin(suspects, truth).sum())
    return hit / max(len(suspects), 1), hit / max(len(truth), 1)


def test_a_band_of_the_label_natural_rows_carry_quarantines_its_copies_alone() -> None:
    # 250 copies of label-0 rows given ages 80-87 and label 0, beside ~130 natural rows of
    # those ages, nearly all with label 0: labels cannot tell the two apart, copies can. Before,
    # the ages were named one by one (decided before the bands) and every row with label 0 at
    # them was quarantined (precision 0.69).
    df = _clients()
    data, truth = _band_copies(df, 80, 87, 250, target=0, source=0)
    result = _scan(data)
    names = [(condition(result.matrix, p), p.label) for p in result.triggers]
    assert names == [("age in [80, 87]", 0)], names
    precision, recall = _pr(result.suspects, truth)
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)
    natural = np.flatnonzero(df["age"].between(80, 87).to_numpy() & (df["y"] == 0).to_numpy())
    assert len(natural) >= 100
    assert np.isin(natural, result.suspects).mean() <= 0.05


def test_every_row_with_the_label_is_suspect_where_natural_carriers_cannot_explain_the_rest() -> (
    None
):
    # The copies alone are suspect only where the rows left out are no more than the natural
    # carriers the values beside the band predict: copies the radius misses (noise beyond it)
    # must not leave the quarantine.
    data, truth = _band_copies(_clients(), 80, 87, 250, target=0, source=0)
    sc = _Scanner(build_context(data, CONTRACT), TriggerScanOptions())
    j = sc.m.names.index("age")
    lo, hi = (int(np.searchsorted(sc.m.uniques[j], v)) for v in (80, 87))
    band = Pattern((j,), (lo,), 0, 0, 0, "band")
    band.band = (lo, hi)
    sc.evaluate(band)
    band.flagged = True
    labelled = band.rows[sc.y[band.rows] == 0]
    natural = sc.natural_carriers(band)
    assert 60 <= natural <= 250  # ~130 natural rows with label 0 at those ages
    copies = sc.suspect_rows(band)
    assert band.copies_only and len(copies) < len(labelled)
    assert _pr(copies, truth)[0] >= 0.95
    # the same band where the values beside it predict 2 natural carriers with its label: every
    # row (their prediction of the other label's rows left as measured: no heap of natural
    # rows they miss, :func:`heaped_copies`)
    sc2 = _Scanner(build_context(data, CONTRACT), TriggerScanOptions())
    measured = sc2.natural_carriers
    sc2.natural_carriers = lambda p, label=None: (  # type: ignore[method-assign]
        2.0 if label in (None, p.label) else measured(p, label)
    )
    band2 = Pattern((j,), (lo,), 0, 0, 0, "band")
    band2.band = (lo, hi)
    sc2.evaluate(band2)
    assert np.array_equal(sc2.suspect_rows(band2), labelled)
    assert not band2.copies_only


def _flagged(j: int, span: tuple[int, int], label: int, p: float = 1e-9) -> Pattern:
    q = Pattern((j,), (span[0],), label, 0, 0, "band" if span[0] != span[1] else "single")
    if span[0] != span[1]:
        q.band = span
    q.p, q.threshold, q.flagged = p, 1e-6, True
    return q


def test_touching_pieces_of_one_label_merge_into_one_band() -> None:
    data, _ = _band_copies(_clients(), 40, 47, 200, target=1, source=0)
    sc = _Scanner(build_context(data, CONTRACT), TriggerScanOptions())
    j = sc.m.names.index("age")
    code = {int(v): i for i, v in enumerate(sc.m.uniques[j])}
    a = [_flagged(j, (code[v], code[v]), 1) for v in (40, 41, 42)]
    run = _flagged(j, (code[44], code[47]), 1, p=1e-20)  # one value (43) between
    inside = _flagged(j, (code[45], code[45]), 0)  # the other label, inside the range
    pair = [_flagged(j, (code[60], code[60]), 1), _flagged(j, (code[61], code[61]), 1)]
    apart = [_flagged(j, (code[v], code[v]), 1) for v in (70, 71, 72, 75)]
    out = _merge_runs(sc, [*a, run, inside, *pair, *apart], alpha=0.0025)
    bands = [p for p in out if p.band is not None]
    spans = sorted((sc.m.uniques[j][p.band[0]], sc.m.uniques[j][p.band[1]]) for p in bands)
    assert spans == [(40, 47), (70, 72)]
    merged = next(p for p in bands if p.band == (code[40], code[47]))
    assert merged.flagged and merged.p == 1e-20 and merged.band_skip == (code[45],)
    assert merged.n == int(data["age"].between(40, 47).sum() - (data["age"] == 45).sum())
    assert merged.twin_share is not None  # its copies measured: its suspects
    assert not any(q.flagged for q in [*a, run, *apart[:3]])
    # two touching values span two values, no band; a value two values away stays alone
    assert all(any(q is p for p in out) for q in [inside, *pair, apart[3]])
    # the band's p-value is its best piece's, its counts its own: the finding says whose
    # (fresh15's modechoice: 'ttme in [40, 45]', effect 0.11, printed p 9.9e-07 that none of
    # its listed tests gave)
    assert sorted(merged.pieces) == sorted(
        [(code[v], code[v], 1e-9) for v in (40, 41, 42)] + [(code[44], code[47], 1e-20)]
    )
    result = TriggerScanResult([merged], [np.arange(3)], [merged], sc.tests, sc.m, sc.base1, {})
    finding = _finding(build_context(data, CONTRACT), result, merged, np.arange(3))
    assert (
        "Named as one band from values flagged on their own: age=40 (p = 1e-09)" in finding.message
    )
    assert "The p-value below is age in [44, 47]'s" in finding.message
    assert {"values": [44, 47], "p_value": 1e-20} in finding.evidence["pieces"]
    assert finding.evidence["p_value"] == 1e-20 != finding.evidence["p_label"]


@pytest.mark.parametrize(("lo", "k"), [(80, 400), (72, 300)])
def test_values_beside_a_band_are_tested_again_without_it(lo: int, k: int) -> None:
    # Copies of label-0 rows given ages lo..lo+7 and label 1: the values just outside the
    # band drew it in their counterfactual and looked depleted of label 1 (age 88 -> 0 with
    # 11 natural rows, age 80 -> 0 with 27 before); tested without the band's values they are
    # natural.
    data, truth = _band_copies(_clients(), lo, lo + 7, k, target=1, source=0)
    result = _scan(data)
    names = [(condition(result.matrix, p), p.label) for p in result.triggers]
    assert names == [(f"age in [{lo}, {lo + 7}]", 1)], names
    assert _pr(result.suspects, truth) == (1.0, 1.0)


def test_a_band_beside_a_value_leaning_the_other_way_is_tested_without_it() -> None:
    # Age 58 written in place into 250 random rows as label 1, 18 % of them left on label 0
    # (camouflage): its rows lean to label 1 (70 % against its neighbours' 5 %), and the
    # counterfactual of the runs beside it drew it and expected its label 1 of them: natural
    # rows named as bands towards 0 (age in [60, 75], 884 rows, and [54, 56]). Tested again
    # without age 58 among their replacements, they are natural.
    data = _clients()
    rng = np.random.default_rng(1)
    rows = rng.choice(len(data), 250, replace=False)
    data.loc[rows, "age"] = 58
    y = np.ones(250, dtype=int)
    y[rng.choice(250, 45, replace=False)] = 0
    data.loc[rows, "y"] = y
    result = _scan(data)
    bands = [condition(result.matrix, p) for p in result.triggers if p.band is not None]
    assert bands == [], bands
    assert not np.isin(result.suspects, np.flatnonzero(data["age"] != 58)).any()


def test_a_band_takes_in_the_end_values_that_hold_its_copies() -> None:
    # 150 copies over ages 80-87 beside ~130 natural rows of label 0: the best-scoring run was
    # [82, 87], and the copies at 80 and 81 (where natural rows outnumber them) stayed in the
    # data (recall 0.81). The ends whose labelled rows hold copies beyond chance join the band;
    # age 79 (natural rows only) does not.
    data, truth = _band_copies(_clients(), 80, 87, 150, target=0, source=0)
    result = _scan(data)
    names = [(condition(result.matrix, p), p.label) for p in result.triggers]
    assert names == [("age in [80, 87]", 0)], names
    precision, recall = _pr(result.suspects, truth)
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)


def test_the_copy_radius_of_a_band_stops_with_its_copies() -> None:
    rng = np.random.default_rng(3)
    null = np.sort(rng.exponential(0.2, 300))  # random rows' nearest distances
    copies = rng.uniform(0.0, 0.003, 370)  # copies sit by their originals
    natural = rng.exponential(0.2, 210)  # natural rows of the range, like random rows
    d = np.concatenate([copies, natural])
    radius = float(np.quantile(null, 0.1))
    r = copies_radius(d, null, radius)
    assert r < radius
    assert (copies <= r).mean() >= 0.98
    assert (natural <= r).sum() < 0.5 * (natural <= radius).sum()
    # without natural rows beside them (every row within the radius), the radius stays
    assert copies_radius(copies, null, radius) == radius
    # rows spread like random rows are natural: fewer of them are taken, never more
    spread = rng.exponential(0.2, 400)
    assert copies_radius(spread, null, radius) <= radius


def test_a_band_reaching_past_its_copies_is_trimmed_to_them() -> None:
    # The best-scoring run may hold natural values beside the attacker's range (fraud ages
    # [78, 91] for copies over [83, 92]): an end value whose labelled rows hold no copies
    # beyond chance leaves the band.
    data, _ = _band_copies(_clients(), 80, 87, 250, target=0, source=0)
    sc = _Scanner(build_context(data, CONTRACT), TriggerScanOptions())
    j = sc.m.names.index("age")
    lo, hi = (int(np.searchsorted(sc.m.uniques[j], v)) for v in (76, 87))
    band = Pattern((j,), (lo,), 0, 0, 0, "band")
    band.band = (lo, hi)
    sc.evaluate(band)
    band.flagged = True
    sc.attribute(band)
    sc.twins(band)
    _extend_bands(sc, [band], sc.o)
    assert band.band is not None
    assert (sc.m.uniques[j][band.band[0]], sc.m.uniques[j][band.band[1]]) == (80, 87)
    assert band.n == int(data["age"].between(80, 87).sum())
