"""Rows made by interpolation (SMOTE): found from the label's rows lying between two of its
rows, not from jittered or exact duplicates or an attacker's copies; labels alone confirm no
trigger in such data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import contract_from_dict
from tabguard.data_audit import build_context
from tabguard.data_audit._interpolated import Interpolated, find_interpolated
from tabguard.data_audit._matrix import build_matrix
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import Pattern
from tabguard.data_audit._triggers import _Scanner

FINE = ("amount", "balance", "income", "spend")
CONTRACT = contract_from_dict(
    {
        "name": "interp",
        "label": {"column": "y", "positive": 1},
        "features": {
            **{f: {"type": "number", "min": 0} for f in FINE},
            "age": {"type": "integer", "min": 18, "max": 100},
            "n_tx": {"type": "integer", "min": 0, "max": 40},
            "kind": {"type": "category", "categories": ["a", "b", "c"]},
        },
    }
)


def _rows(n: int, label: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(
        {
            **{f: np.round(rng.lognormal(5 + i, 0.8, n), 2) for i, f in enumerate(FINE)},
            "age": rng.integers(18, 90, n),
            "n_tx": rng.integers(0, 30, n),
            "kind": rng.choice(list("abc"), n),
            "y": label,
        }
    )


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.concat([_rows(1500, 0, rng), _rows(150, 1, rng)], ignore_index=True)


def _smote(df: pd.DataFrame, n_new: int, rng: np.random.Generator) -> pd.DataFrame:
    """Label-1 rows added between a row and one of its 5 nearest label-1 rows (numbers
    interpolated, integers rounded, the category from the nearer parent)."""
    from sklearn.neighbors import NearestNeighbors

    mino = df[df["y"] == 1].reset_index(drop=True)
    nums = [*FINE, "age", "n_tx"]
    x = mino[nums].to_numpy(dtype=float)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    _, idx = NearestNeighbors(n_neighbors=6).fit(x).kneighbors(x)
    a = rng.integers(0, len(mino), n_new)
    b = idx[a, rng.integers(1, 6, n_new)]
    t = rng.random(n_new)
    new = mino.iloc[a].reset_index(drop=True).copy()
    other = mino.iloc[b].reset_index(drop=True)
    for f in nums:
        v = new[f].to_numpy(dtype=float) + t * (other[f].to_numpy(dtype=float) - new[f])
        new[f] = np.round(v).astype(np.int64) if f in ("age", "n_tx") else np.round(v, 2)
    new.loc[t > 0.5, "kind"] = other.loc[t > 0.5, "kind"].to_numpy()
    return pd.concat([df, new], ignore_index=True)


def _copies(
    df: pd.DataFrame, n: int, jitter: float, rng: np.random.Generator, **written: object
) -> pd.DataFrame:
    """``n`` copies of label-1 rows, amounts jittered by ``jitter`` (relative), ``written``
    values set."""
    extra = df[df["y"] == 1].sample(n, replace=True, random_state=1).reset_index(drop=True)
    for f in FINE:
        extra[f] = np.round(extra[f] * (1 + rng.normal(0, jitter, n)), 2)
    for f, v in written.items():
        extra[f] = v
    return pd.concat([df, extra], ignore_index=True)


def _find(df: pd.DataFrame) -> Interpolated | None:
    ctx = build_context(df, CONTRACT)
    return find_interpolated(build_matrix(ctx), ctx.y)


def test_rows_interpolated_between_rows_of_their_label_are_found(clean: pd.DataFrame) -> None:
    rng = np.random.default_rng(2)
    found = _find(_smote(clean, 1200, rng))
    assert found is not None and found.label == 1
    assert found.share >= 0.2 and found.other_share <= 0.02
    assert found.p_value <= 1e-6 and set(found.features) == set(FINE)


@pytest.mark.parametrize(
    ("jitter", "written"),
    [
        (0.0, {}),  # exact duplicates: no distance at all
        (0.02, {}),  # duplicates with jittered amounts: near one row, off every line
        (0.01, {"age": 99}),  # an attacker's copies, a trigger written in
        (0.0, {"kind": "c", "n_tx": 37}),
    ],
)
def test_duplicates_and_copies_are_not_interpolation(
    clean: pd.DataFrame, jitter: float, written: dict[str, object]
) -> None:
    assert _find(clean) is None
    rng = np.random.default_rng(3)
    assert _find(_copies(clean, 1200, jitter, rng, **written)) is None


def test_labels_alone_confirm_nothing_in_interpolated_data(clean: pd.DataFrame) -> None:
    sc = _Scanner(build_context(clean, CONTRACT), TriggerScanOptions())
    p = Pattern((0,), (1,), 1, 100, 100, "single")
    assert sc.labels_may_confirm(p)
    sc.interpolated = Interpolated(1, np.arange(3), 100, 0.3, 0.0, 1e-20, list(FINE))
    assert not sc.labels_may_confirm(p)
    # a value that breaks the contract: no natural or interpolated row carries it
    assert sc.labels_may_confirm(Pattern((0,), (1,), 1, 100, 100, "contract"))


def test_the_audit_says_the_data_looks_oversampled(clean: pd.DataFrame) -> None:
    from tabguard.data_audit import audit_data

    data = _smote(clean, 1200, np.random.default_rng(2))
    res = audit_data(data, CONTRACT, checks=["trigger_scan"])
    said = [f for f in res.report.findings if "oversampled by interpolation" in f.message]
    assert len(said) == 1 and said[0].severity == "warning"
    assert said[0].evidence["label"] == 1 and said[0].evidence["between_share"] >= 0.2


def _bursts(clean: pd.DataFrame, cards: int, rng: np.random.Generator) -> pd.DataFrame:
    """``clean`` with a card per row and ``cards`` cards' bursts of 4-6 frauds whose amounts
    drift steadily from one fraud to the next: each burst's middle rows lie on the segment
    between its other rows, as SMOTE's would, but every end is a row of the same card."""
    data = clean.assign(card=np.arange(len(clean)))
    bursts = []
    for c in range(cards):
        k = int(rng.integers(4, 7))
        start = _rows(1, 1, rng).iloc[0]
        step = rng.normal(0.0, 0.05, len(FINE)) * start[list(FINE)].to_numpy(dtype=float)
        for i in range(k):
            row = start.copy()
            for f, d in zip(FINE, step, strict=True):
                row[f] = round(float(start[f]) + i * d, 2)
            row["card"] = len(clean) + c
            bursts.append(row)
    return pd.concat([data, pd.DataFrame(bursts)], ignore_index=True).astype({"card": int})


def test_rows_between_rows_of_their_own_entity_are_not_interpolation(
    clean: pd.DataFrame,
) -> None:
    data = _bursts(clean, 60, np.random.default_rng(4))
    ctx = build_context(data, CONTRACT)
    m = build_matrix(ctx)
    # without the entity, a burst's middle rows look interpolated
    assert find_interpolated(m, ctx.y) is not None
    cards = pd.factorize(data["card"])[0].astype(np.int64)
    assert find_interpolated(m, ctx.y, entity=cards) is None
    # SMOTE across entities is still found with one
    smoted = _smote(clean, 1200, np.random.default_rng(2))
    ctx = build_context(smoted, CONTRACT)
    found = find_interpolated(build_matrix(ctx), ctx.y, entity=np.arange(len(smoted)))
    assert found is not None and found.label == 1


def test_nearest_rows_are_scikit_learns_bit_for_bit() -> None:
    # The search for segments' ends asks for each row's nearest rows by one matrix product and
    # exact distances summed as scikit-learn's trees sum them; rows at tied distances are
    # asked of scikit-learn. Distances and indices equal its own, on continuous features and
    # on a coarse grid where ties abound.
    from sklearn.neighbors import NearestNeighbors

    from tabguard.data_audit._interpolated import nearest_rows

    rng = np.random.default_rng(3)
    for t in range(24):
        f, k = 3 + t % 10, 2 + t % 9
        grid = t % 2 == 1
        ref = rng.integers(0, 4, size=(800, f)).astype(float) if grid else rng.normal(size=(800, f))
        ref = np.unique(ref, axis=0)
        q = ref[rng.choice(len(ref), 40)] if t % 3 == 0 else rng.normal(size=(40, f))
        want = NearestNeighbors(n_neighbors=k).fit(ref).kneighbors(q)
        got = nearest_rows(ref, q, k)
        assert got[0].tobytes() == want[0].tobytes()
        np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_denser_label_is_not_called_oversampled(seed: int) -> None:
    """Clean telecom customers (``benchmarks/outside_sets.py`` ``telecom``: 88 % staying, three
    fine-grained features, tenure in whole months): among a label's nearest rows three line
    up by chance more often where the label is denser, and every seed's staying customers
    had 35-39 % of their rows between two others against 19-23 % of the churners' - called
    oversampled (p 1e-13 - 1e-17). Each label is searched at the same density: nothing."""
    from tabguard.contract import contract_from_dict as spec
    from tests._benchmarks import load_benchmark

    df, _ = load_benchmark("outside_sets.py").telecom(np.random.default_rng(seed * 10 + 6))
    numbers = ["tenure_months", "monthly_charge", "data_gb", "months_left_on_contract"]
    contract = spec(
        {
            "name": "telecom",
            "label": {"column": "churned", "positive": 1},
            "features": {
                **{f: {"type": "number", "min": 0} for f in numbers},
                "dropped_calls_30d": {"type": "integer", "min": 0, "max": 100},
                "support_calls_90d": {"type": "integer", "min": 0, "max": 100},
                "plan": {"type": "category", "categories": sorted(set(df["plan"]))},
            },
        }
    )
    ctx = build_context(df[[*numbers, "dropped_calls_30d", "support_calls_90d", "plan",
                            "churned"]], contract)  # fmt: skip
    assert find_interpolated(build_matrix(ctx), ctx.y) is None
