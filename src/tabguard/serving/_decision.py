"""The decision layer (S4): score -> approve | deny | review, and delayed decisions.

The score is P(positive label). The contract's ``decision`` block says what a positive label
means (``positive_means: deny`` for a default or fraud model) and may declare a review band.
The threshold comes from the ``threshold`` flag when set, else from the model directory.

The review band is declared around the contract's threshold; when the flag moves the
threshold, the band moves with it (same offsets), so "tighten the threshold" keeps a manual
review zone just below the new cut.

Delayed decisions (seed 002: "inform them about the outcome after some hours"): the decision
is made at once and logged with ``available_at``; the client gets ``202`` and may read it with
``GET /v1/decisions/{id}`` from then on. :class:`DelayedDecisions` remembers this process's
pending decisions; other workers' decisions are read from the prediction log.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from tabguard.contract import DecisionSpec
    from tabguard.serving._log import PredictionLog

Decision = Literal["approve", "deny", "review"]


@dataclass(frozen=True)
class DecisionPolicy:
    """Turn a score into a decision.

    Parameters
    ----------
    default_threshold : float
        The model's threshold on P(positive label) (``model.json``), used when the
        ``threshold`` flag is unset.
    positive_means : {'deny', 'approve'}
        The decision a score at or above the threshold leads to.
    review_band : (float, float) or None
        ``[low, high)`` scores sent to manual review, declared around ``band_anchor``.
    band_anchor : float
        The threshold the band was declared around (the contract's ``decision.threshold``).

    Examples
    --------
    >>> p = DecisionPolicy(0.5, "deny", (0.4, 0.5), 0.5)
    >>> [p.decide(s) for s in (0.1, 0.45, 0.7)]
    ['approve', 'review', 'deny']
    >>> p.decide(0.3, threshold=0.35)   # a stricter threshold moves the band along
    'review'
    """

    default_threshold: float
    positive_means: Literal["deny", "approve"] = "deny"
    review_band: tuple[float, float] | None = None
    band_anchor: float = 0.5

    @classmethod
    def from_contract(cls, spec: DecisionSpec, model_threshold: float) -> DecisionPolicy:
        """Build the policy of a contract's ``decision`` block and a model's threshold."""
        return cls(
            default_threshold=float(model_threshold),
            positive_means=spec.positive_means,
            review_band=tuple(spec.review_band) if spec.review_band else None,  # type: ignore[arg-type]
            band_anchor=float(spec.threshold),
        )

    def threshold(self, flag: float | None) -> float:
        """The threshold in force: the flag when set, else the model's."""
        return self.default_threshold if flag is None else float(flag)

    def band(self, threshold: float) -> tuple[float, float] | None:
        """The review band for ``threshold`` (shifted with it, clipped to [0, 1])."""
        if self.review_band is None:
            return None
        shift = threshold - self.band_anchor
        lo, hi = self.review_band
        return max(0.0, lo + shift), min(1.0, hi + shift)

    def decide(self, score: float, threshold: float | None = None) -> Decision:
        """The decision for ``score`` under ``threshold`` (default: the model's)."""
        t = self.default_threshold if threshold is None else threshold
        band = self.band(t)
        if band is not None and band[0] <= score < band[1]:
            return "review"
        positive = score >= t
        if self.positive_means == "deny":
            return "deny" if positive else "approve"
        return "approve" if positive else "deny"


@dataclass(frozen=True)
class StoredDecision:
    """A decision a client may read back with ``GET /v1/decisions/{id}``."""

    decision_id: str
    client: str | None
    decision: str | None
    model_version: str | None
    score: float | None
    available_at: datetime | None


class DelayedDecisions:
    """This process's recent decisions, for ``GET /v1/decisions/{id}``; the log for the rest.

    Parameters
    ----------
    log : PredictionLog, optional
        Where decisions made by other workers (or before a restart) are looked up.
    max_size : int
        Decisions remembered in memory (least recent dropped; they stay in the log).
    """

    def __init__(self, log: PredictionLog | None = None, max_size: int = 100_000) -> None:
        self.log = log
        self.max_size = max_size
        self._items: OrderedDict[str, StoredDecision] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, item: StoredDecision) -> None:
        """Keep ``item`` for later reads."""
        with self._lock:
            self._items[item.decision_id] = item
            while len(self._items) > self.max_size:
                self._items.popitem(last=False)

    async def lookup(self, decision_id: str, client: str) -> StoredDecision | None:
        """Return the decision ``decision_id`` of ``client``; ``None`` if unknown or not theirs.

        A decision of another client is reported as unknown, so ids cannot be probed.

        Raises
        ------
        BackendUnavailableError
            When the decision is not in memory and the log database cannot be reached.
        """
        with self._lock:
            item = self._items.get(decision_id)
        if item is None and self.log is not None:
            record = await asyncio.to_thread(self.log.get, decision_id)
            if record is not None and record.status in ("accepted", "delayed"):
                item = StoredDecision(
                    decision_id=record.decision_id,
                    client=record.client,
                    decision=record.decision,
                    model_version=record.model_version,
                    score=record.score,
                    available_at=record.available_at,
                )
        if item is None or item.client != client or item.decision is None:
            return None
        return item

    @staticmethod
    def is_available(item: StoredDecision, now: datetime | None = None) -> bool:
        """Whether ``item`` may be released at ``now`` (default: the current time)."""
        if item.available_at is None:
            return True
        return (now or datetime.now(UTC)) >= item.available_at
