"""The log's ``numbers`` vectors: the monitor reads from them exactly what it reads from the JSON
documents; rows without one (old logs, other layouts, uncodable or hand-edited values) are read
from their JSON; old logs gain the column without losing a row."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tabguard.contract import Contract
from tabguard.monitoring import open_monitor_store
from tabguard.monitoring._aggregate import MonitorPlan
from tabguard.monitoring._numbers import LayoutColumn, NumberLayout
from tabguard.monitoring._parse import parse_objects
from tabguard.monitoring._update import LogReader, update
from tabguard.serving import PredictionLog
from tabguard.storage import create_sql_engine, predictions_table
from tabguard.storage._schema import METADATA, NUMBERS
from tests.monitoring.test_parse import COLUMNS, _row
from tests.monitoring.test_update import (
    CHANNELS,
    T0,
    H,
    config,
    make_records,
    same_percentiles,
    snapshot,
)

DECLARED = {"values": {"channel": list(CHANNELS)}}
LAYOUT = NumberLayout(
    tuple(
        LayoutColumn(
            kind,
            name,
            type_,
            tuple(str(c).lower() if isinstance(c, bool) else str(c) for c in cats or ()),
            tuple(cats or ()),
        )
        for kind in ("raw", "feature")
        for name, (type_, cats) in COLUMNS.items()
    )
)


def _same_columns(a: dict[str, Any], b: dict[str, Any]) -> None:
    for name in COLUMNS:
        x, y = a[name], b[name]
        assert (x.missing == y.missing).all(), name
        assert (x.invalid == y.invalid).all(), name
        if x.numbers is not None:
            np.testing.assert_array_equal(x.numbers, y.numbers)
        if x.labels is not None:
            assert list(x.labels) == list(y.labels), name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_row, _row), min_size=1, max_size=20))
def test_vectors_decode_to_what_the_json_parser_reads(rows: list[tuple[str, str]]) -> None:
    raw_texts = [r for r, _ in rows]
    feat_texts = [f for _, f in rows]
    vectors = LAYOUT.encode(raw_texts, feat_texts)
    assert len(vectors) == len(rows)
    coded = [i for i, v in enumerate(vectors) if v is not None]
    raw, raw_obj, _ = parse_objects([raw_texts[i] for i in coded], COLUMNS)
    feats, feat_obj, _ = parse_objects([feat_texts[i] for i in coded], COLUMNS, empty=False)
    v_raw, v_raw_obj, v_feats, v_feat_obj = LAYOUT.decode(
        [vectors[i] for i in coded], COLUMNS, COLUMNS
    )
    assert (raw_obj == v_raw_obj).all() and (feat_obj == v_feat_obj).all()
    _same_columns(raw, v_raw)
    _same_columns(feats, v_feats)
    # A row without a vector holds something unusual, which the JSON path decides.
    for i, v in enumerate(vectors):
        if v is None:
            assert _unusual(raw_texts[i], feat_texts[i]), (raw_texts[i], feat_texts[i])


def _unusual(raw_text: str, feat_text: str) -> bool:
    """A document orjson refuses, an invalid number, a category outside the declared ones, or
    an integer beyond float64's exact range."""
    declared = {(c.kind, c.name): set(c.labels) for c in LAYOUT.columns}
    for kind, text, empty in (("raw", raw_text, True), ("feature", feat_text, False)):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            return True
        parsed, _, _ = parse_objects([text], COLUMNS, empty=empty)
        for name, col in parsed.items():
            if col.invalid[0]:
                return True
            label = col.labels[0] if col.labels is not None else None
            if label is not None and label not in declared[(kind, name)]:
                return True
            value = doc.get(name) if isinstance(doc, dict) else None
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**53:
                return True
    return False


def test_plain_rows_all_get_a_vector() -> None:
    raw = ['{"AGE": 41, "LIMIT_BAL": 2.5e4, "EDUCATION": 2, "channel": "online", "flag": true}']
    feats = ['{"AGE": 41, "EDUCATION": 3.0}', "{}"]
    vectors = LAYOUT.encode(raw * 2, feats)
    assert all(v is not None and len(v) == LAYOUT.row_bytes for v in vectors)


def test_a_category_code_that_names_no_category_reads_as_missing() -> None:
    (vector,) = LAYOUT.encode(['{"EDUCATION": 2, "AGE": 5}'], ["{}"])
    assert vector is not None
    j = next(i for i, c in enumerate(LAYOUT.columns) if c.name == "EDUCATION")
    values = np.frombuffer(vector[16:], dtype="<f8").copy()
    values[j] = 7.5  # hand-edited
    edited = vector[:16] + values.tobytes()
    raw, raw_obj, _, _ = LAYOUT.decode([edited], COLUMNS, COLUMNS)
    assert raw_obj.tolist() == [True]
    assert raw["EDUCATION"].labels.tolist() == [None] and raw["EDUCATION"].missing.all()
    assert raw["AGE"].numbers.tolist() == [5.0]


def test_layout_depends_on_the_contract_only(credit_contract: Contract) -> None:
    base = NumberLayout.from_contract(credit_contract)
    assert base is not None and base.row_bytes == 16 + 8 * len(base.columns)
    n = len(credit_contract.features)
    assert len(base.columns) == 2 * n  # raw, then features, every contract feature
    assert base.prefix.startswith(b"TGN1") and len(base.prefix) == 12
    # Another order of the contract's features is another layout (another fingerprint).
    other = NumberLayout(base.columns[n:] + base.columns[:n])
    assert other.fingerprint != base.fingerprint
    edu = next(c for c in base.columns if c.name == "EDUCATION")
    assert edu.labels == tuple(str(c) for c in credit_contract.features["EDUCATION"].categories)


def _write(url: str, spool: Path, records: list[Any], layout: NumberLayout | None) -> None:
    with PredictionLog(url, spool_dir=spool, batch_size=500) as log:
        log.number_layout = layout
        for r in records:
            log.append(r)
        assert log.flush()


@pytest.fixture(scope="module")
def small_plan(credit_contract: Contract) -> tuple[pd.DataFrame, MonitorPlan]:
    from tabguard.datasets import load_credit_default
    from tabguard.monitoring import MonitorConfig

    df = load_credit_default().head(300).reset_index(drop=True)
    return df, MonitorPlan.from_contract(credit_contract, MonitorConfig().aggregation)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_update_from_vectors_gives_the_store_the_json_gives(
    backend: str,
    tmp_path: Path,
    small_plan: tuple[pd.DataFrame, MonitorPlan],
    request: pytest.FixtureRequest,
) -> None:
    df, plan = small_plan
    assert plan.layout is not None
    records = make_records(df, step=timedelta(minutes=1))
    # Rows the layout cannot code (a category outside the declared ones) keep JSON only.
    records[5].raw = {**records[5].raw, "EDUCATION": 9}
    logs = [f"sqlite:///{tmp_path / f'{n}.db'}" for n in ("json", "vectors")]
    stores = [f"sqlite:///{tmp_path / f'{n}-mon.db'}" for n in ("json", "vectors")]
    if backend == "postgres":  # the vectors log and its store on the server
        pg = str(request.getfixturevalue("postgres_url"))
        logs[1] = stores[1] = pg
    _write(logs[0], tmp_path / "s1", records, None)
    _write(logs[1], tmp_path / "s2", records, plan.layout)
    engine = create_sql_engine(logs[1])
    with engine.connect() as conn:
        vectors = conn.execute(sa.text(f"SELECT {NUMBERS} FROM tg_predictions")).scalars().all()
    engine.dispose()
    assert sum(v is None for v in vectors) == 1 and len(vectors) == len(records)
    for log_url, store_url, from_json in zip(logs, stores, (len(records), 1), strict=True):
        # Declared values: admission does not depend on batch sizes (PostgreSQL reads one
        # writer transaction as one batch).
        result = update(config((log_url, store_url), segments=DECLARED), plan=plan)
        assert result.rows == len(records) and result.slow_rows == 0
        assert result.json_rows == from_json
    end = T0 + 6 * H
    with open_monitor_store(stores[0]) as a, open_monitor_store(stores[1]) as b:
        assert snapshot(a, end) == snapshot(b, end)
        same_percentiles(a, b, end)
        edu = b.category_counts(T0, end, column="EDUCATION", kind="raw", segment=("all", "all"))
        assert edu.loc[edu.value == "other", "n"].sum() == 1  # the JSON row was read


def test_old_logs_gain_the_column_and_hand_edited_vectors_fall_back_to_json(
    tmp_path: Path, small_plan: tuple[pd.DataFrame, MonitorPlan]
) -> None:
    df, plan = small_plan
    assert plan.layout is not None
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_sql_engine(url)
    METADATA.create_all(engine, tables=[predictions_table])  # a log from before the column
    with engine.begin() as conn:
        cols = {c["name"] for c in sa.inspect(conn).get_columns("tg_predictions")}
    assert NUMBERS not in cols
    engine.dispose()
    records = make_records(df.head(120), step=timedelta(minutes=1))
    _write(url, tmp_path / "s0", records[:40], None)  # old rows: no vectors
    _write(url, tmp_path / "s1", records[40:], plan.layout)
    reference = f"sqlite:///{tmp_path / 'ref.db'}"
    _write(reference, tmp_path / "s2", records, None)
    engine = create_sql_engine(url)
    ids = [r.decision_id for r in records]
    with engine.begin() as conn:
        conn.execute(  # truncated by hand
            sa.text(
                f"UPDATE tg_predictions SET {NUMBERS} = substr({NUMBERS}, 1, 40) "
                "WHERE decision_id = :i"
            ),
            {"i": ids[50]},
        )
        conn.execute(  # another layout's vector: the JSON is read
            sa.text(
                f"UPDATE tg_predictions SET {NUMBERS} = X'54474E3100000000000000000000000000' "
                "WHERE decision_id = :i"
            ),
            {"i": ids[51]},
        )
        counts = conn.execute(
            sa.text(f"SELECT count({NUMBERS}), count(*) FROM tg_predictions")
        ).one()
    engine.dispose()
    assert tuple(counts) == (80, 120)
    reader = LogReader(url)
    reader.numbers_prefix, reader.numbers_width = plan.layout.prefix, plan.layout.row_bytes
    batch = reader.read(0, reader.horizon())
    reader.close()
    has = np.not_equal(batch["numbers"], None)
    assert int(has.sum()) == 78 and all(raw is None for raw in batch["raw"][has])
    for log_url, store_url in ((url, "old-mon"), (reference, "ref-mon")):
        update(
            config((log_url, f"sqlite:///{tmp_path / store_url}.db"), segments=DECLARED), plan=plan
        )
    end = T0 + 3 * H
    with (
        open_monitor_store(f"sqlite:///{tmp_path / 'old-mon.db'}") as a,
        open_monitor_store(f"sqlite:///{tmp_path / 'ref-mon.db'}") as b,
    ):
        assert snapshot(a, end) == snapshot(b, end)


def test_the_service_writes_vectors_of_its_model_layout(
    tmp_path: Path, small_plan: tuple[pd.DataFrame, MonitorPlan]
) -> None:
    """The vectors the writer stores are those the monitor's plan expects (same prefix)."""
    df, plan = small_plan
    assert plan.layout is not None
    url = f"sqlite:///{tmp_path / 'log.db'}"
    records = make_records(df.head(5))
    _write(url, tmp_path / "s", records, plan.layout)
    engine = create_sql_engine(url)
    with engine.connect() as conn:
        blobs = conn.execute(sa.text(f"SELECT {NUMBERS} FROM tg_predictions")).scalars().all()
        raw = conn.execute(sa.text("SELECT raw FROM tg_predictions")).scalars().all()
    engine.dispose()
    assert all(b[:12] == plan.layout.prefix and len(b) == plan.layout.row_bytes for b in blobs)
    assert all(isinstance(json.loads(r), dict) for r in raw)  # the JSON stays the record
