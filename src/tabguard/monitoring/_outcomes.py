"""Outcomes that arrive late (a default is known months after the loan) and performance by
window once they have matured.

``tabguard outcomes import FILE`` reads rows of ``decision_id`` or ``subject_id``, ``label``
and ``observed_at``, matches each to its logged decision and stores it with what the decision
was (time, score, decision, segments), so performance queries never read the log again.

* A ``subject_id`` is matched to the subject's latest decided request at or before
  ``observed_at``.
* Labels are read through the contract's label (``positive`` → 1, ``negative`` → 0; without a
  declared negative, the complement of a 0/1 or boolean positive); anything else is refused.
* Importing is idempotent: the same row again is ``already``; a different label for the same
  decision replaces the stored one only when observed later (``relabelled``).
* Unknown ids, labels outside the contract, unreadable times, times before the decision and
  duplicates inside the file are counted and named in the report, never a crash.

**Maturity**: a label counts once its observation window has passed — ``decided_at +
outcomes.maturity <= as_of`` — whatever its value (counting early defaults before the
repayments of the same cohort would inflate recent default rates).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from tabguard._plain import plain
from tabguard.errors import DataError
from tabguard.monitoring._aggregate import Admission, Aggregator, MonitorPlan
from tabguard.monitoring._clock import Clock, SystemClock
from tabguard.monitoring._config import MonitorConfig
from tabguard.monitoring._delta import Segment
from tabguard.monitoring._parse import canonical_label
from tabguard.monitoring._store import SqlMonitorStore, open_monitor_store
from tabguard.monitoring._update import LogReader, load_plan
from tabguard.monitoring._window import from_epoch
from tabguard.storage import backend_errors
from tabguard.storage._schema import monitor_outcomes_table

#: Accepted spellings of the file's columns.
ID_COLUMNS = ("decision_id", "subject_id")
LABEL_COLUMN = "label"
TIME_COLUMN = "observed_at"
_EXAMPLES = 5


@dataclass
class ImportReport:
    """What an import did, row by row.

    Attributes
    ----------
    rows : int
        Rows in the file.
    imported, already, relabelled : int
        New labels; labels already stored as given; stored labels replaced by a later
        observation.
    unknown, invalid_label, invalid_time, duplicates, stale : int
        Rows refused: no logged decision with that id (or no decided request of that subject
        before ``observed_at``); a label the contract does not know; an unreadable
        ``observed_at`` or one before the decision; the same decision twice in the file (the
        last row wins); a different label observed earlier than the stored one.
    examples : dict
        Up to five ids per refusal reason.
    """

    rows: int = 0
    imported: int = 0
    already: int = 0
    relabelled: int = 0
    unknown: int = 0
    invalid_label: int = 0
    invalid_time: int = 0
    duplicates: int = 0
    stale: int = 0
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def refused(self) -> int:
        """Rows not stored."""
        return self.unknown + self.invalid_label + self.invalid_time + self.duplicates + self.stale

    def note(self, reason: str, ident: Any) -> None:
        """Count a refused row and keep its id as an example."""
        setattr(self, reason, getattr(self, reason) + 1)
        if len(self.examples[reason]) < _EXAMPLES:
            self.examples[reason].append(str(ident))


def label_mapper(contract: Any) -> tuple[dict[str, int], str]:
    """``{canonical label text: 0/1}`` for a contract (0/1 without one) and its description."""
    if contract is None:
        return {"1": 1, "0": 0, "true": 1, "false": 0}, "1 (positive) or 0"
    spec = contract.label
    pos = canonical_label(spec.positive)
    mapping = {str(pos): 1}
    if spec.negative is not None:
        mapping[str(canonical_label(spec.negative))] = 0
    elif pos in ("1", "true"):
        mapping.update({"0": 0, "false": 0} if pos == "1" else {"false": 0, "0": 0})
    allowed = " or ".join(repr(k) for k in mapping)
    return mapping, f"{allowed} (label {spec.column}, positive {spec.positive!r})"


def read_outcomes(path: str | Path) -> pd.DataFrame:
    """Read an outcomes file (CSV or Parquet) and check its columns.

    Raises
    ------
    DataError
        Missing file, or no ``decision_id``/``subject_id``, ``label`` or ``observed_at``.
    """
    from tabguard.io import read_table

    frame = read_table(path, dtype={"decision_id": str, "subject_id": str})
    missing = [c for c in (LABEL_COLUMN, TIME_COLUMN) if c not in frame.columns]
    if not any(c in frame.columns for c in ID_COLUMNS):
        missing.insert(0, "decision_id or subject_id")
    if missing:
        raise DataError(
            f"{path}: outcomes need the columns {', '.join(missing)}; found "
            f"{', '.join(map(str, frame.columns)) or 'none'}"
        )
    return frame


def _times(values: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    return parsed


def import_outcomes(
    frame: pd.DataFrame,
    config: MonitorConfig,
    *,
    store: SqlMonitorStore | None = None,
    reader: LogReader | None = None,
    plan: MonitorPlan | None = None,
    contract: Any = None,
    clock: Clock | None = None,
    source: str | None = None,
) -> ImportReport:
    """Match outcome rows to their decisions and store them.

    Parameters
    ----------
    frame : DataFrame
        ``decision_id`` (or ``subject_id``), ``label``, ``observed_at``.
    config : MonitorConfig
    store, reader, plan : optional
        Default: the configured store, log and model.
    contract : Contract, optional
        Label values; default the model's contract (0/1 without a model).
    clock : Clock, optional
        Import time (default the system clock).
    source : str, optional
        Kept with each row (e.g. the file name).
    """
    clock = clock or SystemClock()
    report = ImportReport(rows=len(frame))
    own_store, own_reader = store is None, reader is None
    store = store or open_monitor_store(config.store_url(), bucket=config.bucket)
    reader = reader or LogReader(config.log_url())
    try:
        plan = plan or load_plan(config)
        if contract is None and config.model is not None:
            from tabguard.contract import load_contract

            contract = load_contract(Path(config.model) / "contract.yaml")
        mapping, _ = label_mapper(contract)
        rows = _matched(frame, reader, mapping, report)
        if not rows:
            return report
        segments = _segments(list(rows), reader, plan, config, store)
        _store_rows(store, rows, segments, report, clock.now(), source)
        return report
    finally:
        if own_reader:
            reader.close()
        if own_store:
            store.close()


def _matched(
    frame: pd.DataFrame, reader: LogReader, mapping: dict[str, int], report: ImportReport
) -> dict[str, dict[str, Any]]:
    """``decision_id -> {label, observed_at, subject_id}`` of the usable rows."""
    observed = _times(frame[TIME_COLUMN])
    labels = [mapping.get(str(canonical_label(plain(v)))) for v in frame[LABEL_COLUMN]]
    by_id = "decision_id" in frame.columns
    ids = frame["decision_id" if by_id else "subject_id"].astype(object)
    candidates: list[tuple[str, int, datetime]] = []
    for ident, label, when in zip(ids, labels, observed, strict=True):
        if ident is None or (isinstance(ident, float) and math.isnan(ident)) or ident == "":
            report.note("unknown", ident)
        elif label is None:
            report.note("invalid_label", ident)
        elif pd.isna(when):
            report.note("invalid_time", ident)
        else:
            candidates.append((str(ident), int(label), when.to_pydatetime()))
    decided: dict[str, tuple[str, int]] = {}
    if by_id:
        found = reader.read_ids(sorted({c[0] for c in candidates}))
        decided = {
            str(d): (str(d), int(e))
            for d, e, dec in zip(
                found["decision_id"], found["epoch"], found["decision"], strict=True
            )
            if dec is not None
        }
        pairs = [(ident, decided.get(ident), label, when) for ident, label, when in candidates]
    else:
        history: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for subject, logged_id, logged_epoch in reader.decisions_of_subjects(
            sorted({c[0] for c in candidates})
        ):
            history[subject].append((logged_epoch, logged_id))
        pairs = []
        for subject, label, when in candidates:
            before = [h for h in history.get(subject, []) if h[0] <= when.timestamp()]
            latest = max(before) if before else None
            pairs.append((subject, (latest[1], latest[0]) if latest else None, label, when))
    out: dict[str, dict[str, Any]] = {}
    for ident, target, label, when in pairs:
        if target is None:
            report.note("unknown", ident)
            continue
        decision_id, decided_epoch = target
        if when.timestamp() < decided_epoch:
            report.note("invalid_time", ident)
            continue
        if decision_id in out:
            report.note("duplicates", ident)
        out[decision_id] = {"label": label, "observed_at": when, "ident": ident}
    return out


def _segments(
    ids: list[str],
    reader: LogReader,
    plan: MonitorPlan,
    config: MonitorConfig,
    store: SqlMonitorStore,
) -> dict[str, tuple[int, float | None, str | None, str | None, list[list[str]]]]:
    """Per decision: time, score, decision, subject and the segments its buckets use."""
    batch = reader.read_ids(ids)
    admission = Admission.load(
        store.admitted_segments(),
        {},
        config.aggregation,
        preset={**plan.preset_values(), **config.aggregation.segments.values},
    )
    admission.frozen = True
    segs = Aggregator(plan, config.aggregation, admission).segments_of(batch)
    out: dict[str, tuple[int, float | None, str | None, str | None, list[list[str]]]] = {}
    for i, decision_id in enumerate(batch["decision_id"]):
        pairs = [[key, str(values[i])] for key, values in segs]
        score = batch["score"][i]
        out[str(decision_id)] = (
            int(batch["epoch"][i]),
            None if np.isnan(score) else float(score),
            None if batch["decision"][i] is None else str(batch["decision"][i]),
            None,
            pairs,
        )
    return out


def _store_rows(
    store: SqlMonitorStore,
    rows: dict[str, dict[str, Any]],
    segments: dict[str, tuple[int, float | None, str | None, str | None, list[list[str]]]],
    report: ImportReport,
    now: datetime,
    source: str | None,
) -> None:
    t = monitor_outcomes_table
    with backend_errors(store.what, "store outcomes"), store.transaction() as conn:
        existing: dict[str, tuple[int, datetime]] = {}
        ids = list(rows)
        for i in range(0, len(ids), 500):
            query = sa.select(t.c.decision_id, t.c.label, t.c.observed_at).where(
                t.c.decision_id.in_(ids[i : i + 500])
            )
            for d, label, observed in conn.execute(query):
                existing[str(d)] = (int(label), _utc(observed))
        for decision_id, row in rows.items():
            epoch, score, decision, _subject, pairs = segments[decision_id]
            old = existing.get(decision_id)
            values = {
                "label": row["label"],
                "observed_at": row["observed_at"],
                "imported_at": now,
                "source": (source or "")[:512] or None,
            }
            if old is None:
                conn.execute(
                    t.insert().values(
                        decision_id=decision_id,
                        subject_id=None,
                        decided_at=from_epoch(epoch),
                        score=score,
                        decision=decision,
                        segments=json.dumps(pairs),
                        **values,
                    )
                )
                report.imported += 1
            elif old[0] == row["label"]:
                report.already += 1
            elif row["observed_at"] > old[1]:
                conn.execute(t.update().where(t.c.decision_id == decision_id).values(**values))
                report.relabelled += 1
            else:
                report.note("stale", row["ident"])


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# ---- performance --------------------------------------------------------------------------


def matured_outcomes(
    store: SqlMonitorStore,
    start: datetime,
    end: datetime,
    *,
    as_of: datetime,
    maturity: timedelta,
    segment: Segment | None = None,
) -> pd.DataFrame:
    """Labelled decisions of ``[start, end)`` whose label has matured at ``as_of``.

    Returns
    -------
    DataFrame
        ``decision_id, label, observed_at, decided_at, score, decision, segments`` (one row per
        decision; ``segments`` is a list of ``[key, value]`` pairs).
    """
    t = monitor_outcomes_table
    cutoff = min(end, as_of - maturity)
    query = sa.select(
        t.c.decision_id,
        t.c.label,
        t.c.observed_at,
        t.c.decided_at,
        t.c.score,
        t.c.decision,
        t.c.segments,
    ).where(t.c.decided_at >= start, t.c.decided_at < cutoff, t.c.observed_at <= as_of)
    with backend_errors(store.what, "read outcomes"), store.engine.connect() as conn:
        rows = conn.execute(query).all() if cutoff > start else []
    df = pd.DataFrame(
        rows,
        columns=[
            "decision_id",
            "label",
            "observed_at",
            "decided_at",
            "score",
            "decision",
            "segments",
        ],
    )
    df["segments"] = [json.loads(s) for s in df["segments"]]
    if segment is not None:
        want = [str(segment[0]), str(segment[1])]
        df = df[[want in pairs or want == ["all", "all"] for pairs in df["segments"]]]
    return df.reset_index(drop=True)


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = int(labels.sum()), int(len(labels) - labels.sum())
    if pos == 0 or neg == 0:
        return math.nan
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    return float((ranks[labels == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _explode(df: pd.DataFrame) -> pd.DataFrame:
    keys, values, idx = [], [], []
    for i, pairs in enumerate(df["segments"]):
        for key, value in pairs:
            keys.append(key)
            values.append(value)
            idx.append(i)
    out = df.iloc[idx].reset_index(drop=True)
    out.insert(0, "segment_value", values)
    out.insert(0, "segment_key", keys)
    return out


def performance(
    store: SqlMonitorStore,
    start: datetime,
    end: datetime,
    *,
    as_of: datetime,
    maturity: timedelta,
    segment: Segment | None = None,
) -> pd.DataFrame:
    """Model performance on matured labels of decisions made in ``[start, end)``.

    Returns
    -------
    DataFrame
        ``segment_key, segment_value, n_labelled, positives, default_rate, auc, brier,
        mean_score`` (``auc`` NaN when one class is absent; ``default_rate`` is the share of
        positive labels).
    """
    df = _explode(matured_outcomes(store, start, end, as_of=as_of, maturity=maturity))
    if segment is not None:
        df = df[(df.segment_key == segment[0]) & (df.segment_value == segment[1])]
    records = []
    for (key, value), part in df.groupby(["segment_key", "segment_value"], sort=True):
        labels = part["label"].to_numpy(dtype=float)
        scored = part[part["score"].notna()]
        s = scored["score"].to_numpy(dtype=float)
        y = scored["label"].to_numpy(dtype=float)
        records.append(
            (
                key,
                value,
                len(part),
                int(labels.sum()),
                float(labels.mean()) if len(labels) else math.nan,
                _auc(s, y) if len(s) else math.nan,
                float(np.mean((s - y) ** 2)) if len(s) else math.nan,
                float(s.mean()) if len(s) else math.nan,
            )
        )
    return pd.DataFrame(
        records,
        columns=[
            "segment_key",
            "segment_value",
            "n_labelled",
            "positives",
            "default_rate",
            "auc",
            "brier",
            "mean_score",
        ],
    )


def performance_bands(
    store: SqlMonitorStore,
    start: datetime,
    end: datetime,
    *,
    as_of: datetime,
    maturity: timedelta,
    bands: int = 10,
    segment: Segment | None = None,
) -> pd.DataFrame:
    """Default rate and calibration by score band (equal-width bands of [0, 1]).

    Returns
    -------
    DataFrame
        ``segment_key, segment_value, band, low, high, n, positives, default_rate,
        mean_score`` (a calibrated model has ``default_rate`` close to ``mean_score``).
    """
    df = _explode(matured_outcomes(store, start, end, as_of=as_of, maturity=maturity))
    df = df[df["score"].notna()]
    if segment is not None:
        df = df[(df.segment_key == segment[0]) & (df.segment_value == segment[1])]
    band = np.minimum((df["score"].to_numpy(dtype=float) * bands).astype(int), bands - 1)
    df = df.assign(band=band)
    grouped = df.groupby(["segment_key", "segment_value", "band"], sort=True).agg(
        n=("label", "size"), positives=("label", "sum"), mean_score=("score", "mean")
    )
    out = grouped.reset_index()
    out["low"] = out["band"] / bands
    out["high"] = (out["band"] + 1) / bands
    out["default_rate"] = out["positives"] / out["n"]
    cols = ["segment_key", "segment_value", "band", "low", "high", "n", "positives"]
    return out[[*cols, "default_rate", "mean_score"]]


def describe(report: ImportReport, described_labels: str) -> list[str]:
    """One line per outcome of an import (for the CLI)."""
    lines = [
        f"{report.rows:,} rows: {report.imported:,} imported, {report.already:,} already "
        f"stored, {report.relabelled:,} relabelled, {report.refused:,} refused"
    ]
    reasons = {
        "unknown": "no logged decision for these ids",
        "invalid_label": f"label outside the contract (expected {described_labels})",
        "invalid_time": "observed_at unreadable or before the decision",
        "duplicates": "the same decision twice in the file (the last row was kept)",
        "stale": "a different label observed before the stored one (kept the stored one)",
    }
    for reason, text in reasons.items():
        n = getattr(report, reason)
        if n:
            examples = ", ".join(report.examples[reason])
            lines.append(f"  {n:,} {reason}: {text} (e.g. {examples})")
    return lines


__all__: Sequence[str] = (
    "ImportReport",
    "describe",
    "import_outcomes",
    "label_mapper",
    "matured_outcomes",
    "performance",
    "performance_bands",
    "read_outcomes",
)
