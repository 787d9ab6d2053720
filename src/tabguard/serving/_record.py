"""One record of the prediction log (S5) and its row form, shared by the write and read paths.

A :class:`PredictionRecord` is what the guards pipeline logs for every request. Its row
(:func:`record_to_row`) is JSON-safe (str, float, int, None), so the same dict goes to the
database and, while the database is down, to the spool; :func:`row_to_record` turns a stored
row back into a record.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import uuid
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import sqlalchemy as sa

Status = Literal[
    "accepted",
    "rejected_validation",
    "rate_limited",
    "unauthorized",
    "flow_disabled",
    "delayed",
    "probing_throttled",
    "unavailable",
    "error",
]
DecisionValue = Literal["approve", "deny", "review"]

#: Columns holding JSON text, by record field.
JSON_FIELDS = ("raw", "features", "guard_actions", "flags", "errors", "segment", "probing")
#: Identifier columns are indexed; longer values are cut and suffixed with a hash of the whole
#: value so equal inputs still compare equal (a B-tree index entry has a size limit).
_ID_MAX = 256


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


class PredictionRecord(BaseModel):
    """One line of the prediction log.

    Attributes
    ----------
    decision_id : str
        Unique id (the idempotency key of the log; at most 64 characters).
    timestamp : datetime
        When the request arrived (UTC).
    client : str or None
        API client name (``None`` when unauthenticated).
    subject_id : str or None
        The subject (customer) the decision is about.
    raw : Any
        The attributes as received (JSON), before any guard.
    features : dict
        The guarded model features (after clipping, neutral values, bins).
    guard_actions : list
        What the guards did, e.g. ``{"field": "AGE", "action": "clip", "from": 999, "to": 125}``.
    flags : dict
        The flag snapshot in force (``Flags.to_dict()`` plus its version).
    model_name, model_version : str or None
        Which scorer decided (main, fallback, rules) and its version.
    score : float or None
        The model score (also logged when the client may not see it).
    decision : {'approve', 'deny', 'review'} or None
        The decision, when one was made.
    status : str
        ``accepted``, ``rejected_validation``, ``rate_limited``, ``unauthorized``,
        ``flow_disabled``, ``delayed``, ``probing_throttled`` (a client flagged for probing and
        throttled), ``unavailable`` (a fail-closed store was down) or ``error``.
    errors : list
        Validation errors (``FieldError.to_dict()``) or an error description.
    segment : dict
        Segment attributes for monitoring (channel, region, product...).
    probing : list of str
        Probing signals raised for this request (S6).
    latency_ms : float or None
        Time spent in the service.
    available_at : datetime or None
        For delayed decisions: when the answer may be released.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    decision_id: str = Field(default_factory=_new_id, min_length=1, max_length=64)
    timestamp: datetime = Field(default_factory=_utcnow)
    client: str | None = None
    subject_id: str | None = None
    raw: Any = Field(default_factory=dict)
    features: dict[str, Any] = Field(default_factory=dict)
    guard_actions: list[Any] = Field(default_factory=list)
    flags: dict[str, Any] = Field(default_factory=dict)
    model_name: str | None = None
    model_version: str | None = None
    score: float | None = None
    decision: DecisionValue | None = None
    status: Status = "accepted"
    errors: list[Any] = Field(default_factory=list)
    segment: dict[str, Any] = Field(default_factory=dict)
    probing: list[str] = Field(default_factory=list)
    latency_ms: float | None = None
    available_at: datetime | None = None


# Record <-> row.


def _json_safe(value: Any, depth: int = 0) -> Any:
    """Turn any value into something strict JSON can hold, keeping its information."""
    if depth > 64:
        return repr(value)[:1000]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v, depth + 1) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    item = getattr(value, "item", None)  # numpy and pandas scalars
    if callable(item):
        try:
            return _json_safe(item(), depth + 1)
        except (TypeError, ValueError):
            pass
    tolist = getattr(value, "tolist", None)  # numpy arrays
    if callable(tolist):
        with contextlib.suppress(TypeError, ValueError):
            return _json_safe(tolist(), depth + 1)
    return repr(value)


#: orjson refuses what the standard library would serialise differently (dataclasses and
#: datetimes are left to :func:`_json_safe`, as before).
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def dumps_json(value: Any) -> str:
    """Serialise ``value`` as strict JSON that every backend accepts.

    NaN and infinities become the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; numpy
    scalars become numbers; unknown objects their ``repr``. Text that cannot be encoded as
    UTF-8 (lone surrogates) is escaped.

    orjson writes the ordinary values (str keys, str, int, finite float, bool, lists, dicts);
    it writes NaN as ``null``, so any output holding ``null`` is written again the standard
    library's way, as is anything orjson refuses.
    """
    try:
        out = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        pass
    else:
        if b"null" not in out:
            return out.decode("utf-8")
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        text = json.dumps(_json_safe(value), ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(json.loads(text), ensure_ascii=True, separators=(",", ":"))
    return text


def dumps_line(row: dict[str, Any]) -> bytes:
    """One stored row as a JSON line (journal, spool): UTF-8 bytes ending in a newline."""
    try:
        return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
    except (TypeError, orjson.JSONEncodeError):  # lone surrogates, exotic values
        return (json.dumps(_json_safe(row), ensure_ascii=True) + "\n").encode("ascii")


def loads_line(line: bytes) -> dict[str, Any] | None:
    """The row of a journal or spool line; ``None`` when it is torn or not a row."""
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            return None
    return row if isinstance(row, dict) and "decision_id" in row else None


def _text(value: Any, limit: int | None = None) -> str | None:
    """A database-safe string: no NUL (PostgreSQL refuses it), valid UTF-8, bounded length."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if text.isascii() and (limit is None or len(text) <= limit) and "\x00" not in text:
        return text  # the common case: nothing to replace, encode or cut
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    if limit is not None and len(text) > limit:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        text = f"{text[: limit - 26]}…sha256:{digest}"
    return text


def _finite(name: str, value: float | None, notes: list[Any]) -> float | None:
    if value is None or math.isfinite(value):
        return value
    notes.append({"field": name, "rule": "non_finite", "value": str(value)})
    return None


def record_to_row(record: PredictionRecord) -> dict[str, Any]:
    """Return the JSON-safe row stored for ``record`` (datetimes as ISO strings)."""
    return build_row(
        decision_id=record.decision_id,
        timestamp=record.timestamp,
        client=record.client,
        subject_id=record.subject_id,
        raw=record.raw,
        features=record.features,
        guard_actions=record.guard_actions,
        flags_json=dumps_json(record.flags),
        model_name=record.model_name,
        model_version=record.model_version,
        score=record.score,
        decision=record.decision,
        status=record.status,
        errors=record.errors,
        segment=record.segment,
        probing=record.probing,
        latency_ms=record.latency_ms,
        available_at=record.available_at,
    )


def build_row(
    *,
    decision_id: str,
    timestamp: datetime,
    client: str | None,
    subject_id: str | None,
    raw: Any,
    features: dict[str, Any],
    guard_actions: list[Any],
    flags_json: str,
    model_name: str | None,
    model_version: str | None,
    score: float | None,
    decision: str | None,
    status: str,
    errors: list[Any],
    segment: dict[str, Any],
    probing: list[str],
    latency_ms: float | None,
    available_at: datetime | None,
) -> dict[str, Any]:
    """The stored row of a record given field by field (the request path builds no model).

    ``flags_json`` is the flag snapshot already serialised (the pipeline keeps it per
    snapshot). The result equals :func:`record_to_row` of the same record.
    """
    notes: list[Any] = []
    score = _finite("score", score, notes)
    latency = _finite("latency_ms", latency_ms, notes)
    return {
        "decision_id": decision_id,
        "timestamp": _iso(timestamp),
        "client": _text(client, _ID_MAX),
        "subject_id": _text(subject_id, _ID_MAX),
        "status": status,
        "decision": decision,
        "score": score,
        "model_name": _text(model_name, _ID_MAX),
        "model_version": _text(model_version, _ID_MAX),
        "raw": dumps_json(raw),
        "features": dumps_json(features),
        "guard_actions": "[]" if guard_actions == [] else dumps_json(guard_actions),
        "flags": flags_json,
        "errors": dumps_json(list(errors) + notes) if errors or notes else "[]",
        "segment": "{}" if segment == {} else dumps_json(segment),
        "probing": "[]" if probing == [] else dumps_json(probing),
        "latency_ms": latency,
        "available_at": _iso(available_at) if available_at else None,
    }


def _iso(value: datetime) -> str:
    if value.tzinfo is UTC:
        return value.isoformat()
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def to_utc(value: datetime | str | None) -> datetime | None:
    """An aware UTC datetime from a stored value (ISO text, naive = UTC, or aware)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def row_to_record(row: dict[str, Any] | sa.RowMapping) -> PredictionRecord:
    """Rebuild a :class:`PredictionRecord` from a stored row."""
    data = {k: row[k] for k in row.keys()}  # noqa: SIM118 - RowMapping iterates differently
    for name in JSON_FIELDS:
        data[name] = json.loads(data[name]) if data.get(name) is not None else None
    data["timestamp"] = to_utc(data["timestamp"])
    data["available_at"] = to_utc(data.get("available_at"))
    return PredictionRecord.model_validate(data)
