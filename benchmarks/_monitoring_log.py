"""A synthetic prediction log for the monitoring benchmark (rows as the service writes them).

The bundled credit data resampled with noise: 23 raw attributes as received, 22 guarded model
features (clipped AGE, SEX left out), a request segment (three channels of very different
sizes), refused requests (AGE=999), clipping actions, probing signals, scores, decisions and
latencies, over ``days`` days with a daily cycle.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from tabguard.datasets import load_credit_default
from tabguard.monitoring._numbers import NumberLayout
from tabguard.storage import create_sql_engine, ensure_schema, predictions_table
from tabguard.storage._schema import NUMBERS

T0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
CHANNELS = np.array(["online", "branch", "partner"], dtype=object)
GAMEABLE = ("AGE", "PAY_AMT1", "PAY_AMT2", "PAY_AMT3", "PAY_AMT4", "PAY_AMT5", "PAY_AMT6")


def frame(rows: int, days: int = 35, seed: int = 0) -> pd.DataFrame:
    """``rows`` resampled applications with request times over ``days`` days (sorted)."""
    rng = np.random.default_rng(seed)
    base = load_credit_default().drop(columns=["ID", "DEFAULT"], errors="ignore")
    df = base.iloc[rng.integers(0, len(base), rows)].reset_index(drop=True)
    for col in ("LIMIT_BAL", *(f"BILL_AMT{i}" for i in range(1, 7))):
        df[col] = np.round(df[col] * rng.normal(1.0, 0.05, rows))
    # Request times with a daily cycle: more traffic by day than by night.
    hours = rng.choice(24, size=rows, p=_daily_profile())
    day = rng.integers(0, days, size=rows)
    seconds = day * 86400 + hours * 3600 + rng.integers(0, 3600, size=rows)
    df["_epoch"] = int(T0.timestamp()) + np.sort(seconds)
    return df


def _daily_profile() -> np.ndarray:
    h = np.arange(24)
    w = 0.3 + np.exp(-0.5 * ((h - 14) / 4.0) ** 2)
    return w / w.sum()


def rows_for(df: pd.DataFrame, seed: int = 0) -> list[dict[str, object]]:
    """Log rows (the ``record_to_row`` shape) for the frame."""
    rng = np.random.default_rng(seed + 1)
    n = len(df)
    channel = CHANNELS[rng.choice(3, size=n, p=[0.7, 0.25, 0.05])]
    refused = rng.random(n) < 0.03
    score = np.clip(rng.beta(2, 5, size=n), 0, 1)
    probing = rng.random(n) < 0.01
    latency = rng.gamma(2.0, 0.4, size=n)
    records = df.drop(columns=["_epoch"]).to_dict("records")
    out: list[dict[str, object]] = []
    stamps = [T0 + timedelta(seconds=int(e) - int(T0.timestamp())) for e in df["_epoch"]]
    for i, raw in enumerate(records):
        if refused[i]:
            raw = {**raw, "AGE": 999}
            features: dict[str, object] = {}
            actions: list[dict[str, object]] = [
                {"step": "validate", "action": "reject", "rules": ["max"]}
            ]
            errors: list[dict[str, object]] = [{"field": "AGE", "rule": "max", "value": 999}]
            status, decision, s = "rejected_validation", None, None
        else:
            features = {k: v for k, v in raw.items() if k != "SEX"}
            actions = []
            if raw["AGE"] > 80:
                features["AGE"] = 80
                actions.append(
                    {
                        "step": "sanitise",
                        "action": "clip",
                        "field": "AGE",
                        "from": raw["AGE"],
                        "to": 80,
                    }
                )
            errors = []
            status = "accepted"
            s = float(score[i])
            decision = "deny" if s > 0.5 else ("review" if s > 0.4 else "approve")
        out.append(
            {
                "decision_id": uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | i).hex,
                "timestamp": stamps[i],
                "client": "bank-a" if i % 3 else "bank-b",
                "subject_id": f"s{i}",
                "status": status,
                "decision": decision,
                "score": s,
                "model_name": "main",
                "model_version": "credit_default/1",
                "raw": json.dumps(raw, separators=(",", ":")),
                "features": json.dumps(features, separators=(",", ":")),
                "guard_actions": json.dumps(actions, separators=(",", ":")),
                "flags": '{"flow":"enabled","version":0}',
                "errors": json.dumps(errors, separators=(",", ":")),
                "segment": json.dumps({"channel": channel[i]}, separators=(",", ":")),
                "probing": '["boundary"]' if probing[i] else "[]",
                "latency_ms": float(latency[i]),
                "available_at": None,
            }
        )
    return out


def build_log(
    url: str,
    rows: int,
    days: int = 35,
    seed: int = 0,
    chunk: int = 50_000,
    layout: NumberLayout | None = None,
) -> pd.DataFrame:
    """Write ``rows`` log rows into the log at ``url`` (through its ingest_seq trigger).

    With ``layout``, each row also gets its ``numbers`` vector, as the service's log writer
    stores it (same encoder, from the same JSON texts).

    Returns the frame the rows were made of (``_epoch``, the attributes), for exact checks.
    """
    engine = create_sql_engine(url)
    ensure_schema(engine, [predictions_table])
    df = frame(rows, days, seed)
    columns = [c.name for c in predictions_table.columns]
    if layout is not None:
        columns.append(NUMBERS)
    for start in range(0, rows, chunk):
        part = rows_for(df.iloc[start : start + chunk], seed + start)
        if layout is not None:
            vectors = layout.encode([r["raw"] for r in part], [r["features"] for r in part])
            for r, vector in zip(part, vectors, strict=True):
                r[NUMBERS] = vector
        insert_rows(engine, part, columns)
    engine.dispose()
    return df


def insert_rows(engine: Any, part: list[dict[str, Any]], columns: list[str]) -> None:
    """Insert ``part`` (rows of :func:`rows_for`) into the log's ``columns`` in one transaction,
    time stamps as SQLite text (no-op for no rows)."""
    if not part:
        return
    sql = (
        f"INSERT INTO {predictions_table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)})"
    )
    values = [
        tuple(
            r[c].isoformat(sep=" ").replace("+00:00", "") if c == "timestamp" else r[c]
            for c in columns
        )
        for r in part
    ]
    with engine.begin() as conn:
        conn.exec_driver_sql(sql, values)
