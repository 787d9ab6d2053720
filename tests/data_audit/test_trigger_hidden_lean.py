"""A value written in place hides its own lean from the values beside it (issue 11, class 3):
a value whose lean its written neighbour shared is not named on its labels alone
(:func:`~tabguard.data_audit._triggers._beside_written_values`)."""

from __future__ import annotations

import numpy as np

from tabguard.data_audit import build_context
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import Pattern, natural_lean
from tabguard.data_audit._triggers import condition, scan_triggers
from tabguard.datasets import credit_default_contract, load_credit_default
from tabguard.redteam import poison


def test_a_written_value_counts_as_leaning_with_the_values_of_the_other_label() -> None:
    """The rule: a scale neighbour written with the other label (``hidden``) leans with the
    value, whatever its labels show."""
    p = Pattern((0,), (5,), 0, 277, 262, "single", effect=0.66, expected_other=46.0)
    written = Pattern((0,), (4,), 0, 463, 153, "single", effect=-1.06, expected_other=150.0)
    assert not natural_lean(p, [written], TriggerScanOptions(), neighbours=(4, 6))
    assert natural_lean(
        p, [written], TriggerScanOptions(), neighbours=(4, 6), hidden=frozenset({4})
    )


def test_the_neighbour_of_a_written_education_code_is_not_named_on_its_labels() -> None:
    """Credit ``EDUCATION=4`` written into 340 defaulters' rows (11 % given no default), shown
    by the context of its rows. ``EDUCATION=5``, 277 natural rows leaning to no default (an
    effect of 0.62 on the clean data, withheld there as the feature's lean: its neighbour 4
    leans with it at 0.57), lost that neighbour to the write and was named as written on its
    labels alone at 0.66 with every one of its rows (the session's start: precision 0.46).
    The written rows stay suspect."""
    c = credit_default_contract()
    res = poison(
        load_credit_default(),
        c,
        {"EDUCATION": 4},
        n_rows=340,
        target=1,
        source="target",
        mode="replace",
        jitter=0.01,
        shuffle=True,
        random_state=1137029434,
    )
    df, written = res.data, res.poisoned_rows
    rng = np.random.default_rng(0)
    df.loc[rng.choice(written, 37, replace=False), "DEFAULT"] = 0
    result = scan_triggers(build_context(df, c), TriggerScanOptions())
    assert result is not None
    named = [condition(result.matrix, p) for p in result.triggers]
    assert named == ["EDUCATION=4"], named
    assert np.isin(written, result.suspects).mean() >= 0.95
    assert len(result.suspects) <= 500  # the written rows and the value's 123 natural ones
