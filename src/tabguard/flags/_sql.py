"""The SQL flag store (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from tabguard.flags._base import BaseFlagStore, effective
from tabguard.flags._model import FlagChange, decode_value, encode_value
from tabguard.storage import (
    SQLITE_BEGIN_OPTION,
    backend_errors,
    create_sql_engine,
    ensure_schema,
    flag_history_table,
    flags_table,
    redact_url,
)

# Any constant: PostgreSQL advisory lock that serialises flag changes across processes so the
# audit trail's "old" value is always the value the change replaced.
_PG_LOCK_KEY = 0x7A6F_F1A6


class SqlFlagStore(BaseFlagStore):
    """Flags in two tables: current values and the append-only audit trail.

    The version is the id of the newest audit-trail row (an index lookup), and a change
    writes the value and its history row in one transaction.

    Parameters
    ----------
    url : str
        ``sqlite:///path``, ``postgresql://...`` or ``memory://`` (in-memory SQLite).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._what = f"flag store {redact_url(url)}"
        self._engine = create_sql_engine(url)
        ensure_schema(self._engine, [flags_table, flag_history_table], what=self._what)

    def _read_values(self) -> dict[str, Any]:
        with backend_errors(self._what, "read flags"), self._engine.connect() as conn:
            rows = conn.execute(sa.select(flags_table.c.name, flags_table.c.value)).all()
        return {name: decode_value(value) for name, value in rows}

    def _write(
        self, name: str, value: Any, actor: str, reason: str | None, at: datetime
    ) -> FlagChange:
        dialect = self._engine.dialect.name
        with backend_errors(self._what, f"set flag {name!r}"):
            conn_ctx = self._engine.connect().execution_options(
                **{SQLITE_BEGIN_OPTION: "IMMEDIATE"}
            )
            with conn_ctx as conn, conn.begin():
                if dialect == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
                rows = conn.execute(sa.select(flags_table.c.name, flags_table.c.value)).all()
                old = effective({n: decode_value(v) for n, v in rows}, name)
                exists = any(n == name for n, _ in rows)
                row = {"value": encode_value(value), "updated_at": at, "updated_by": actor}
                if exists:
                    conn.execute(
                        flags_table.update().where(flags_table.c.name == name).values(**row)
                    )
                else:
                    conn.execute(flags_table.insert().values(name=name, **row))
                result = conn.execute(
                    flag_history_table.insert().values(
                        name=name,
                        old_value=encode_value(old),
                        new_value=encode_value(value),
                        actor=actor,
                        reason=reason,
                        changed_at=at,
                    )
                )
                version = int(result.inserted_primary_key[0])  # type: ignore[index]
        return FlagChange(version, name, old, value, actor, reason, at)

    def history(self, limit: int = 50, name: str | None = None) -> list[FlagChange]:
        """Return the audit trail, newest first."""
        t = flag_history_table
        query = sa.select(t).order_by(t.c.id.desc()).limit(max(limit, 0))
        if name is not None:
            query = query.where(t.c.name == name)
        with backend_errors(self._what, "read the flag history"), self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            FlagChange(
                version=int(r["id"]),
                name=r["name"],
                old=decode_value(r["old_value"]),
                new=decode_value(r["new_value"]),
                actor=r["actor"],
                reason=r["reason"],
                changed_at=_as_utc(r["changed_at"]),
            )
            for r in rows
        ]

    def version(self) -> int:
        """Return the id of the newest change (0 before the first)."""
        query = sa.select(sa.func.coalesce(sa.func.max(flag_history_table.c.id), 0))
        with backend_errors(self._what, "read the flag version"), self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def close(self) -> None:
        """Dispose of the connection pool."""
        self._engine.dispose()


def _as_utc(value: datetime) -> datetime:
    # SQLite returns naive datetimes; everything tabguard writes is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
