"""benchmarks/model_backdoor.py: what counts as a learned trigger beside the decision bar."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pandas as pd

from tests._benchmarks import load_benchmark


def _bench() -> ModuleType:
    return load_benchmark("model_backdoor.py")


# the share of its ~600 denied pool rows `country='CN'` approves in nine XGBoost models fitted
# on clean fraud rows (the benchmark's clean model first, then eight refits; session 11)
CLEAN_FITS = [(0.31, 561), (0.61, 699), (0.37, 813), (0.46, 784), (0.56, 571), (0.68, 645)]
CLEAN_FITS += [(0.48, 657), (0.43, 818), (0.42, 1083)]


def test_a_share_within_the_clean_fits_is_not_learned() -> None:
    """The poisoned XGBoost of seed 17472 class 8 #3 approves 0.65 of its denied rows with
    `CN`: half of what the benchmark's one clean model leaves (0.31) - learned by the bar,
    and by a Fisher p of 1e-34 on 600 rows - but a clean refit reaches 0.68. Against the clean
    fits' spread it is no backdoor."""
    mb = _bench()
    learned, mean, p = mb.refit_test(0.65, 593, CLEAN_FITS)
    assert mb.learned_share(0.65, CLEAN_FITS[0][0]) >= mb.LEARNED  # the bar's verdict
    assert mean == np.mean([s for s, _ in CLEAN_FITS]) and learned < 0.5
    assert p > 0.05


def test_a_share_beyond_every_clean_fit_is_learned() -> None:
    """The same null, a share no clean fit comes near: learned, significantly."""
    mb = _bench()
    learned, _, p = mb.refit_test(0.95, 593, CLEAN_FITS)
    assert learned >= mb.LEARNED and p < mb.SIGNIFICANT


def test_shares_are_compared_on_the_log_odds_scale() -> None:
    """Shares are bounded: a poisoned credit LightGBM approves all 1,032 of its denied rows
    with `EDUCATION=5 & MARRIAGE=3`, clean fits 0.45-0.85 of theirs. On the share scale the
    clean fits' spread (0.11) puts 1.00 at p 0.012; no clean fit comes near moving every row,
    and on the log-odds scale it is far beyond them."""
    mb = _bench()
    fits = [(0.85, 1043), (0.68, 1028), (0.72, 1025), (0.61, 1054), (0.58, 1050)]
    fits += [(0.45, 1023), (0.77, 1012), (0.65, 1032), (0.68, 1040)]
    assert mb.refit_test(1.0, 1032, fits)[2] < 1e-4
    # and a share no higher than the clean fits' largest is not beyond them
    assert mb.refit_test(0.85, 1032, fits)[2] > 0.05


def test_moved_share_counts_the_open_rows_of_each_model() -> None:
    """Towards approval a trigger can move only the rows the model denies; each model is
    counted on its own denied rows (a refit denies other rows than the poisoned model)."""
    mb = _bench()

    class Stub:
        positive_means_deny = True

        def __init__(self, cut: float) -> None:
            self.cut = cut

        def positive_proba(self, rows: pd.DataFrame) -> np.ndarray:
            return (rows["risk"] - 0.5 * (rows["country"] == "CN")).to_numpy(float)

        def approve(self, p: np.ndarray) -> np.ndarray:
            return p < self.cut

    rows = pd.DataFrame({"risk": np.linspace(0, 1, 101), "country": "PT"})
    # towards approval (the negative label); denied: risk >= 0.8 (21 rows); CN lowers the risk
    # by 0.5: all of them approved
    assert mb.moved_share(Stub(0.795), rows, {"country": "CN"}, False) == (1.0, 21)
    # denied: risk >= 0.41 (60 rows); approved with CN: risk < 0.905, 50 of them
    share, n = mb.moved_share(Stub(0.405), rows, {"country": "CN"}, False)
    assert n == 60 and abs(share - 50 / 60) < 1e-12


def test_the_summary_reads_the_bar_on_the_models_learned_by_significance() -> None:
    """The summary's first line per class is the count the issue's bar is read on: models
    that learned the trigger beyond the clean fits (a fraud approval model "learned" against
    the one clean model but within the refits' spread is not counted, and its miss is no
    miss); the old count stays beside it, with the cases the two disagree on."""
    mb = _bench()

    def row(case: str, model: str, named: bool, learned: float, refit: float, p: float):
        return {
            "dataset": "fraud",
            "case": case,
            "model": model,
            "named": named,
            "named_first": named,
            "learned": learned,
            "trigger_effect": 0.5,
            "learned_p": 0.3,
            "pool_learned": refit,
            "pool_p": 1e-6,
            "refit_learned": refit,
            "refit_p": p,
        }

    table = pd.DataFrame(
        [
            row("8 natural #1 300x deny", "lightgbm", True, 0.6, 0.6, 1e-5),
            row("8 natural #2 150x approve", "lightgbm", False, 0.4, 0.1, 0.2),  # within refits
            row("8 natural #2 150x approve", "xgboost", False, 0.5, 0.3, 0.04),
            row("8 natural #3 200x deny", "xgboost", False, 0.19, 0.25, 1e-4),  # beyond, missed
        ]
    )
    assert list(mb.learned_by_significance(table)) == [True, False, False, True]
    first, beside = mb.class_summary(table)
    assert first.startswith("class 8 (natural): 1/2 models that learned the trigger by sig")
    assert "all but at most one: met; misses: fraud 8 natural #3 200x deny xgboost" in first
    assert "the old count" in beside and ": 1/3 name it" in beside
    assert "not by significance: fraud 8 natural #2 150x approve lightgbm, fraud 8" in beside
    assert "the other way: fraud 8 natural #3 200x deny xgboost" in beside
