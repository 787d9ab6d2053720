"""Which rows of a value written in place into rows of its label (issue 11, class 3,
clean-label) are quarantined: the natural carriers the label's probability sets apart stay out
(:meth:`_Scanner.natural_region_rows`, :meth:`_Scanner._label_regions`)."""

from __future__ import annotations

import numpy as np

from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import written_outlier_evidence

from .test_trigger_outliers import _cards, _clean_label, _scanned


def test_natural_carriers_of_a_clean_label_write_stay_out_by_the_labels_probability() -> None:
    """``GB`` written into 60 frauds' rows (15 % relabelled legitimate) beside about 570
    natural ``GB`` rows, 472 of them legitimate. Half of the written rows were made at home
    and stand apart; the other half were made abroad, as natural ``GB`` rows are, and only
    their fraud probability tells the camouflaged ones from natural legitimate rows. Judged
    under the source the outliers rule measured (the frauds' rows) and with that probability
    (cross-fitted), a share of the natural legitimate rows stays out, and 95 % of the
    written rows stay suspect (on the carrier score alone, under every source: 21 %, recall
    0.967). The written rows' budget is three rows, held row by row
    (:func:`loss_within_budget`): 19 % stay out, every written row suspect (at the budget's
    expectation 37 %, one written row lost)."""
    df, truth = _clean_label(_cards(6000, 0), 60, 0.15, 1)
    sc, p = _scanned(df, "GB", 1)
    rows = sc.m.rows_with(p.cols[0], p.codes[0])
    assert written_outlier_evidence(p, TriggerScanOptions())
    p.flagged = p.written = True
    suspects = sc.suspect_rows(p)
    natural = np.setdiff1d(rows, truth)
    natural0 = natural[sc.y[natural] == 0]
    assert np.isin(truth, suspects).mean() >= 0.95
    assert 1 - np.isin(natural0, suspects).mean() >= 0.15, len(suspects)
