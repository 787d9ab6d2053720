"""Alert history (open → acknowledged → resolved) and the state machine that feeds it.

Alerts live in the monitor store's database (SQLite, PostgreSQL, or in-memory SQLite for
``memory://``), in two tables: ``tg_alerts`` (one row per alert: rule, segment, state, the
numbers that opened it) and ``tg_alert_events`` (what happened to it: opened, actions taken or
recorded, acknowledged, resolved, notifications).

:class:`AlertTracker` turns evaluations into alert transitions, per rule and segment value:

* fired, no alert active → **open** one (unless one opened within ``cooldown``: *suppressed*);
  its actions run once, on opening;
* fired, alert active → still open: ``last_seen_at`` and the numbers are updated, nothing is
  re-sent;
* evaluated within threshold (status ``ok`` or ``not_significant``) while active → **resolved**
  (flags set by its actions stay set: undoing a defence is a person's decision);
* skipped (low volume, no baseline, calendar) → nothing changes.

``tabguard monitor alerts ack ID`` acknowledges an alert (someone is on it); it still resolves
by itself when the condition clears.
"""

from __future__ import annotations

import builtins
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa

from tabguard.errors import TabguardError
from tabguard.monitoring._rules import RuleEvaluation
from tabguard.monitoring._rules_config import AlertingConfig
from tabguard.storage import METADATA, backend_errors, ensure_schema

State = Literal["open", "acknowledged", "resolved"]
ACTIVE: tuple[State, ...] = ("open", "acknowledged")
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

alerts_table = sa.Table(
    "tg_alerts",
    METADATA,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("segment_key", sa.String(160), nullable=False),
    sa.Column("segment_value", sa.String(300), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("acknowledged_by", sa.String(256), nullable=True),
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("baseline", sa.Float, nullable=True),
    sa.Column("p_value", sa.Float, nullable=True),
    sa.Column("n", sa.BigInteger, nullable=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Index("ix_tg_alerts_rule_segment", "rule", "segment_key", "segment_value"),
)

alert_events_table = sa.Table(
    "tg_alert_events",
    METADATA,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text, nullable=False, comment="JSON"),
)


class AlertError(TabguardError, ValueError):
    """An alert operation that cannot be done (unknown id, already resolved)."""


@dataclass(frozen=True)
class Alert:
    """One row of the alert history."""

    id: int
    rule: str
    segment: tuple[str, str]
    severity: str
    state: State
    opened_at: datetime
    last_seen_at: datetime
    window_start: datetime
    window_end: datetime
    message: str
    value: float | None = None
    baseline: float | None = None
    p_value: float | None = None
    n: int | None = None
    resolved_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None

    @property
    def segment_text(self) -> str:
        """``channel=partner`` (``all`` for the whole traffic)."""
        k, v = self.segment
        return "all" if k == "all" else f"{k}={v}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            v = getattr(self, name)
            out[name] = v.isoformat() if isinstance(v, datetime) else v
        out["segment"] = {"key": self.segment[0], "value": self.segment[1]}
        return out


@dataclass(frozen=True)
class AlertEvent:
    """Something that happened to an alert (history, and what the loops report)."""

    alert: Alert
    at: datetime
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _alert(row: Any) -> Alert:
    m = row._mapping
    return Alert(
        id=int(m["id"]),
        rule=m["rule"],
        segment=(m["segment_key"], m["segment_value"]),
        severity=m["severity"],
        state=m["state"],
        opened_at=_utc(m["opened_at"]),
        last_seen_at=_utc(m["last_seen_at"]),
        window_start=_utc(m["window_start"]),
        window_end=_utc(m["window_end"]),
        message=m["message"],
        value=m["value"],
        baseline=m["baseline"],
        p_value=m["p_value"],
        n=m["n"],
        resolved_at=_utc(m["resolved_at"]),
        acknowledged_at=_utc(m["acknowledged_at"]),
        acknowledged_by=m["acknowledged_by"],
    )


class AlertStore:
    """The alert history in a SQL database (the monitor store's engine).

    Parameters
    ----------
    engine : sqlalchemy.Engine
        Usually ``store.engine`` of the bucket store (same database).
    what : str
        Name of the backend in error messages.
    """

    def __init__(self, engine: sa.Engine, what: str = "alert store") -> None:
        self.engine = engine
        self._what = what
        ensure_schema(engine, [alerts_table, alert_events_table], what=what)

    @classmethod
    def of(cls, store: Any) -> AlertStore:
        """The alert store beside a bucket store (same database)."""
        return cls(store.engine, f"alert store in {getattr(store, '_what', 'the monitor store')}")

    def open(self, ev: RuleEvaluation, severity: str, message: str) -> Alert:
        """Record a new open alert for an evaluation that fired."""
        obs = ev.current
        row = {
            "rule": ev.rule,
            "segment_key": ev.segment[0],
            "segment_value": ev.segment[1],
            "severity": severity,
            "state": "open",
            "opened_at": ev.at,
            "last_seen_at": ev.at,
            "window_start": ev.start,
            "window_end": ev.end,
            "value": _finite(obs.value if obs else None),
            "baseline": _finite(ev.baseline),
            "p_value": _finite(ev.p_value),
            "n": obs.n if obs else None,
            "message": message,
        }
        with backend_errors(self._what, "open an alert"), self.engine.begin() as conn:
            key = conn.execute(alerts_table.insert().values(**row)).inserted_primary_key
            assert key is not None
            new_id = key[0]
            self._event(conn, int(new_id), ev.at, "opened", {"message": message})
        return self.get(int(new_id))

    def seen(self, alert: Alert, ev: RuleEvaluation, message: str) -> Alert:
        """Update an active alert with the latest numbers."""
        obs = ev.current
        values = {
            "last_seen_at": ev.at,
            "window_start": ev.start,
            "window_end": ev.end,
            "value": _finite(obs.value if obs else None),
            "baseline": _finite(ev.baseline),
            "p_value": _finite(ev.p_value),
            "n": obs.n if obs else None,
            "message": message,
        }
        with backend_errors(self._what, "update an alert"), self.engine.begin() as conn:
            conn.execute(
                alerts_table.update().where(alerts_table.c.id == alert.id).values(**values)
            )
        return self.get(alert.id)

    def resolve(self, alert: Alert, at: datetime, detail: dict[str, Any] | None = None) -> Alert:
        """Mark an active alert resolved at ``at``."""
        with backend_errors(self._what, "resolve an alert"), self.engine.begin() as conn:
            conn.execute(
                alerts_table.update()
                .where(alerts_table.c.id == alert.id, alerts_table.c.state.in_(ACTIVE))
                .values(state="resolved", resolved_at=at)
            )
            self._event(conn, alert.id, at, "resolved", detail or {})
        return self.get(alert.id)

    def ack(self, alert_id: int, by: str, at: datetime, note: str | None = None) -> Alert:
        """Acknowledge an active alert.

        Raises
        ------
        AlertError
            Unknown id, or the alert is already resolved.
        """
        alert = self.get(alert_id)
        if alert.state == "resolved":
            raise AlertError(f"alert {alert_id} is already resolved (at {alert.resolved_at})")
        if not by.strip():
            raise AlertError("an acknowledgement needs a name (--by)")
        with backend_errors(self._what, "acknowledge an alert"), self.engine.begin() as conn:
            conn.execute(
                alerts_table.update()
                .where(alerts_table.c.id == alert_id)
                .values(state="acknowledged", acknowledged_at=at, acknowledged_by=by.strip()[:256])
            )
            self._event(conn, alert_id, at, "acknowledged", {"by": by, "note": note})
        return self.get(alert_id)

    def record(self, alert_id: int, at: datetime, kind: str, detail: dict[str, Any]) -> None:
        """Add an event (an action's result, a notification) to an alert's history."""
        with backend_errors(self._what, "record an alert event"), self.engine.begin() as conn:
            self._event(conn, alert_id, at, kind, detail)

    def _event(
        self, conn: sa.Connection, alert_id: int, at: datetime, kind: str, detail: dict[str, Any]
    ) -> None:
        conn.execute(
            alert_events_table.insert().values(
                alert_id=alert_id, at=at, kind=kind, detail=json.dumps(detail, default=str)
            )
        )

    def get(self, alert_id: int) -> Alert:
        """One alert by id (AlertError when unknown)."""
        with backend_errors(self._what, "read an alert"), self.engine.connect() as conn:
            row = conn.execute(sa.select(alerts_table).where(alerts_table.c.id == alert_id)).first()
        if row is None:
            raise AlertError(
                f"no alert with id {alert_id} (list them with: tabguard monitor alerts)"
            )
        return _alert(row)

    def active(self, rule: str, segment: tuple[str, str]) -> Alert | None:
        """The open or acknowledged alert of a rule and segment value, if any."""
        t = alerts_table
        query = (
            sa.select(t)
            .where(
                t.c.rule == rule,
                t.c.segment_key == segment[0],
                t.c.segment_value == segment[1],
                t.c.state.in_(ACTIVE),
            )
            .order_by(t.c.id.desc())
        )
        with backend_errors(self._what, "read alerts"), self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _alert(row)

    def last_opened(self, rule: str, segment: tuple[str, str]) -> datetime | None:
        """When the latest alert of a rule and segment value opened."""
        t = alerts_table
        query = sa.select(sa.func.max(t.c.opened_at)).where(
            t.c.rule == rule, t.c.segment_key == segment[0], t.c.segment_value == segment[1]
        )
        with backend_errors(self._what, "read alerts"), self.engine.connect() as conn:
            return _utc(conn.execute(query).scalar())

    def list(
        self,
        *,
        state: State | Literal["active"] | None = None,
        rule: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> builtins.list[Alert]:
        """Alerts, newest first."""
        t = alerts_table
        query = sa.select(t).order_by(t.c.opened_at.desc(), t.c.id.desc()).limit(limit)
        if state == "active":
            query = query.where(t.c.state.in_(ACTIVE))
        elif state is not None:
            query = query.where(t.c.state == state)
        if rule is not None:
            query = query.where(t.c.rule == rule)
        if since is not None:
            query = query.where(t.c.opened_at >= since)
        with backend_errors(self._what, "list alerts"), self.engine.connect() as conn:
            return [_alert(r) for r in conn.execute(query)]

    def events(self, alert_id: int) -> builtins.list[dict[str, Any]]:
        """An alert's history, oldest first."""
        t = alert_events_table
        query = sa.select(t).where(t.c.alert_id == alert_id).order_by(t.c.id)
        with backend_errors(self._what, "read alert events"), self.engine.connect() as conn:
            return [
                {"at": _utc(r.at), "kind": r.kind, "detail": json.loads(r.detail)}
                for r in conn.execute(query)
            ]


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


class AlertTracker:
    """Turns evaluations into alert transitions (see the module docstring).

    Parameters
    ----------
    store : AlertStore
    config : AlertingConfig
    describe : callable
        ``describe(evaluation, rule) -> str`` (the wording; ``_wording.describe`` by default).
    """

    def __init__(self, store: AlertStore, config: AlertingConfig, describe: Any = None) -> None:
        from tabguard.monitoring._wording import describe as default_describe

        self.store = store
        self.config = config
        self.describe = describe or default_describe

    def process(self, evaluations: list[RuleEvaluation]) -> list[AlertEvent]:
        """Apply the transitions of one evaluation pass; return the events (opened first)."""
        events: list[AlertEvent] = []
        for ev in evaluations:
            rule = self.config.rule(ev.rule)
            active = self.store.active(ev.rule, ev.segment)
            if ev.fired:
                message = self.describe(ev, rule)
                if active is not None:
                    self.store.seen(active, ev, message)
                    continue
                last = self.store.last_opened(ev.rule, ev.segment)
                cooldown = rule.cooldown or rule.window
                if last is not None and ev.at - last < cooldown:
                    continue  # within the cooldown of the previous alert: no new page
                alert = self.store.open(ev, rule.severity, message)
                events.append(AlertEvent(alert, ev.at, "opened"))
            elif active is not None and ev.status in ("ok", "not_significant"):
                detail = {
                    "value": _finite(ev.value),
                    "baseline": _finite(ev.baseline),
                    "status": ev.status,
                }
                resolved = self.store.resolve(active, ev.at, detail)
                events.append(AlertEvent(resolved, ev.at, "resolved", detail))
        return events
