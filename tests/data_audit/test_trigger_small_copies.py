"""Small camouflaged copy groups (issue 11, class 3): a few dozen copies of rows with
two values written in (a rare value and a common one), 10-20 % of them given the other label.
Labels alone are significant but short of the effect that needs no copies; the copies decide,
and they differ from their originals in both written values."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import Contract
from tabguard.data_audit import _triggers as triggers
from tabguard.data_audit import build_context
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import Pattern
from tabguard.data_audit._triggers import _Scanner, scan_triggers
from tests.data_audit._synthetic import natural_rows, synthetic_contract, value_code

OPTS = TriggerScanOptions()


def _contract() -> Contract:
    return synthetic_contract("small", age=True)


def _planted(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Natural rows (ages 20-79), three of them moved to age 95, and 30 exact copies of rows
    with ``status=0`` with ``age=95`` and ``status=-1`` written in (a low-risk status, 30 % of
    the rows), labelled 1 but 5 of them (camouflage): about 28 rows of label 0 expected,
    under the camouflage rule's 30. Returns the data and the copies' row positions."""
    df = natural_rows(6000, seed, e_risk=0.2, age=True)
    natural = df[df["y"] == 0].sample(3, random_state=seed + 1).index
    df.loc[natural, "age"] = 95
    src = df[(df["kind"] != "e") & (df["status"] == 0)].sample(30, random_state=seed + 2).copy()
    src["age"], src["status"] = 95, -1
    src["y"] = np.r_[np.ones(25, dtype=int), np.zeros(5, dtype=int)]
    out = pd.concat([df, src], ignore_index=True)
    return out, np.arange(len(df), len(out))


def test_copies_of_a_pair_are_copies_of_its_rare_member_without_the_other_value() -> None:
    # the labelled rows of age=95 all carry status=-1 (30 % of the rows): the copy check of
    # age=95 compares rows without status too, in which every copy differs from its original
    df, _ = _planted()
    sc = _Scanner(build_context(df, _contract()), OPTS)
    j, v = value_code(sc, "age", 95)
    p = Pattern((j,), (v,), 1, 0, 0, "single")
    p.rows = sc.rows_of(p)
    sc.twins(p)
    assert p.twin_share is not None and p.twin_share >= 0.9
    assert p.p_twin is not None and p.p_twin <= 1e-10


@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
def test_significant_labels_get_their_copy_check_whatever_the_budget(
    large: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no copy check budgeted: the labels of age=95 pass the family-wise test (25 positives of
    # 33 rows) short of the strong effect, and its copy check still runs; on data the scan
    # takes for large too (a million rows: 150 copies of frauds on customer_age=92 &
    # country='NG' had no copy check and were named by nothing)
    if large:
        monkeypatch.setattr(triggers, "LARGE_ROWS", 1_000)
    df, truth = _planted()
    opts = dataclasses.replace(OPTS, max_twin_checks=0)
    res = scan_triggers(build_context(df, _contract()), opts)
    assert res is not None
    named = [tuple(res.matrix.names[c] for c in p.cols) for p in res.triggers]
    assert named == [("age", "status")]
    sus = res.suspects
    assert np.isin(truth, sus).mean() >= 0.95  # the camouflaged copies too
    assert np.isin(sus, truth).all()  # the three natural rows of age 95 stay out


def test_a_common_value_gets_no_late_copy_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # status 0 and -1 (60 % and 30 % of the rows) lean to label 0 against status 2: their
    # labels pass alone, and confirm nothing on a value that common (common_share); the copy
    # checks beyond the budget go to age=95 alone
    checked: list[int] = []
    twins = triggers._Scanner.twins

    def counted(self: triggers._Scanner, p: Pattern) -> None:
        checked.append(p.n)
        twins(self, p)

    monkeypatch.setattr(triggers._Scanner, "twins", counted)
    df, _ = _planted()
    opts = dataclasses.replace(OPTS, max_twin_checks=0)
    res = scan_triggers(build_context(df, _contract()), opts)
    assert res is not None and len(res.triggers) == 1
    assert checked and max(checked) <= OPTS.common_share * len(df)
