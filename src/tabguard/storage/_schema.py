"""The SQL schema of tabguard's state: flags and their audit trail, API keys, prediction log,
monitoring buckets.

One :data:`METADATA` holds every table so a single database can host all stores; each store
creates only its own tables with :func:`ensure_schema` (idempotent, safe when several processes
start at once).

The prediction log carries one column that is not part of :data:`predictions_table`:
``ingest_seq``, the order in which rows were *committed*, which the monitor's watermark follows
(a row's ``timestamp`` is the request time, and rows arrive late: batched writes, a spool
replayed after an outage). :func:`ensure_schema` adds it to existing logs (migration) and keeps
it out of the table object, so readers of records never see it:

* SQLite: a counter row bumped by an ``AFTER INSERT`` trigger inside the inserting transaction;
  SQLite has one writer at a time, so the sequence is gap-free and in commit order.
* PostgreSQL: the inserting transaction's id (``pg_current_xact_id()``) as the column default.
  Ids are handed out at transaction start, not at commit, so a reader takes only rows whose id
  lies below its snapshot's ``xmin``: every transaction below it has finished, so no slow
  transaction is ever skipped.

A second such column, ``numbers`` (nullable binary), holds each row's raw attributes and
features as one vector for the monitor (``tabguard.monitoring._numbers``); the log writer fills
it, :func:`ensure_numbers` adds it to old logs.
"""

from __future__ import annotations

import sqlalchemy as sa

from tabguard.storage._errors import backend_errors

METADATA = sa.MetaData()

# Autoincrement ids: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

flags_table = sa.Table(
    "tg_flags",
    METADATA,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False, comment="JSON-encoded canonical value"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.String(256), nullable=False),
)

flag_history_table = sa.Table(
    "tg_flag_history",
    METADATA,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, index=True),
    sa.Column("old_value", sa.Text, nullable=True, comment="JSON; NULL = was the default"),
    sa.Column("new_value", sa.Text, nullable=False, comment="JSON"),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
)

api_keys_table = sa.Table(
    "tg_api_keys",
    METADATA,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, index=True),
    sa.Column("secret_hash", sa.String(64), nullable=False, comment="sha256 hex of the key"),
    sa.Column("scopes", sa.String(256), nullable=False, comment="comma-separated"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    # At most one active key per name, enforced by the database (two CLIs racing included).
    sa.Index(
        "uq_tg_api_keys_active_name",
        "name",
        unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    ),
)

predictions_table = sa.Table(
    "tg_predictions",
    METADATA,
    sa.Column("decision_id", sa.String(64), primary_key=True),
    sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("client", sa.String(256), nullable=True, index=True),
    sa.Column("subject_id", sa.String(256), nullable=True, index=True),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("decision", sa.String(16), nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("model_name", sa.String(256), nullable=True),
    sa.Column("model_version", sa.String(256), nullable=True),
    sa.Column("raw", sa.Text, nullable=False, comment="JSON: attributes as received"),
    sa.Column("features", sa.Text, nullable=False, comment="JSON: guarded model features"),
    sa.Column("guard_actions", sa.Text, nullable=False, comment="JSON list"),
    sa.Column("flags", sa.Text, nullable=False, comment="JSON: flag snapshot"),
    sa.Column("errors", sa.Text, nullable=False, comment="JSON list"),
    sa.Column("segment", sa.Text, nullable=False, comment="JSON object"),
    sa.Column("probing", sa.Text, nullable=False, comment="JSON list of probing signals"),
    sa.Column("latency_ms", sa.Float, nullable=True),
    sa.Column("available_at", sa.DateTime(timezone=True), nullable=True),
)


# ---- monitoring (tabguard.monitoring): buckets keyed by (bucket start, segment) ------------------

#: Bucket keys are whole seconds since the epoch (UTC) of the bucket's start.
_SEG_KEY, _SEG_VALUE = 160, 300

monitor_state_table = sa.Table(
    "tg_mon_state",
    METADATA,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("value", sa.Text, nullable=False, comment="JSON"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

monitor_counts_table = sa.Table(
    "tg_mon_counts",
    METADATA,
    sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("seg_key", sa.String(_SEG_KEY), primary_key=True),
    sa.Column("seg_value", sa.String(_SEG_VALUE), primary_key=True),
    sa.Column("family", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)

monitor_cells_table = sa.Table(
    "tg_mon_cells",
    METADATA,
    sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("seg_key", sa.String(_SEG_KEY), primary_key=True),
    sa.Column("seg_value", sa.String(_SEG_VALUE), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("cols", sa.Text, nullable=False, comment="JSON list of column names"),
    sa.Column(
        "stats",
        sa.LargeBinary,
        nullable=False,
        comment="float64 little-endian, one row of STAT_FIELDS per column",
    ),
    sa.Column(
        "sketches",
        sa.LargeBinary,
        nullable=False,
        comment="uint32 lengths per column, then DataSketches KLL doubles sketches",
    ),
)

monitor_segments_table = sa.Table(
    "tg_mon_segments",
    METADATA,
    sa.Column("seg_key", sa.String(_SEG_KEY), primary_key=True),
    sa.Column("seg_value", sa.String(_SEG_VALUE), primary_key=True),
    sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=False),
)

monitor_outcomes_table = sa.Table(
    "tg_mon_outcomes",
    METADATA,
    sa.Column("decision_id", sa.String(64), primary_key=True),
    sa.Column("subject_id", sa.String(256), nullable=True, index=True),
    sa.Column("label", sa.Integer, nullable=False, comment="1 = the contract's positive label"),
    sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.String(512), nullable=True),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("decision", sa.String(16), nullable=True),
    sa.Column("segments", sa.Text, nullable=False, comment="JSON [[key, value], ...]"),
)

MONITOR_TABLES = [
    monitor_state_table,
    monitor_counts_table,
    monitor_cells_table,
    monitor_segments_table,
    monitor_outcomes_table,
]

# ---- the log's ingestion sequence (see the module docstring) -----------------------------------

#: Name of the prediction log's ingestion-order column (not in :data:`predictions_table`).
INGEST_SEQ = "ingest_seq"
_SQLITE_COUNTER = "tg_predictions_ingest"
_PG_MIGRATE_LOCK = 0x7A6F_1E57


def has_ingest_seq(engine: sa.Engine) -> bool:
    """Whether the prediction log already has its ``ingest_seq`` column (one cheap query)."""
    probe = sa.text(f"SELECT {INGEST_SEQ} FROM {predictions_table.name} WHERE 1 = 0")  # noqa: S608 - constant identifiers
    try:
        with engine.connect() as conn:
            conn.execute(probe)
    except sa.exc.OperationalError:  # SQLite: no such column
        return False
    except sa.exc.ProgrammingError:  # PostgreSQL: undefined column
        return False
    return True


def ensure_ingest_seq(engine: sa.Engine) -> None:
    """Add the ``ingest_seq`` column, its index and its filler to the prediction log.

    Idempotent and safe when several processes migrate at once. Rows that exist before the
    migration get a sequence that orders them before every later row.
    """
    if has_ingest_seq(engine):
        return
    table = predictions_table.name
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATE_LOCK)))
            cols = {c["name"] for c in sa.inspect(conn).get_columns(table)}
            if INGEST_SEQ not in cols:
                conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {INGEST_SEQ} BIGINT"))
                conn.execute(sa.text(f"UPDATE {table} SET {INGEST_SEQ} = 1"))  # noqa: S608 - constant identifiers
            conn.execute(
                sa.text(
                    f"ALTER TABLE {table} ALTER COLUMN {INGEST_SEQ} "
                    "SET DEFAULT (pg_current_xact_id()::text::bigint)"
                )
            )
            conn.execute(
                sa.text(
                    f"CREATE INDEX IF NOT EXISTS ix_{table}_{INGEST_SEQ} ON {table} ({INGEST_SEQ})"
                )
            )
    else:
        from tabguard.storage._engine import SQLITE_BEGIN_OPTION

        with (
            engine.connect().execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"}) as conn,
            conn.begin(),
        ):
            cols = {c["name"] for c in sa.inspect(conn).get_columns(table)}
            conn.execute(
                sa.text(
                    f"CREATE TABLE IF NOT EXISTS {_SQLITE_COUNTER} "
                    "(id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL)"
                )
            )
            if INGEST_SEQ not in cols:
                conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {INGEST_SEQ} INTEGER"))
            # Rows already there (an old log) are numbered by rowid, before any new row.
            conn.execute(
                sa.text(
                    f"INSERT OR IGNORE INTO {_SQLITE_COUNTER} (id, value) "  # noqa: S608
                    f"SELECT 1, coalesce(max(rowid), 0) FROM {table}"
                )
            )
            conn.execute(
                sa.text(f"UPDATE {table} SET {INGEST_SEQ} = rowid WHERE {INGEST_SEQ} IS NULL")  # noqa: S608 - constant identifiers
            )
            conn.execute(
                sa.text(
                    f"CREATE INDEX IF NOT EXISTS ix_{table}_{INGEST_SEQ} ON {table} ({INGEST_SEQ})"
                )
            )
            conn.execute(
                sa.text(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_{INGEST_SEQ} AFTER INSERT ON {table} "  # noqa: S608
                    f"FOR EACH ROW WHEN NEW.{INGEST_SEQ} IS NULL BEGIN "
                    f"UPDATE {_SQLITE_COUNTER} SET value = value + 1 WHERE id = 1; "
                    f"UPDATE {table} SET {INGEST_SEQ} = "
                    f"(SELECT value FROM {_SQLITE_COUNTER} WHERE id = 1) "
                    "WHERE rowid = NEW.rowid; END"
                )
            )


# ---- the log's ``numbers`` vectors (tabguard.monitoring._numbers) -----------------------------

#: Name of the prediction log's binary vector column (not in :data:`predictions_table`: record
#: readers never see it; the log writer fills it, ``tabguard monitor update`` reads it).
NUMBERS = "numbers"

#: :data:`predictions_table` with the ``numbers`` column, for the log writer's inserts only
#: (its own metadata: ``create_all`` never creates it; :func:`ensure_numbers` adds the column).
predictions_write_table = sa.Table(
    predictions_table.name,
    sa.MetaData(),
    *(c._copy() for c in predictions_table.columns),
    sa.Column(NUMBERS, sa.LargeBinary, nullable=True),
)


def ensure_numbers(engine: sa.Engine) -> None:
    """Add the nullable ``numbers`` column to a prediction log that lacks it (old logs keep
    their rows, which the monitor reads from their JSON). Idempotent; a concurrent migration
    that added it first is fine."""
    probe = sa.text(f"SELECT {NUMBERS} FROM {predictions_table.name} WHERE 1 = 0")  # noqa: S608 - constant identifiers
    try:
        with engine.connect() as conn:
            conn.execute(probe)
        return
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        pass
    kind = "BYTEA" if engine.dialect.name == "postgresql" else "BLOB"
    exists = "IF NOT EXISTS " if engine.dialect.name == "postgresql" else ""
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(f"ALTER TABLE {predictions_table.name} ADD COLUMN {exists}{NUMBERS} {kind}")
            )
    except sa.exc.OperationalError as exc:  # SQLite: another process added it meanwhile
        if "duplicate column" not in str(exc):
            raise


def ensure_schema(engine: sa.Engine, tables: list[sa.Table], *, what: str = "store") -> None:
    """Create ``tables`` (and their indexes) if they do not exist.

    Safe to call from several processes at once: a lost creation race is retried once, after
    which the tables exist.

    Raises
    ------
    BackendUnavailableError
        When the database cannot be reached.
    """
    with backend_errors(what, "create the schema"):
        if engine.dialect.name == "sqlite":
            # Check-then-create in one BEGIN IMMEDIATE transaction: a deferred one reads first
            # and its upgrade to a writer fails at once (SQLITE_BUSY, no busy wait) when another
            # worker starting beside it wrote in between.
            from tabguard.storage._engine import SQLITE_BEGIN_OPTION

            with (
                engine.connect().execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"}) as conn,
                conn.begin(),
            ):
                METADATA.create_all(conn, tables=tables, checkfirst=True)
            if predictions_table in tables:
                ensure_ingest_seq(engine)
                ensure_numbers(engine)
            return
        try:
            METADATA.create_all(engine, tables=tables, checkfirst=True)
        except sa.exc.DBAPIError as exc:
            # Another process created the same table between our check and our CREATE (PG
            # raises a unique violation on pg_type or "already exists", SQLite "already
            # exists"). Anything else (an unreachable server) is not worth a second try.
            if not (isinstance(exc, sa.exc.IntegrityError) or "already exists" in str(exc)):
                raise
            METADATA.create_all(engine, tables=tables, checkfirst=True)
        if predictions_table in tables:
            ensure_ingest_seq(engine)
            ensure_numbers(engine)
