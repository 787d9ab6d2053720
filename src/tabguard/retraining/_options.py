"""Settings of ``tabguard retrain``: every threshold named, with its default and why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tabguard.checks._options import CheckOptions, Rule, at_least, interval, option

_DATA_CHECKS = ("integrity", "trigger_scan", "near_duplicates", "label_noise", "roni", "bias")


def _names(allowed: tuple[str, ...] | None = None) -> Rule:
    if allowed is None:
        return Rule("a tuple of check names", lambda v: all(isinstance(x, str) for x in v))
    return Rule(
        f"a tuple of names among {', '.join(allowed)}",
        lambda v: all(x in allowed for x in v),
    )


@dataclass(frozen=True)
class RetrainOptions(CheckOptions):
    """Options of :func:`~tabguard.retraining.retrain` (``tabguard retrain`` flags)."""

    check: ClassVar[str] = "retrain"

    holdout: float = option(
        0.2,
        "share of the matured ordinary requests, the most recent ones, kept out of training: "
        "the champion and the challenger are compared on them",
        interval(0.0, 0.5, "left"),
    )
    exploit_weight: float = option(
        20.0,
        "training weight of an exploit attempt (an ordinary row weighs 1): a few hundred "
        "labelled attempts must outweigh tens of thousands of rows in the region they probed, "
        "or the next model keeps the blind spot (benchmarks/retrain_loop.py: 1 of 30 attackers "
        "still won by probing after the retrain against 5 with weight 1, at 0.011 clean AUC)",
        interval(1.0, 1000.0),
    )
    data_checks: tuple[str, ...] = option(
        _DATA_CHECKS,
        "data-audit checks of the data gate: integrity and the poisoning checks, plus bias "
        "(labels that would teach the model to discriminate); descriptive statistics add "
        "minutes on large data and decide nothing",
        _names(),
    )
    quarantine_checks: tuple[str, ...] = option(
        ("trigger_scan", "near_duplicates", "label_noise", "roni"),
        "critical findings of these checks are resolved by quarantining their rows (a trigger "
        "planted through the loop is left out, the retrain goes on); a critical finding of "
        "another check blocks",
        _names(),
    )
    model_checks: tuple[str, ...] = option(
        ("unacceptable", "backdoor"),
        "model-audit checks of the model gate: the declared unacceptable cases and the backdoor "
        "probe (the checks that say a model must not go live); add fairness, gameability...",
        _names(
            (
                "performance",
                "importance",
                "unacceptable",
                "backdoor",
                "gameability",
                "extraction",
                "membership",
                "fairness",
            )
        ),
    )
    strict_model_audit: bool = option(
        False,
        "block on every critical model finding; by default a finding the champion has too is "
        "reported as inherited (blocking it would keep the champion, which has it as well)",
    )
    reference_rows: int = option(
        2000,
        "clean rows the model audit probes with (the holdout first, then base rows): enough for "
        "the backdoor probe's tests, a few seconds per model",
        at_least(50),
    )
    min_holdout: int = option(
        100,
        "holdout rows needed for the performance gate (fewer give intervals too wide to block on)",
        at_least(10),
    )
    n_bootstrap: int = option(
        200, "bootstrap resamples of the AUC intervals (as tabguard train)", at_least(0)
    )

    def validate(self) -> None:
        """Field rules, and the quarantine checks must be data checks that run."""
        super().validate()
        missing = [c for c in self.quarantine_checks if c not in self.data_checks]
        if missing:
            self.fail("quarantine_checks", f"must be among data_checks (not run: {missing})")
