"""The data audit's faster computations give what the direct ones give."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tabguard._copy_groups import factorize_keys, splitmix64
from tabguard.contract import Contract, contract_from_dict
from tabguard.data_audit import _duplicates, build_context
from tabguard.data_audit._duplicates import NearDuplicatesOptions, find_near_duplicates
from tabguard.data_audit._matrix import AuditMatrix
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import (
    Pattern,
    among_point_masses,
    binomial_z,
    interior_point_masses,
    poisson_binomial_cdf,
    window_medians,
)
from tabguard.data_audit._triggers import _pair_cells, _Scanner, _top


def _matrix(codes: np.ndarray) -> AuditMatrix:
    n, d = codes.shape
    counts = [np.bincount(codes[codes[:, j] >= 0, j]) for j in range(d)]
    return AuditMatrix(
        names=[f"f{j}" for j in range(d)],
        codes=np.asfortranarray(codes.astype(np.int32)),
        uniques=[np.arange(len(c), dtype=float) for c in counts],
        counts=counts,
        ordinal=np.ones(d, dtype=bool),
        breaks_contract=[np.zeros(len(c), dtype=bool) for c in counts],
        raw=codes.astype(float),
        rank=np.zeros((n, d), dtype=np.float32),
        raw_is_code=np.zeros(d, dtype=bool),
    )


def test_rows_by_value_of_a_feature_with_many_values_are_in_stable_order() -> None:
    # more than 65,535 value ids: two 16-bit radix passes instead of one
    rng = np.random.default_rng(0)
    codes = rng.integers(-1, 90_000, size=(200_000, 1))
    m = _matrix(codes)
    order, sorted_codes = m._sorted_index(0)
    assert len(m.counts[0]) > 65_535
    np.testing.assert_array_equal(order, np.argsort(codes[:, 0], kind="stable"))
    np.testing.assert_array_equal(sorted_codes, np.sort(codes[:, 0]))
    for v in (0, 65_535, 65_536, 89_999):
        np.testing.assert_array_equal(m.rows_with(0, v), np.flatnonzero(codes[:, 0] == v))


def test_exact_copy_share_of_a_common_value_counts_copies_outside_its_rows() -> None:
    # a value on a third of the rows (the grouping path): the share of its labelled rows with
    # an exact copy outside them, on every other feature, against a direct count
    rng = np.random.default_rng(1)
    n = 3000
    df = pd.DataFrame(
        {
            "a": rng.integers(0, 3, n),
            "b": rng.integers(0, 4, n),
            "c": rng.integers(0, 2000, n),
            "y": rng.integers(0, 2, n),
        }
    )
    contract = contract_from_dict(
        {
            "name": "t",
            "label": {"column": "y", "positive": 1},
            "features": {k: {"type": "integer", "min": 0, "max": 2000} for k in "abc"},
        }
    )
    sc = _Scanner(build_context(df, contract), TriggerScanOptions())
    j = sc.m.names.index("a")
    rows = np.flatnonzero(df["a"].to_numpy() == 1)
    label = 1
    p = Pattern((j,), (1,), label, len(rows), int(df["y"].to_numpy()[rows].sum()), "single")
    p.rows = rows
    query = rows[df["y"].to_numpy()[rows] == label]
    assert 10 * len(query) >= n  # the grouping path
    key = df["b"].astype(str) + "/" + df["c"].astype(str)
    outside = ~np.isin(np.arange(n), query)
    seen = set(key[outside])
    expected = float(np.mean([key[i] in seen for i in query]))
    assert 0.1 < expected < 0.9  # some of its rows have copies outside, not all
    assert sc.exact_copy_share(p) == expected


def _near_dup_data(seed: int, repeats: float) -> tuple[pd.DataFrame, object]:
    """Distinct records, a share ``repeats`` of them repeated whole, and copies differing from
    their original in one feature (each feature in turn)."""
    rng = np.random.default_rng(seed)
    n, d = 4000, 8
    df = pd.DataFrame({f"x{j}": rng.integers(0, 3 if j < 3 else 500, n) for j in range(d)})
    df["y"] = rng.integers(0, 2, n)
    again = df.sample(frac=repeats, random_state=seed)
    copies = df.sample(200, random_state=seed + 1).copy()
    for i, j in enumerate(rng.integers(0, d, len(copies))):
        copies.iloc[i, j] = 1000 + i % 7  # written in
    out = pd.concat([df, again, copies], ignore_index=True)
    features = {f"x{j}": {"type": "integer", "min": 0, "max": 2000} for j in range(d)}
    contract = contract_from_dict(
        {"name": "t", "label": {"column": "y", "positive": 1}, "features": features}
    )
    return out.sample(frac=1.0, random_state=seed).reset_index(drop=True), contract


@pytest.mark.parametrize(("seed", "repeats"), [(0, 0.0), (1, 0.1), (2, 0.8)])
def test_near_duplicates_read_only_candidate_rows_and_find_the_same_groups(
    monkeypatch: pytest.MonkeyPatch, seed: int, repeats: float
) -> None:
    df, contract = _near_dup_data(seed, repeats)
    opts = NearDuplicatesOptions()
    fast = find_near_duplicates(build_context(df, contract), opts)  # type: ignore[arg-type]
    with monkeypatch.context() as mp:  # every row of every feature
        mp.setattr(_duplicates, "_candidates", lambda m, *a: [None] * len(m.names))
        full = find_near_duplicates(build_context(df, contract), opts)  # type: ignore[arg-type]
    assert len(fast.singles) >= 3  # copies were found on several features
    assert [g.features for g in fast.singles] == [g.features for g in full.singles]
    for a, b in zip(fast.singles, full.singles, strict=True):
        np.testing.assert_array_equal(a.rows, b.rows)
        assert (a.values, a.count, a.dominant) == (b.values, b.count, b.dominant)
    assert len(fast.pairs) == len(full.pairs)


@pytest.mark.parametrize("cap", [1, 7, 1200])
def test_pair_candidates_are_the_best_by_the_scalar_cheap_score(cap: int) -> None:
    # thousands of interacting value pairs, many tied at a score of 0: the Patterns made are
    # those _top keeps of a Pattern per pair scored one by one (the rule before)
    rng = np.random.default_rng(cap)
    m = 3000
    n_c = rng.integers(5, 400, m)
    k1 = np.floor(rng.random(m) * (n_c + 1)).astype(float)
    add = rng.normal(0, 2, m)
    lean = rng.random(m) < 0.5
    cols = np.stack([rng.integers(0, 5, m), rng.integers(5, 9, m)], axis=1)
    va, vb = rng.integers(0, 50, m), rng.integers(0, 50, m)
    sc = _Scanner.__new__(_Scanner)
    sc.o = TriggerScanOptions(max_candidates=cap)
    halves = [slice(0, m // 3), slice(m // 3, m)]  # as found for two feature pairs
    found = [(cols[h], va[h], vb[h], lean[h], n_c[h], k1[h], add[h]) for h in halves]
    made = sc._pair_patterns(found)
    every = []
    for i in range(m):
        c = int(lean[i])
        k = int(k1[i]) if c == 1 else int(n_c[i]) - int(k1[i])
        pred = 1 / (1 + math.exp(-add[i]))
        pred = pred if c == 1 else 1 - pred
        score = max(binomial_z(k, int(n_c[i]), pred), 0.0)
        pair = (int(cols[i, 0]), int(cols[i, 1]))
        every.append(Pattern(pair, (int(va[i]), int(vb[i])), c, int(n_c[i]), k, "pair", score))
    positive = [sum(p.cheap_score > 0 for p in every if p.label == c) for c in (0, 1)]
    if cap < 10:
        assert len(made) <= 4 * cap  # a Pattern for the best only
    else:
        assert min(positive) < cap  # the cut falls among the pairs tied at 0

    def view(ps: list[Pattern]) -> list[tuple[object, ...]]:
        return [(p.cols, p.codes, p.label, p.n, p.k, p.cheap_score) for p in ps]

    assert view(_top(made, cap)) == view(_top(every, cap))


def test_counterfactual_predictions_are_the_models_and_each_distinct_row_is_predicted_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the scan's counterfactual rows repeat (replicates drawing one replacement, re-tests):
    # the kept answers are the model's own, and a row asked again is not predicted again
    from tabguard.data_audit import _triggers

    rng = np.random.default_rng(3)
    n = 600
    df = pd.DataFrame(
        {"a": rng.integers(0, 4, n), "b": rng.integers(0, 50, n), "y": rng.integers(0, 2, n)}
    )
    contract = contract_from_dict(
        {
            "name": "t",
            "label": {"column": "y", "positive": 1},
            "features": {k: {"type": "integer", "min": 0, "max": 100} for k in "ab"},
        }
    )
    sc = _Scanner(build_context(df, contract), TriggerScanOptions())
    model = sc.model()
    X = sc.m.raw[rng.integers(0, n, 300)].copy()
    X[::3, 0] = np.nan  # missing values are rows like any other
    asked: list[int] = []
    direct = _triggers.predict

    def counted(m: object, rows: np.ndarray) -> np.ndarray:
        asked.append(len(rows))
        return direct(m, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(_triggers, "predict", counted)
    first = sc.counterfactual(X)
    np.testing.assert_array_equal(first, direct(model, X))  # bit for bit
    assert asked == [len({row.tobytes() for row in X})] and asked[0] < len(X)
    again = sc.counterfactual(X[::-1])
    np.testing.assert_array_equal(again, first[::-1])
    assert len(asked) == 1  # nothing new: no prediction


def test_replacements_kept_per_value_follow_the_values_excluded_since() -> None:
    rng = np.random.default_rng(4)
    n = 400
    df = pd.DataFrame({"a": rng.integers(0, 6, n), "y": rng.integers(0, 2, n)})
    contract = contract_from_dict(
        {
            "name": "t",
            "label": {"column": "y", "positive": 1},
            "features": {"a": {"type": "category", "categories": list(range(6))}},
        }
    )
    sc = _Scanner(build_context(df, contract), TriggerScanOptions())
    ids, _ = sc._replacements(0, 1)
    assert 2 in ids and sc._replacements(0, 1)[0] is ids  # kept
    sc.excluded = {(0, 2)}
    ids2, w2 = sc._replacements(0, 1)
    assert 2 not in ids2
    for got, direct in zip((ids2, w2), sc._replacements_of(0, 1), strict=True):
        np.testing.assert_array_equal(got, direct)
    sc.excluded = set()
    assert sc._replacements(0, 1)[0] is ids and not ids.flags.writeable


def _hierarchy(n: int, strays: int, seed: int = 5) -> pd.DataFrame:
    """Codes (12, 3 per chapter) and their chapter (4), ``strays`` rows given another chapter."""
    rng = np.random.default_rng(seed)
    code = rng.integers(0, 12, n)
    chapter = code // 3
    chapter[:strays] = (chapter[:strays] + 1) % 4
    return pd.DataFrame({"code": code, "chapter": chapter, "y": rng.integers(0, 2, n)})


def _hierarchy_contract() -> Contract:
    return contract_from_dict(
        {
            "name": "t",
            "label": {"column": "y", "positive": 1},
            "features": {
                "code": {"type": "category", "categories": list(range(12))},
                "chapter": {"type": "category", "categories": list(range(4))},
            },
        }
    )


def test_a_code_of_a_hierarchy_is_replaced_by_its_siblings() -> None:
    # a code replaced by another chapter's, beside this row's chapter, is a row that cannot
    # exist (ICD O80 beside chapter XV scored as another chapter: the chapter's effect was
    # taken for the code's); its siblings replace it, the chapter keeps every other chapter
    sc = _Scanner(build_context(_hierarchy(6000, 0), _hierarchy_contract()), TriggerScanOptions())
    j_code, j_chap = sc.m.names.index("code"), sc.m.names.index("chapter")
    code = list(sc.m.uniques[j_code]).index(4)  # chapter 1: codes 3, 4, 5
    ids, w = sc._replacements(j_code, code)
    assert sorted(sc.m.uniques[j_code][ids].tolist()) == [3, 5]
    assert abs(float(w.sum()) - 1.0) < 1e-9
    assert [k for k, _ in sc._parents(j_code)] == [j_chap]
    assert sc._parents(j_chap) == []  # the chapter is no function of anything here
    assert len(sc._replacements(j_chap, 0)[0]) == 3
    # the copy tests' rows of the same kind: the siblings' rows, as for an ordinal value the
    # values beside it
    sib = sc._siblings(j_code, code)
    assert sib is not None and sorted(sc.m.uniques[j_code][sib].tolist()) == [3, 5]
    sc.excluded = {(j_code, int(sib[0]))}
    assert len(sc._siblings(j_code, code) or []) == 1
    assert sc._siblings(j_chap, 0) is None


def test_a_hierarchy_with_missing_values_is_found_without_them() -> None:
    # a missing code or chapter (code -1) is no value: the scan stopped on it (np.bincount of
    # a negative code: clean_data 94725:mcar, credit with missing values in its categories)
    df = _hierarchy(6000, 0).astype({"code": float, "chapter": float})
    df.loc[:99, "code"] = np.nan
    df.loc[100:199, "chapter"] = np.nan
    spec = _hierarchy_contract().features
    feats = {k: f.model_copy(update={"nullable": True}) for k, f in spec.items()}
    contract = _hierarchy_contract().model_copy(update={"features": feats})
    sc = _Scanner(build_context(df, contract), TriggerScanOptions())
    j_code, j_chap = sc.m.names.index("code"), sc.m.names.index("chapter")
    assert [k for k, _ in sc._parents(j_code)] == [j_chap]
    assert sc._parents(j_chap) == []


def test_a_code_written_into_another_chapter_breaks_the_hierarchy() -> None:
    # 30 of 6,000 rows (0.5 %) off their chapter: more than _PARENT_STRAYS, no hierarchy, and
    # every other code replaces a code as before
    sc = _Scanner(build_context(_hierarchy(6000, 30), _hierarchy_contract()), TriggerScanOptions())
    j_code = sc.m.names.index("code")
    assert sc._parents(j_code) == []
    assert len(sc._replacements(j_code, 4)[0]) == 11


def test_medians_of_windows_equal_numpys_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    w = rng.normal(0, 1e6, size=(400, 20)) * rng.choice([1e-9, 1.0], size=(400, 1))
    w[rng.random(w.shape) < 0.4] = np.nan
    w[0] = np.nan  # no value at all: NaN
    got = window_medians(w)
    want = [np.median(r[~np.isnan(r)]) if (~np.isnan(r)).any() else np.nan for r in w]
    np.testing.assert_array_equal(got, want)  # exact, NaN where no value


def test_point_masses_asked_at_once_equal_the_value_by_value_tests() -> None:
    # a spike beside values of a few rows, a value of 0, the ends, values no row holds
    rng = np.random.default_rng(4)
    for _ in range(50):
        n = int(rng.integers(3, 300))
        cnt = rng.choice([0, 1, 3, 25, 40, 800], n) * rng.integers(1, 4, n).astype(float)
        values = rng.choice([0.0, 2.5], n)
        held = np.flatnonzero(cnt > 0)
        one_by_one = []
        for v in range(n):
            ok = len(held) >= 3 and values[v] != 0 and held[0] < v < held[-1]
            if ok:
                at = int(np.searchsorted(held, v))
                near = np.concatenate([held[max(at - 10, 0) : at], held[at + 1 : at + 11]])
                local = max(float(np.median(cnt[near])) if len(near) else 1.0, 1.0)
                ok = bool(cnt[v] > 10.0 * local + 10.0)
            one_by_one.append(ok)
        got = interior_point_masses(cnt, np.arange(n), values, 10.0, held)
        assert got.tolist() == one_by_one
        assert among_point_masses(cnt, np.arange(n), values, 10.0) == any(one_by_one)


def test_spikes_of_every_value_at_once_equal_the_value_by_value_test() -> None:
    rng = np.random.default_rng(5)
    codes = rng.choice(400, size=(60_000, 1), p=np.r_[[0.2], np.full(399, 0.8 / 399)])
    codes[rng.random(60_000) < 0.04] = 7  # a second spike among the values
    sc = _Scanner.__new__(_Scanner)  # the test reads the value counts only
    sc.m, sc._spike_ids = _matrix(codes), {}
    cnt = sc.m.counts[0].astype(float)
    allowed = ~sc.m.breaks_contract[0] & (cnt > 0)
    want = np.zeros(len(cnt), dtype=bool)
    for v in np.flatnonzero(allowed & (cnt > 20.0)):
        near = [u for u in range(max(v - 10, 0), min(v + 11, len(cnt))) if allowed[u] and u != v]
        local = 10.0 * max(float(np.median(cnt[near])) if near else 1.0, 1.0)
        want[v] = cnt[v] > local + 10.0
    assert want.sum() == 2
    np.testing.assert_array_equal(sc._spikes(0), want)


@pytest.mark.parametrize("distinct", [1.0, 0.6, 0.01])
def test_keys_factorized_through_their_low_bits_equal_pandas(distinct: float) -> None:
    # most keys distinct (the copy checks' groupings), many repeated, and keys whose low bits
    # all agree (every key through the hash table)
    rng = np.random.default_rng(6)
    n = 200_000
    keys = splitmix64(rng.integers(0, int(n * distinct), n).astype(np.uint64))
    for k in (keys, keys << np.uint64(30)):
        codes, uniq = pd.factorize(k)
        got, groups = factorize_keys(k)
        np.testing.assert_array_equal(got, codes)
        assert groups == len(uniq)


def test_poisson_binomial_tail_in_kept_buffers_equals_the_step_by_step_sums() -> None:
    rng = np.random.default_rng(7)
    for _ in range(100):
        p = rng.random(int(rng.integers(1, 300))) ** rng.uniform(0.2, 5.0)
        k = int(rng.integers(0, 61))
        dist = np.full(k + 1, -np.inf)
        dist[0] = 0.0
        logp, log1m = np.log(np.clip(p, 1e-300, 1.0)), np.log(np.clip(1.0 - p, 1e-300, 1.0))
        for lp, l1 in zip(logp, log1m, strict=True):
            move = np.concatenate(([-np.inf], dist[:-1] + lp))
            dist = np.logaddexp(dist + l1, move)
        want = float(min(1.0, math.exp(np.logaddexp.reduce(dist)))) if k < len(p) else 1.0
        assert poisson_binomial_cdf(p, k) == want  # bit for bit


def test_pairs_of_value_ids_counted_per_cell_equal_their_unique_pairs() -> None:
    # every id held (counted per cell), and with a missing id (-1: sorted instead)
    rng = np.random.default_rng(8)
    cj, ck = rng.integers(0, 40, 5000), rng.integers(0, 6, 5000).astype(np.int32)
    for k in (ck, np.where(rng.random(5000) < 0.01, -1, ck)):
        want = np.unique(cj * 6 + k, return_counts=True)
        got = _pair_cells(cj, k, 40, 6)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)


def test_instrument_models_build_histograms_row_wise_and_fit_the_same_trees(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the instruments (context model, label noise's folds, RONI) and bias's proxy models build
    # histograms row by row; LightGBM's own choice (timed on each fit) fits the same trees
    import lightgbm as lgb

    from tabguard.data_audit import _bias, _context_model
    from tabguard.data_audit._context_model import fit_context_model, histogram_layout

    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 8)).round(2)
    X[:, 0] = rng.integers(0, 6, 3000)
    X[rng.random(X.shape) < 0.03] = np.nan
    y = (X[:, 1] + (X[:, 0] == 2) + rng.normal(size=3000) > 0.8).astype(float)
    w = rng.uniform(0.2, 1.0, 3000)
    row_wise = fit_context_model(X, y, [0], rounds=30, weight=w)
    assert "[force_row_wise: 1]" in row_wise.model_to_string()
    with monkeypatch.context() as m:
        m.setattr(_context_model, "histogram_layout", lambda n: {})
        chosen = fit_context_model(X, y, [0], rounds=30, weight=w)

    def trees(b: lgb.Booster) -> list[str]:
        return [s for s in b.model_to_string().splitlines() if not s.startswith("[force_")]

    assert "[force_row_wise: 0]" in chosen.model_to_string()
    assert trees(chosen) == trees(row_wise)
    assert histogram_layout(_context_model.ROW_WISE_COLUMNS + 1) == {}  # wide: LightGBM's
    made: list[dict[str, object]] = []

    class Spy(lgb.LGBMClassifier):
        def __init__(self, **kw: object) -> None:
            made.append(kw)
            super().__init__(**kw)  # type: ignore[arg-type]

    monkeypatch.setattr(lgb, "LGBMClassifier", Spy)
    ctx = build_context(
        pd.DataFrame({"a": X[:, 1], "b": X[:, 2], "g": (X[:, 3] > 0).astype(int), "y": y}),
        contract_from_dict(
            {
                "name": "t",
                "label": {"column": "y"},
                "features": {
                    "a": {"type": "number"},
                    "b": {"type": "number"},
                    "g": {"type": "category", "categories": [0, 1], "protected": True},
                },
            }
        ),
    )
    codes = (X[:, 3] > 0).astype(int)
    _bias._joint_proxy(ctx, np.arange(3000), codes, [1], "g", _bias.BiasOptions(), rng)
    assert made and all(kw.get("force_row_wise") is True for kw in made)


def test_magnitude_codes_read_from_value_ids_equal_the_rows_magnitudes() -> None:
    # the order-of-magnitude codes of a fine-grained feature, taken per value id then read per
    # row, equal those of every row's value (zeros of both signs, negatives, missing and
    # non-finite values, decades' edges, a feature without missing values)
    from tabguard.data_audit._triggers import _magnitude

    rng = np.random.default_rng(8)
    n = 4000
    a = np.round(rng.lognormal(3, 3, n) * rng.choice([-1.0, 1.0], n), 2)
    a[rng.random(n) < 0.05] = 0.0
    a[rng.random(n) < 0.03] = -0.0
    a[rng.random(n) < 0.04] = np.nan
    a[:6] = [np.inf, -np.inf, 3.1622776601683795, 31.622776601683793, 0.316, 1e-300]
    b = np.round(rng.normal(0, 1, n), 3)
    df = pd.DataFrame({"a": a, "b": b, "c": rng.integers(0, 3, n), "y": rng.integers(0, 2, n)})
    contract = contract_from_dict(
        {
            "name": "t",
            "label": {"column": "y", "positive": 1},
            "features": {
                "a": {"type": "number"},
                "b": {"type": "number"},
                "c": {"type": "category", "categories": [0, 1, 2]},
            },
        }
    )
    sc = _Scanner(build_context(df, contract), TriggerScanOptions())
    for g in (sc.m.names.index("a"), sc.m.names.index("b")):
        assert sc.fine[g]
        mag = _magnitude(sc.m.raw[:, g])
        key = np.where(np.isnan(mag), 0.0, np.clip(mag, -999.0, 999.0) + 1000.0).astype(int)
        _, expected = np.unique(key, return_inverse=True)
        got = sc.magnitude_codes(g)
        assert got.dtype == np.int64
        assert np.array_equal(got, expected)
        assert len(np.unique(got)) > 5


def test_grid_pairs_from_kept_grid_keys_equal_the_keys_summed_per_call() -> None:
    # the pairs of rows equal up to buckets on each grid, from each grid's whole-row key kept
    # once less the hashes of the pattern's features, equal those of the keys summed on each
    # call (jittered copies on fine-grained amounts, a fine-grained feature among the cols)
    from tabguard.data_audit._triggers import _RECORD_GRIDS

    rng = np.random.default_rng(4)
    n = 6000
    df = pd.DataFrame(
        {
            "c": rng.integers(0, 4, n),
            "a1": np.round(rng.lognormal(3, 1, n), 2),
            "a2": np.round(rng.lognormal(5, 1, n), 2),
            "k": rng.integers(0, 3, n),
            "y": rng.integers(0, 2, n),
        }
    )
    src = rng.choice(n, 400, replace=False)
    copies = df.iloc[src].copy()
    copies["a1"] = np.round(copies["a1"] * rng.uniform(0.97, 1.03, 400), 2)
    copies["c"] = 3
    df = pd.concat([df, copies], ignore_index=True)
    contract = contract_from_dict(
        {
            "name": "t",
            "label": {"column": "y", "positive": 1},
            "features": {
                "c": {"type": "integer", "min": 0, "max": 3},
                "a1": {"type": "number"},
                "a2": {"type": "number"},
                "k": {"type": "integer", "min": 0, "max": 2},
            },
        }
    )
    sc = _Scanner(build_context(df, contract), TriggerScanOptions())
    m = sc.m
    fine = [i for i in range(len(m.names)) if sc.fine[i] and not m.raw_is_code[i]]
    assert fine
    query = np.sort(rng.choice(len(df), 700, replace=False))
    for cols in [(m.names.index("c"),), (m.names.index("c"), m.names.index("a1"))]:
        expected, pairs = [], []
        for g in range(_RECORD_GRIDS):
            key = sc.tolerant_row_key().copy()
            with np.errstate(over="ignore"):
                for j in cols:
                    key -= sc._tolerant_cell(j)
                for i in fine:
                    if i not in cols and g:
                        shift = sc._tolerant_table(i, g) - sc._tolerant_table(i)
                        key += np.take(np.roll(shift, -1), m.codes[:, i])
            expected.append(key)
            # the pairs by definition: a query row and every other row of its key
            for q, a in enumerate(query):
                for b in np.flatnonzero(key == key[a]):
                    if b != a:
                        pairs.append((q, a, b))
        got = list(sc._grid_pairs(cols, query, largest=None))
        assert len(got) >= _RECORD_GRIDS and len(pairs) > 100
        found = sorted(
            (int(q), int(a), int(b)) for run in got for q, a, b in zip(*run, strict=True)
        )
        assert found == sorted(pairs)
        # each grid's key from the kept whole-row key equals the one summed on each call
        for g in range(_RECORD_GRIDS):
            assert np.array_equal(sc._grid_key(cols, g), expected[g])


def test_the_matrix_reads_the_validations_hashing_of_category_columns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the validation hashes each text or category column once (validate_frame's factorized);
    # the matrix built from it equals the matrix that hashes the columns itself, bit for bit
    # (text with missing values, a category outside the contract, numbers as categories)
    from dataclasses import replace

    from tabguard.contract import validate_frame
    from tabguard.data_audit import _matrix

    rng = np.random.default_rng(2)
    n = 5000
    city = rng.choice(["Oslo", "Lima", "Pune", "Graz"], n).astype(object)
    city[rng.random(n) < 0.05] = None
    city[:3] = "Nowhere"
    df = pd.DataFrame(
        {
            "city": city,
            "tier": rng.choice([1, 2, 3], n),
            "amount": np.round(rng.lognormal(3, 1, n), 2),
            "y": rng.integers(0, 2, n),
        }
    )
    contract = contract_from_dict(
        {
            "name": "t",
            "label": {"column": "y", "positive": 1},
            "features": {
                "city": {"type": "category", "categories": ["Oslo", "Lima", "Pune", "Graz"]},
                "tier": {"type": "category", "categories": [1, 2, 3]},
                "amount": {"type": "number"},
            },
        }
    )
    val = validate_frame(df, contract)
    assert set(val.factorized) == {"city", "tier"}
    for name, (codes, uniques) in val.factorized.items():
        expected_codes, expected_uniques = pd.factorize(df[name], use_na_sentinel=True)
        assert np.array_equal(codes, expected_codes)
        assert list(uniques) == list(expected_uniques)
    hashed: list[str] = []
    real = pd.factorize

    def counted(values: object, **kw: object) -> object:
        if isinstance(values, pd.Series):  # a column of the rows (not a numeric view's values)
            hashed.append(str(values.name))
        return real(values, **kw)  # type: ignore[call-overload]

    with monkeypatch.context() as m:
        m.setattr(_matrix.pd, "factorize", counted)
        reused = _matrix._build_matrix(build_context(df, contract, validation=val))
    assert hashed == []  # no column of the rows hashed again
    own = _matrix._build_matrix(build_context(df, contract, validation=replace(val, factorized={})))
    for a, b in ((reused.codes, own.codes), (reused.raw, own.raw), (reused.rank, own.rank)):
        assert np.array_equal(a, b, equal_nan=True)
    for u, w in zip(reused.uniques, own.uniques, strict=True):
        assert list(u) == list(w)
    assert all(np.array_equal(a, b) for a, b in zip(reused.counts, own.counts, strict=True))
