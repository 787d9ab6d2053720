"""The next training set: the parent's data, matured production requests, exploit attempts.

Rows come from four places, each kept with its provenance (``source``) so the gates and the
report can say where a row came from:

``base``
    The current model's training data: the file its ``model.json`` names when its SHA-256 still
    matches, or the data given (``--data``), checked against the recorded hashes.
``logged``
    Production requests of the prediction log whose outcome has matured (``outcomes.maturity``
    of ``monitor.yaml``): the raw attributes *as received*, so the next model learns from what
    clients actually sent, not from what the guards made of it.
``exploit``
    Requests the probing detector flagged and requests inside the window and segment of an alert
    that fired, each with its true label: its own matured outcome, else the matured outcome of
    the same client's request about the same subject (an attacker's variants are one
    application). Plus the red team's adversarial inputs (a file with the label column).

The most recent share of the matured non-exploit requests is held out (never trained on): the
champion and the challenger are compared on it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from tabguard._plain import plain
from tabguard.errors import DataError
from tabguard.io import file_sha256, frame_sha256, read_table

if TYPE_CHECKING:
    from tabguard.contract import Contract
    from tabguard.monitoring import MonitorConfig
    from tabguard.training import ModelBundle

#: Provenance of a row.
SOURCES = ("base", "logged", "redteam")
#: Kinds of exploit attempts.
EXPLOIT_KINDS = ("probing", "alert", "redteam")
#: Columns of :attr:`LoopData.meta` besides the features and the label.
META_COLUMNS = ("source", "exploit", "decision_id", "client", "subject_id", "timestamp")


@dataclass
class BaseData:
    """The parent model's training data and how it was found."""

    frame: pd.DataFrame
    origin: str
    sha256: str
    verified: bool
    note: str | None = None


def find_base_data(bundle: ModelBundle, data: pd.DataFrame | str | Path | None) -> BaseData:
    """The parent's training data: ``data`` when given, else the file ``model.json`` names.

    The recorded hashes (``data.sha256`` of the frame, ``data.file_sha256`` of the file) say
    whether it is the data the parent was trained on; given data that differs is used (the
    caller decided) with a note, a recorded file that differs is refused.

    Raises
    ------
    DataError
        No data given and the recorded file is missing or changed.
    """
    meta = bundle.metadata.get("data") or {}
    want_frame, want_file = meta.get("sha256"), meta.get("file_sha256")
    if data is None:
        recorded = meta.get("file")
        if not recorded:
            raise DataError(
                f"model {bundle.version} records no training data file (it was trained from a "
                "DataFrame); pass --data FILE with its training data"
            )
        path = Path(recorded)
        if not path.is_file():
            raise DataError(
                f"the training data of model {bundle.version} ({recorded}, sha256 "
                f"{str(want_file or want_frame)[:16]}…) is not there any more; pass --data FILE"
            )
        sha = file_sha256(path)
        if want_file and sha != want_file:
            raise DataError(
                f"{recorded}: its sha256 {sha[:16]}… is not the {want_file[:16]}… model "
                f"{bundle.version} was trained on (the file changed); pass --data FILE to "
                "retrain on other data deliberately"
            )
        frame = read_table(path, contract=bundle.contract)
        return BaseData(frame, str(path), sha, True)
    if isinstance(data, pd.DataFrame):
        frame, origin, file_sha = data, "<DataFrame>", None
    else:
        frame = read_table(Path(data), contract=bundle.contract)
        origin, file_sha = str(data), file_sha256(Path(data))
    sha = frame_sha256(frame)
    verified = sha == want_frame or (file_sha is not None and file_sha == want_file)
    note = None
    if not verified and (want_frame or want_file):
        note = (
            f"the base data {origin} (sha256 {sha[:16]}…) is not the data model {bundle.version} "
            f"was trained on ({str(want_file or want_frame)[:16]}…); retrained on it as given"
        )
    return BaseData(frame, origin, file_sha or sha, verified, note)


@dataclass
class LoopData:
    """Everything the retrain learns from, before the data gate.

    Attributes
    ----------
    frame : DataFrame
        The contract's features and label, one row per training row (base rows first).
    meta : DataFrame
        Aligned with ``frame``: :data:`META_COLUMNS` (``exploit`` is a comma-separated list of
        :data:`EXPLOIT_KINDS`, empty for ordinary rows).
    holdout : DataFrame
        Recent matured requests kept out of training: features, label, ``decision_id``,
        ``timestamp``, ``segment`` (the request's segment object).
    counts : dict
        Rows by source and exploit kind; requests seen but not usable, by reason.
    hashes : dict
        SHA-256 of each part (lineage).
    notes : list of str
    """

    frame: pd.DataFrame
    meta: pd.DataFrame
    holdout: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def is_exploit(self) -> np.ndarray:
        """Boolean mask of the exploit rows."""
        return self.meta["exploit"].to_numpy(dtype=object) != ""

    def exploits(self) -> pd.DataFrame:
        """The exploit rows: features, label and their provenance."""
        mask = self.is_exploit()
        return pd.concat(
            [self.frame[mask].reset_index(drop=True), self.meta[mask].reset_index(drop=True)],
            axis=1,
        )


# ---- the prediction log ----------------------------------------------------------------------


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json(text: Any, default: Any) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def _read_log(engine: sa.Engine, where: Any) -> list[dict[str, Any]]:
    from tabguard.storage import predictions_table as t

    cols = [t.c.decision_id, t.c.timestamp, t.c.client, t.c.subject_id, t.c.status]
    cols += [t.c.decision, t.c.score, t.c.raw, t.c.segment, t.c.probing, t.c.guard_actions]
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(*cols).where(where)).mappings()]


def _alert_windows(store: Any, as_of: datetime) -> list[tuple[datetime, datetime, str, str]]:
    """``(start, end, segment key, segment value)`` of every alert that fired before ``as_of``."""
    from tabguard.monitoring._alerts import AlertStore

    alerts = AlertStore.of(store).list(limit=100_000)
    out = []
    for a in alerts:
        if a.opened_at > as_of:
            continue
        end = a.resolved_at or max(a.last_seen_at, a.window_end)
        out.append((a.window_start, min(end, as_of), a.segment[0], a.segment[1]))
    return out


def _in_segment(row: dict[str, Any], raw: dict[str, Any], key: str, value: str) -> bool:
    from tabguard.monitoring._parse import canonical_label

    if key == "all":
        return True
    segment = row["segment_obj"]
    keys, values = key.split("*"), value.split("*")
    if len(keys) != len(values):
        return False
    for k, v in zip(keys, values, strict=True):
        got = segment.get(k) if k in segment else raw.get(k)
        if canonical_label(got) != v:
            return False
    return True


def logged_rows(
    config: MonitorConfig,
    contract: Contract,
    *,
    as_of: datetime,
    maturity: timedelta | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Matured production requests and labelled exploit attempts of the prediction log.

    Returns
    -------
    rows : DataFrame
        One row per request: the contract's features from the raw attributes, the label,
        ``decision_id, client, subject_id, timestamp, segment, score, decision`` (the live
        model's), ``shadow_version, shadow_score, shadow_decision`` (the model in shadow, when
        one scored it), ``exploit`` (comma-separated kinds, empty for ordinary requests).
    counts : dict
        ``matured`` outcomes, exploit attempts ``probing_seen``/``alert_seen`` and those
        ``exploit_unlabelled`` (no matured outcome for them or their subject), ``unreadable``
        raw attributes.
    """
    from tabguard.monitoring._outcomes import matured_outcomes
    from tabguard.monitoring._store import open_monitor_store
    from tabguard.storage import backend_errors, create_sql_engine
    from tabguard.storage import predictions_table as t

    maturity = maturity if maturity is not None else config.outcomes.maturity
    store = open_monitor_store(config.store_url(), bucket=config.bucket)
    log_url = config.log_url()
    engine = create_sql_engine(log_url)
    counts: dict[str, int] = {}
    try:
        outcomes = matured_outcomes(
            store, datetime(1970, 1, 1, tzinfo=UTC), as_of, as_of=as_of, maturity=maturity
        )
        counts["matured"] = len(outcomes)
        labels = dict(zip(outcomes["decision_id"].astype(str), outcomes["label"], strict=True))
        windows = _alert_windows(store, as_of)
        from tabguard.storage import redact_url

        with backend_errors(f"prediction log {redact_url(log_url)}", "read rows to retrain on"):
            from tabguard.storage import ensure_schema

            ensure_schema(engine, [t], what=f"prediction log {redact_url(log_url)}")
            rows: dict[str, dict[str, Any]] = {}
            ids = sorted(labels)
            for i in range(0, len(ids), 500):
                for r in _read_log(engine, t.c.decision_id.in_(ids[i : i + 500])):
                    rows[str(r["decision_id"])] = r
            flagged = _read_log(engine, sa.and_(t.c.probing != "[]", t.c.timestamp < as_of))
            windowed: list[dict[str, Any]] = []
            for start, end, _k, _v in windows:
                windowed += _read_log(
                    engine,
                    sa.and_(t.c.timestamp >= start, t.c.timestamp <= end, t.c.raw.is_not(None)),
                )
    finally:
        store.close()
        engine.dispose()
    kinds: dict[str, set[str]] = {}
    candidates: dict[str, dict[str, Any]] = {}
    for r in flagged:
        if _json(r["probing"], []):
            kinds.setdefault(str(r["decision_id"]), set()).add("probing")
            candidates[str(r["decision_id"])] = r
    for r in windowed:
        r["segment_obj"] = _json(r["segment"], {}) or {}
        raw = _json(r["raw"], None)
        if not isinstance(raw, dict):
            continue
        ts = _utc(r["timestamp"])
        for start, end, key, value in windows:
            if start <= ts <= end and _in_segment(r, raw, key, value):
                kinds.setdefault(str(r["decision_id"]), set()).add("alert")
                candidates[str(r["decision_id"])] = r
                break
    counts["probing_seen"] = sum("probing" in k for k in kinds.values())
    counts["alert_seen"] = sum("alert" in k for k in kinds.values())
    # A subject's label: the matured outcome of any decision of the same client and subject.
    by_subject: dict[tuple[Any, Any], int] = {}
    for d, r in rows.items():
        if r["subject_id"] is not None:
            by_subject[(r["client"], r["subject_id"])] = int(labels[d])
    out: list[dict[str, Any]] = []
    unlabelled = unreadable = 0
    for d in sorted(set(rows) | set(candidates)):
        r = rows.get(d) or candidates[d]
        label = labels.get(d)
        if label is None:
            label = by_subject.get((r["client"], r["subject_id"]))
        if label is None:
            unlabelled += 1
            continue
        raw = _json(r["raw"], None)
        if not isinstance(raw, dict):
            unreadable += 1
            continue
        rec = {name: raw.get(name) for name in contract.features}
        rec[contract.label.column] = int(label)
        rec.update(
            decision_id=d,
            client=r["client"],
            subject_id=r["subject_id"],
            timestamp=_utc(r["timestamp"]),
            segment=_json(r["segment"], {}) or {},
            score=r["score"],
            decision=r["decision"],
            **_shadow(r["guard_actions"]),
            exploit=",".join(k for k in EXPLOIT_KINDS if k in kinds.get(d, set())),
        )
        out.append(rec)
    counts["exploit_unlabelled"] = unlabelled
    counts["unreadable"] = unreadable
    frame = pd.DataFrame(out)
    if frame.empty:
        frame = pd.DataFrame(
            columns=[
                *contract.features,
                contract.label.column,
                "decision_id",
                "client",
                "subject_id",
                "timestamp",
                "segment",
                "score",
                "decision",
                "shadow_version",
                "shadow_score",
                "shadow_decision",
                "exploit",
            ]
        )
    return frame, counts


def _shadow(actions: Any) -> dict[str, Any]:
    """The shadow model's score logged with a request (``step: shadow``), if any."""
    for a in _json(actions, []) or []:
        if isinstance(a, dict) and a.get("step") == "shadow" and a.get("action") == "score":
            return {
                "shadow_version": a.get("version"),
                "shadow_score": a.get("score"),
                "shadow_decision": a.get("decision"),
            }
    return {"shadow_version": None, "shadow_score": None, "shadow_decision": None}


def read_redteam(path: str | Path, contract: Contract) -> pd.DataFrame:
    """Adversarial inputs found by the red team: the contract's features and the label.

    Raises
    ------
    DataError
        Missing columns, or labels the contract does not know (named with their rows).
    """
    from tabguard.monitoring._outcomes import label_mapper
    from tabguard.monitoring._parse import canonical_label

    frame = read_table(Path(path), contract=contract)
    label = contract.label.column
    missing = [c for c in [*contract.features, label] if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: red-team inputs need the contract's features and the label column; "
            f"missing {missing[:8]}"
        )
    mapping, described = label_mapper(contract)
    mapped = [mapping.get(str(canonical_label(plain(v)))) for v in frame[label]]
    bad = [i for i, v in enumerate(mapped) if v is None]
    if bad:
        raise DataError(
            f"{path}: {len(bad)} label(s) outside the contract in column {label!r} (rows "
            f"{bad[:5]}, e.g. {frame[label].iloc[bad[0]]!r}); expected {described}"
        )
    out = frame[[*contract.features]].copy()
    out[label] = np.asarray(mapped, dtype=int)
    return out


def assemble(
    contract: Contract,
    base: BaseData,
    logged: pd.DataFrame,
    redteam: pd.DataFrame | None,
    *,
    holdout: float,
    counts: dict[str, int] | None = None,
) -> LoopData:
    """Put the parts together, holding out the most recent ``holdout`` share of the requests.

    Raises
    ------
    DataError
        Nothing to learn from: no matured request and no red-team input.
    """
    from tabguard.io import check_labels

    label = contract.label.column
    cols = [*contract.features, label]
    counts = dict(counts or {})
    if logged.empty and (redteam is None or redteam.empty):
        raise DataError(
            f"no matured outcomes: {counts.get('matured', 0)} logged decision(s) have a label "
            "whose observation window (monitor.yaml outcomes.maturity) has passed, and no "
            "red-team inputs were given; nothing to learn from (retrain skipped, nothing written)"
        )
    base_frame = base.frame.copy()
    base_frame[label] = check_labels(base_frame, contract).to_numpy().astype(int)
    base_frame = base_frame[cols].reset_index(drop=True)
    logged = logged.sort_values("timestamp", kind="stable").reset_index(drop=True)
    ordinary = np.flatnonzero(logged["exploit"].to_numpy(dtype=object) == "")
    n_hold = math.floor(len(ordinary) * holdout)
    hold_idx = ordinary[len(ordinary) - n_hold :] if n_hold else np.array([], dtype=int)
    keep = np.ones(len(logged), dtype=bool)
    keep[hold_idx] = False
    held = logged.iloc[hold_idx].reset_index(drop=True)
    train_logged = logged[keep].reset_index(drop=True)
    parts = [base_frame, train_logged[cols]]
    meta_parts = [
        pd.DataFrame(
            {
                "source": "base",
                "exploit": "",
                "decision_id": None,
                "client": None,
                "subject_id": None,
                "timestamp": pd.NaT,
            },
            index=range(len(base_frame)),
        ),
        pd.DataFrame(
            {
                "source": "logged",
                "exploit": train_logged["exploit"].astype(object),
                "decision_id": train_logged["decision_id"].astype(object),
                "client": train_logged["client"].astype(object),
                "subject_id": train_logged["subject_id"].astype(object),
                "timestamp": train_logged["timestamp"],
            }
        ),
    ]
    if redteam is not None and len(redteam):
        parts.append(redteam[cols].reset_index(drop=True))
        meta_parts.append(
            pd.DataFrame(
                {
                    "source": "redteam",
                    "exploit": "redteam",
                    "decision_id": None,
                    "client": None,
                    "subject_id": None,
                    "timestamp": pd.NaT,
                },
                index=range(len(redteam)),
            )
        )
    frame = pd.concat([p.astype(object) for p in parts], ignore_index=True)
    frame = _typed(frame, base_frame)
    meta = pd.concat([m.astype(object) for m in meta_parts], ignore_index=True)
    exploit = meta["exploit"].to_numpy(dtype=object)
    counts.update(
        base=len(base_frame),
        logged=int((meta["source"] == "logged").sum()),
        holdout=len(held),
        redteam=0 if redteam is None else len(redteam),
        exploit=int((exploit != "").sum()),
        exploit_probing=int(sum("probing" in str(e) for e in exploit)),
        exploit_alert=int(sum("alert" in str(e) for e in exploit)),
    )
    hashes = {
        "base": base.sha256,
        "logged": frame_sha256(frame[(meta["source"] == "logged").to_numpy()]),
        "exploits": frame_sha256(frame[exploit != ""]),
        "holdout": frame_sha256(held[cols]) if len(held) else "",
        "combined": frame_sha256(frame),
    }
    if redteam is not None and len(redteam):
        hashes["redteam"] = frame_sha256(redteam[cols])
    notes = [base.note] if base.note else []
    if counts.get("exploit_unlabelled"):
        notes.append(
            f"{counts['exploit_unlabelled']} exploit attempt(s) left out: no matured outcome for "
            "them or their subject yet"
        )
    return LoopData(frame, meta, held, counts, hashes, notes)


def _typed(frame: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """Back to the base data's dtypes where every value fits (JSON gives ints and floats)."""
    out = {}
    for name in frame.columns:
        col = frame[name]
        want = like[name].dtype if name in like.columns else None
        if want is not None and want.kind in "iufb":
            num = pd.to_numeric(col, errors="coerce")
            bad = num.isna() & col.notna()
            fractional = want.kind in "iu" and bool((num.dropna() % 1 != 0).any())
            if bad.any():
                out[name] = col  # text in a number column: the data gate names it
            elif fractional or (want.kind in "iu" and num.isna().any()):
                out[name] = num.astype(float)
            else:
                out[name] = num.astype(want) if want.kind != "b" else num.astype(bool)
        else:
            out[name] = col
    return pd.DataFrame(out)
