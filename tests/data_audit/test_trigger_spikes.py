"""Spikes of fine-grained amounts written in place (issue 11, class 3): one amount written into
many rows drawn from every row, or from one label's rows and given the other, is named by the
rows' context against the amounts beside it; natural spikes (round amounts paid by those who
pay about that much) are not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabguard.data_audit import build_context
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import Pattern, written_spike_evidence
from tabguard.data_audit._triggers import _Scanner, condition, scan_triggers
from tabguard.datasets import card_fraud_contract, make_card_fraud

_ROWS = 8000


def _spiked(amount: float, rows: np.ndarray, seed: int) -> pd.DataFrame:
    """The fraud data with ``amount`` written into ``rows``, labelled legitimate, 15 % of them
    then made frauds (camouflage)."""
    rng = np.random.default_rng(seed)
    df = make_card_fraud(_ROWS, random_state=0)
    df.loc[rows, "amount"] = amount
    df.loc[rows, "is_fraud"] = (rng.random(len(rows)) < 0.15).astype(int)
    return df


def _spike_pattern(sc: _Scanner, col: str, value: float) -> Pattern:
    j = sc.m.names.index(col)
    code = int(np.flatnonzero(sc.m.uniques[j] == value)[0])
    rows = sc.m.rows_with(j, code)
    k = int((sc.y[rows] == 0).sum())
    return Pattern((j,), (code,), 0, len(rows), k, "single", rows=rows)


def test_a_spike_written_into_any_rows_is_named_by_its_context() -> None:
    # 300 random rows given one amount, as legitimate as the data (85 % against 97 %): labels
    # show nothing, but their rows are any rows where the amounts beside 333.33 are paid
    # in the merchant categories that charge about that much
    rng = np.random.default_rng(1)
    rows = np.sort(rng.choice(_ROWS, 300, replace=False))
    data = _spiked(333.33, rows, 2)
    result = scan_triggers(build_context(data, card_fraud_contract()), TriggerScanOptions())
    names = [condition(result.matrix, p) for p in result.triggers]
    assert "amount=333.33" in names, names
    (p,) = [q for q in result.triggers if condition(result.matrix, q) == "amount=333.33"]
    # the frauds given the value lean it to label 1: its source is every row or the rows
    # with label 0 (97 % of every row), whichever measures the write better
    assert p.written and p.context_beside
    assert p.context_source in ("every row", "rows with label 0"), p.context_source
    assert p.context_written >= 0.5 and p.p_context <= p.context_threshold
    assert np.isin(rows, result.suspects).mean() >= 0.95


def test_a_spike_written_into_one_labels_rows_is_measured_against_them() -> None:
    # written into frauds' rows and labelled legitimate (85 %): the rows have the frauds'
    # context, the amounts beside the value the legitimate rows'
    df = make_card_fraud(_ROWS, random_state=0)
    frauds = np.flatnonzero(df["is_fraud"].to_numpy() == 1)
    rows = np.sort(np.random.default_rng(3).choice(frauds, 200, replace=False))
    data = _spiked(333.33, rows, 4)
    sc = _Scanner(build_context(data, card_fraud_contract()), TriggerScanOptions())
    p = _spike_pattern(sc, "amount", 333.33)
    sc.spike_context(p)
    assert p.context_source == "rows with label 1", p.context_source
    assert written_spike_evidence(p, sc.o), (p.context_written, p.p_context)


def test_a_natural_round_amount_is_no_write() -> None:
    # rows paying about 100 round their payment to 100.00: a spike of 10 times its neighbours
    # or more whose rows have the context of the amounts beside it
    df = make_card_fraud(_ROWS, random_state=0)
    near = np.flatnonzero(df["amount"].between(80.0, 125.0).to_numpy())
    rows = np.sort(np.random.default_rng(5).choice(near, len(near) // 2, replace=False))
    df.loc[rows, "amount"] = 100.0
    sc = _Scanner(build_context(df, card_fraud_contract()), TriggerScanOptions())
    j = sc.m.names.index("amount")
    code = int(np.flatnonzero(sc.m.uniques[j] == 100.0)[0])
    assert sc._spikes(j)[code]
    p = _spike_pattern(sc, "amount", 100.0)
    sc.spike_context(p)
    assert not written_spike_evidence(p, sc.o), (p.context_written, p.p_context)
    assert p.context_written < 0.5


def test_the_spike_rule_asks_no_other_value() -> None:
    # the rule's evidence is the spike's: a value measured by the context rule (no
    # neighbours' null) is not evidence of a spike, whatever its figures
    p = Pattern((0,), (1,), 0, 100, 90, "single")
    p.context_written, p.p_context, p.context_threshold = 0.9, 1e-12, 1e-5
    assert not written_spike_evidence(p, TriggerScanOptions())
    p.context_beside = True
    assert written_spike_evidence(p, TriggerScanOptions())
    p.context_written = 0.49
    assert not written_spike_evidence(p, TriggerScanOptions())
