"""Unauthenticated refusals, logged as a bounded summary instead of one record each.

A flood of requests without a valid key (401, and the 429 ``auth_throttled`` of the
failed-authentication limit) would otherwise store every attacker's body: 8 KiB a request,
gigabytes an hour. Each such refusal is counted instead, per **source address, minute and
log status**; when the minute is over, one prediction-log record per group says how many
requests it stands for and keeps a few sample bodies:

- ``status``: ``unauthorized`` or ``rate_limited`` (as a single record would have);
- ``guard_actions``: ``[{"step": "authenticate", "action": "reject", "requests": N,
  "reasons": {"invalid_key": n1, "missing_key": n2, ...}}]`` — ``requests`` is the weight
  the monitor counts the row with (``tabguard.monitoring``);
- ``raw``: ``{"_summary": {"source", "from", "to", "requests", "reasons", "key_ids",
  "samples": [first bodies, truncated]}}``;
- ``errors``: one entry per reason with its ``count``; ``latency_ms``: the mean.

Prometheus counters still count every request. Memory is bounded: at most ``max_groups``
open groups (sources beyond that in a minute share the group ``"(other)"``), a few samples
each. A crash loses the counts of the current minute (at most a minute of refusals, never an
answered decision).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tabguard.serving._record import PredictionRecord

if TYPE_CHECKING:
    from tabguard.flags import FlagSnapshot

#: Open (source, minute, status) groups kept at once.
MAX_GROUPS = 10_000
#: Key ids listed per group (the rest are counted).
_KEY_IDS_SHOWN = 10
_OTHER = "(other)"


@dataclass
class _Group:
    source: str
    minute: int
    status: str
    first: datetime
    last: datetime
    flags: FlagSnapshot
    requests: int = 0
    latency_ms: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)


class RefusalSummary:
    """Count unauthenticated refusals; emit one log record per source, minute and status.

    Parameters
    ----------
    emit : callable
        Receives each summary :class:`PredictionRecord` (the prediction log's ``append``).
    samples : int
        Bodies kept per group (``[log] refusal_samples``).
    sample_bytes : int
        Longest body kept (``[log] refusal_sample_bytes``).
    max_groups : int
        Open groups kept at once.
    """

    def __init__(
        self,
        emit: Callable[[PredictionRecord], None],
        *,
        samples: int = 3,
        sample_bytes: int = 1024,
        max_groups: int = MAX_GROUPS,
    ) -> None:
        self.emit = emit
        self.samples = samples
        self.sample_bytes = sample_bytes
        self.max_groups = max_groups
        self._groups: dict[tuple[str, int, str], _Group] = {}
        self._lock = threading.Lock()
        #: Requests counted so far, and summary records emitted (for tests and /health).
        self.counted = 0
        self.emitted = 0

    def add(
        self,
        *,
        source: str | None,
        at: datetime,
        status: str,
        reason: str,
        message: str,
        key_id: str | None,
        body: bytes,
        flags: FlagSnapshot,
        latency_ms: float,
    ) -> None:
        """Count one refused request (cheap: a few dictionary updates)."""
        minute = int(at.timestamp()) // 60
        name = source or "unknown"
        with self._lock:
            key = (name, minute, status)
            group = self._groups.get(key)
            if group is None:
                if len(self._groups) >= self.max_groups:
                    key = (_OTHER, minute, status)
                    group = self._groups.get(key)
                if group is None:
                    group = _Group(key[0], minute, status, at, at, flags)
                    self._groups[key] = group
            group.requests += 1
            group.last = at
            group.latency_ms += latency_ms
            group.reasons[reason] = group.reasons.get(reason, 0) + 1
            group.messages.setdefault(reason, message)
            if key_id is not None and (
                key_id in group.key_ids or len(group.key_ids) < _KEY_IDS_SHOWN
            ):
                group.key_ids[key_id] = group.key_ids.get(key_id, 0) + 1
            if len(group.samples) < self.samples:
                text = body[: self.sample_bytes].decode("utf-8", "replace")
                group.samples.append(text + ("…" if len(body) > self.sample_bytes else ""))
            self.counted += 1

    def flush(self, now: datetime | None = None, *, everything: bool = False) -> int:
        """Emit the groups whose minute is over (all with ``everything``); return how many."""
        minute = int((now or datetime.now(UTC)).timestamp()) // 60
        with self._lock:
            done = [k for k in self._groups if everything or k[1] < minute]
            groups = [self._groups.pop(k) for k in done]
        for group in sorted(groups, key=lambda g: (g.minute, g.source, g.status)):
            self.emit(summary_record(group))
            self.emitted += 1
        return len(groups)

    @property
    def pending(self) -> int:
        """Requests counted but not yet emitted."""
        with self._lock:
            return sum(g.requests for g in self._groups.values())


def summary_record(group: _Group) -> PredictionRecord:
    """The prediction-log record standing for one group of refusals."""
    summary: dict[str, Any] = {
        "source": group.source,
        "from": group.first.isoformat(),
        "to": group.last.isoformat(),
        "requests": group.requests,
        "reasons": dict(group.reasons),
        "key_ids": dict(group.key_ids),
        "samples": list(group.samples),
    }
    snap = group.flags
    return PredictionRecord.model_construct(
        decision_id=uuid.uuid4().hex,
        timestamp=group.first,
        client=None,
        subject_id=None,
        raw={"_summary": summary},
        features={},
        guard_actions=[
            {
                "step": "authenticate",
                "action": "reject",
                "requests": group.requests,
                "reasons": dict(group.reasons),
            }
        ],
        flags={**snap.flags.to_dict(), "version": snap.version},
        model_name=None,
        model_version=None,
        score=None,
        decision=None,
        status=group.status,  # type: ignore[arg-type]  # a log status of the grouped requests
        errors=[
            {"rule": reason, "message": group.messages.get(reason), "count": n}
            for reason, n in group.reasons.items()
        ],
        segment={},
        probing=[],
        latency_ms=group.latency_ms / max(group.requests, 1),
        available_at=None,
    )
