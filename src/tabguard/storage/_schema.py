"""The SQL schema of tabguard's state: flags and their audit trail, API keys, prediction log.

One :data:`METADATA` holds every table so a single database can host all stores; each store
creates only its own tables with :func:`ensure_schema` (idempotent, safe when several processes
start at once).
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
        try:
            METADATA.create_all(engine, tables=tables, checkfirst=True)
        except sa.exc.DBAPIError as exc:
            # Another process created the same table between our check and our CREATE (PG
            # raises a unique violation on pg_type or "already exists", SQLite "already
            # exists"). Anything else (an unreachable server) is not worth a second try.
            if not (isinstance(exc, sa.exc.IntegrityError) or "already exists" in str(exc)):
                raise
            METADATA.create_all(engine, tables=tables, checkfirst=True)
