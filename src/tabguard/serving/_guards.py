"""The guards pipeline: small ordered steps between a request and its decision.

Every decision request runs through the same steps, in this order:

=================  ==========================================================================
step               what it does / how it stops a request
=================  ==========================================================================
authenticate       ``Authorization: Bearer <key>``: 401 missing/invalid/revoked, 403 no
                   ``decide`` scope, 503 key store unreachable (on a cache miss)
flow               503 when the ``flow`` flag is ``disabled``
parse              JSON body shape (``subject_id``, ``features``, ``segment``); never stops a
                   request itself, its errors are reported by *validate*
client limit       per API client (429 + ``Retry-After``; 503 when Redis is down, fail-closed)
validate           the contract's types, ranges, categories, precision, combination rules
                   (422 with ``errors: [{field, rule, value, message}]``; 413 body too large)
subject limit      per subject (429 + ``Retry-After``); counted only for valid requests, so a
                   typo does not use up a customer's allowance
sanitise           the model's transform: clip, neutral values (contract and ``neutralize``
                   flag), coarse bins, encoding; picks main, fallback or rules (``model`` flag)
score              the fast scoring path (or the rule policy)
decide             threshold (flag or model) and review band -> approve | deny | review
probing            per-client probing signals; flagged clients are flagged, throttled (429)
                   or get review/deny, per ``[probing] action``
respond            200 with the decision (score only with the ``score`` scope), or 202 when
                   decisions are delayed
=================  ==========================================================================

Then, whatever happened (a rejection, an internal error, a cancelled request), the pipeline
writes one prediction-log record and updates the metrics. Each step is an object with one
``async run(ctx)`` method returning ``None`` (go on) or a :class:`Rejection`; they can be built
and tested alone with a :class:`RequestContext`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from tabguard.errors import BackendUnavailableError, FieldError
from tabguard.serving._authlimit import AUTH_FAILURES
from tabguard.serving._config import DEFAULT_MAX_BODY_BYTES
from tabguard.serving._decision import DecisionPolicy, DelayedDecisions, StoredDecision
from tabguard.serving._keys import bearer_token, split_key
from tabguard.serving._record import PredictionRecord, build_row, dumps_json

if TYPE_CHECKING:
    from tabguard.contract import FeatureTransform, RecordValidator
    from tabguard.flags import FlagSnapshot
    from tabguard.serving._authlimit import AuthThrottle
    from tabguard.serving._compiled import CompiledRecord, CompiledTransform
    from tabguard.serving._keys import ApiClient, KeyCache
    from tabguard.serving._limits import AsyncRateLimiter, RateDecision
    from tabguard.serving._log import PredictionLog, Status
    from tabguard.serving._metrics import SegmentLabels, ServiceMetrics
    from tabguard.serving._probing import ProbingDetector
    from tabguard.serving._refusals import RefusalSummary
    from tabguard.serving._rules import RulePolicy
    from tabguard.serving._scoring import FastScorer

log = logging.getLogger("tabguard.serving")

#: Largest accepted request body by default (bytes; ``[server] max_body_bytes``).
MAX_BODY_BYTES = DEFAULT_MAX_BODY_BYTES
#: Raw bodies longer than this are logged truncated (the record is kept, not the megabytes).
_LOG_TEXT_MAX = 8 * 1024
_SUBJECT_MAX = 256
_SEGMENT_KEYS_MAX = 32
_SEGMENT_VALUE_MAX = 256
_BODY_KEYS = ("subject_id", "features", "segment")

#: What the service asks the time of a request: a function returning an aware UTC datetime.
#: Production uses :func:`system_clock`; the traffic simulator passes a simulated one through
#: the Python API (``ScoringService(clock=...)``). Nothing a client sends can set it.
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The real time (UTC): the clock of every request unless the Python API says otherwise."""
    return datetime.now(UTC)


class _RandomIds:
    """Random version-4 UUIDs as hex, from a buffer of ``os.urandom`` bytes.

    ``uuid.uuid4()`` asks the kernel for 16 bytes per call; one system call per request is
    measurable on the request path (and costly in sandboxed kernels). The bytes are the
    same kernel randomness, read 4 KiB at a time.
    """

    def __init__(self, chunk: int = 4096) -> None:
        self.chunk = chunk
        self._buffer = b""
        self._pos = 0
        self._lock = threading.Lock()
        # A forked child must not hand out the ids its parent's buffer still holds.
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._buffer, self._pos = b"", 0

    def __call__(self) -> str:
        with self._lock:
            if self._pos + 16 > len(self._buffer):
                self._buffer, self._pos = os.urandom(self.chunk), 0
            raw = self._buffer[self._pos : self._pos + 16]
            self._pos += 16
        h = raw.hex()
        # The version (4) and variant (10xx) bits of RFC 4122, as uuid4() sets them.
        return f"{h[:12]}4{h[13:16]}{'89ab'[int(h[16], 16) & 3]}{h[17:]}"


#: A new decision id (32 hex characters, a random UUID version 4).
new_decision_id = _RandomIds()


@dataclass(eq=False, slots=True)  # built per request: slots make it and its reads cheaper
class RequestContext:
    """Everything the steps read and write about one decision request.

    Built by :meth:`RequestContext.new`; steps fill it in, the pipeline logs it.
    """

    decision_id: str
    timestamp: datetime
    started: float
    now: float
    authorization: str | None
    body: bytes
    flags: FlagSnapshot
    too_large: bool = False
    client: ApiClient | None = None
    include_score: bool = False
    raw: Any = None
    subject_id: str | None = None
    features: dict[str, Any] | None = None
    segment: dict[str, Any] = field(default_factory=dict)
    shape_errors: list[FieldError] = field(default_factory=list)
    #: The raw encoding of valid features (``_compiled.py``), when the compiled check took them.
    vector: np.ndarray | None = None
    scorer: str | None = None
    fast: FastScorer | None = None
    row: np.ndarray | None = None
    guarded: dict[str, Any] = field(default_factory=dict)
    actions: list[dict[str, Any]] = field(default_factory=list)
    score: float | None = None
    threshold: float | None = None
    decision: str | None = None
    model_version: str | None = None
    probing: list[str] = field(default_factory=list)
    available_at: datetime | None = None
    status: Status = "accepted"
    errors: list[dict[str, Any]] = field(default_factory=list)
    http_status: int = 200
    response: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    rate_reason: str | None = None
    #: The source address (``_source.py``): what failed-authentication limits count.
    source: str | None = None
    #: Why authentication failed (``missing_key``, ``invalid_key``, ``auth_throttled``...).
    auth_failure: str | None = None

    @classmethod
    def new(
        cls,
        authorization: str | None,
        body: bytes,
        flags: FlagSnapshot,
        *,
        too_large: bool = False,
        clock: Clock = system_clock,
        source: str | None = None,
    ) -> RequestContext:
        """A context for a request that just arrived.

        ``clock`` gives the request's time (its log timestamp, the probing detector's "now",
        the release time of a delayed decision); latency is always measured on the real
        monotonic clock.
        """
        at = clock()
        return cls(
            decision_id=new_decision_id(),
            timestamp=at,
            started=time.perf_counter(),
            now=at.timestamp(),
            authorization=authorization,
            body=body,
            flags=flags,
            too_large=too_large,
            source=source,
        )

    def act(self, step: str, action: str, **info: Any) -> None:
        """Record a guard action (goes to the log and the metrics)."""
        self.actions.append({"step": step, "action": action, **info})


@dataclass(frozen=True)
class Rejection:
    """A step stopping a request: HTTP status, log status, body and headers."""

    http_status: int
    status: Status
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    reason: str | None = None


class Guard(ABC):
    """One step of the pipeline."""

    name: str = "guard"

    @abstractmethod
    async def run(self, ctx: RequestContext) -> Rejection | None:
        """Inspect or update ``ctx``; return a :class:`Rejection` to stop the request."""


def _unavailable(what: str, reason: str) -> Rejection:
    return Rejection(
        503,
        "unavailable",
        {"error": f"{what} is unreachable; retry later", "reason": reason},
        {"Retry-After": "1"},
        reason=reason,
    )


# --------------------------------------------------------------------------------------------
# The steps


class Authenticate(Guard):
    """``Authorization: Bearer <key>`` checked against the key store (cached).

    With an :class:`~tabguard.serving._authlimit.AuthThrottle`, failed authentications are
    counted per source address and key id, and those over the limit get 429 before their key
    is looked up (a valid cached key always passes).
    """

    name = "authenticate"

    def __init__(
        self, keys: KeyCache, scope: str = "decide", throttle: AuthThrottle | None = None
    ) -> None:
        self.keys = keys
        self.scope = scope
        self.throttle = throttle

    async def run(self, ctx: RequestContext) -> Rejection | None:
        """Set ``ctx.client`` or reject with 401/403/429/503."""
        client, rejection = await guarded_authenticate(
            self.keys, self.throttle, ctx.authorization, self.scope, ctx.source
        )
        if rejection is not None:
            ctx.act(self.name, "reject", reason=rejection.reason)
            if rejection.reason in AUTH_REFUSALS:
                ctx.auth_failure = rejection.reason
            if rejection.reason == "auth_throttled":
                ctx.rate_reason = "auth_throttled"
            return rejection
        ctx.client = client
        ctx.include_score = client is not None and client.can("score")
        return None


#: Rejections of requests without a valid key (logged as a summary, see ``_refusals.py``).
AUTH_REFUSALS = frozenset({"missing_key", "malformed_header", "invalid_key", "auth_throttled"})


async def guarded_authenticate(
    keys: KeyCache,
    throttle: AuthThrottle | None,
    authorization: str | None,
    scope: str,
    source: str | None,
) -> tuple[ApiClient | None, Rejection | None]:
    """:func:`authenticate` behind the failed-authentication limit (when there is one)."""
    if throttle is None:
        return await authenticate(keys, authorization, scope)
    if throttle.active and keys.known(bearer_token(authorization)) is None:
        block = throttle.blocked(source, authorization)
        if block is not None and block.what == "key_id":
            # Key ids are not secret: anyone can get one blocked by sending wrong secrets for
            # it. The key is still checked so that its owner is not locked out (after a restart
            # the cache does not know it yet); only a wrong secret gets the 429 below.
            client, rejection = await authenticate(keys, authorization, scope)
            if rejection is None or rejection.reason not in AUTH_FAILURES:
                return client, rejection
        if block is not None:
            await throttle.hold(block)  # the tarpit: a flooding connection waits for its 429
            wait = block.retry_after_header
            return None, Rejection(
                429,
                "rate_limited",
                {
                    "error": "too many failed authentications from this "
                    f"{block.what.replace('_', ' ')}; retry after {wait} s",
                    "reason": "auth_throttled",
                    "retry_after": int(wait),
                },
                {"Retry-After": wait},
                reason="auth_throttled",
            )
    client, rejection = await authenticate(keys, authorization, scope)
    if rejection is not None and rejection.reason in AUTH_FAILURES:
        await throttle.failed(source, authorization)
    return client, rejection


async def authenticate(
    keys: KeyCache, authorization: str | None, scope: str
) -> tuple[ApiClient | None, Rejection | None]:
    """Check a bearer header; return the client or the rejection (shared with GET routes)."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if not authorization:
        return None, Rejection(
            401,
            "unauthorized",
            {"error": "missing API key: send the header 'Authorization: Bearer <key>'"},
            challenge,
            reason="missing_key",
        )
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None, Rejection(
            401,
            "unauthorized",
            {"error": "malformed Authorization header: expected 'Bearer <key>'"},
            challenge,
            reason="malformed_header",
        )
    try:
        client = await keys.averify(token)
    except BackendUnavailableError:
        return None, _unavailable("the API key store", "key_store_unavailable")
    if client is None:
        return None, Rejection(
            401,
            "unauthorized",
            {"error": "invalid or revoked API key"},
            challenge,
            reason="invalid_key",
        )
    if not client.can(scope):
        return None, Rejection(
            403,
            "unauthorized",
            {"error": f"the API key of client {client.name!r} lacks the {scope!r} scope"},
            reason="missing_scope",
        )
    return client, None


class FlowGate(Guard):
    """503 while the ``flow`` flag is ``disabled``."""

    name = "flow"

    async def run(self, ctx: RequestContext) -> Rejection | None:
        """Reject when the flow is switched off."""
        if ctx.flags.flags.flow == "disabled":
            ctx.act(self.name, "reject", reason="flow_disabled")
            return Rejection(
                503,
                "flow_disabled",
                {
                    "error": "decisions are switched off by an operator (flag flow=disabled); "
                    "retry later",
                    "reason": "flow_disabled",
                },
                reason="flow_disabled",
            )
        return None


class ParseBody(Guard):
    """Decode the JSON body and check its shape; errors are kept for :class:`Validate`.

    Parameters
    ----------
    max_body_bytes : int
        The configured body limit (``[server] max_body_bytes``), named in the 413 message.
    """

    name = "parse"

    def __init__(self, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.max_body_bytes = max_body_bytes

    async def run(self, ctx: RequestContext) -> Rejection | None:
        """Fill ``raw``, ``subject_id``, ``features``, ``segment`` and ``shape_errors``."""
        errors = ctx.shape_errors
        if ctx.too_large:
            ctx.raw = {"_body": _text(ctx.body), "_truncated": True}
            errors.append(
                FieldError(
                    "body",
                    "max_size",
                    len(ctx.body),
                    f"the request body must be at most {self.max_body_bytes} bytes "
                    "([server] max_body_bytes)",
                )
            )
            return None
        payload, error = parse_json(ctx.body)
        if error is not None:
            ctx.raw = {"_body": _text(ctx.body)}
            errors.append(error)
            return None
        ctx.raw = payload
        if not isinstance(payload, dict):
            errors.append(
                FieldError(
                    "body",
                    "type",
                    _short(payload),
                    "the request body must be a JSON object with subject_id, features and "
                    "optionally segment",
                )
            )
            return None
        for key in payload:
            if key not in _BODY_KEYS:
                errors.append(
                    FieldError(
                        str(key),
                        "unknown_field",
                        None,
                        f"{key} is not a field of a decision request; use subject_id, features, "
                        "segment",
                    )
                )
        subject = payload.get("subject_id")
        if subject is None:
            errors.append(
                FieldError("subject_id", "required", None, "subject_id is required (a string)")
            )
        elif not isinstance(subject, str):
            errors.append(
                FieldError("subject_id", "type", _short(subject), "subject_id must be a string")
            )
        elif not subject.strip() or len(subject) > _SUBJECT_MAX:
            errors.append(
                FieldError(
                    "subject_id",
                    "length",
                    _short(subject),
                    f"subject_id must be 1 to {_SUBJECT_MAX} characters, not blank",
                )
            )
        else:
            ctx.subject_id = subject
        features = payload.get("features")
        if features is None:
            errors.append(
                FieldError("features", "required", None, "features is required (a JSON object)")
            )
        elif not isinstance(features, dict):
            errors.append(
                FieldError("features", "type", _short(features), "features must be a JSON object")
            )
        else:
            ctx.features = features
            ctx.raw = features
        segment = payload.get("segment")
        if segment is not None:
            errors.extend(_segment_errors(segment))
            if isinstance(segment, dict) and not any(e.field.startswith("segment") for e in errors):
                ctx.segment = segment
        return None


def parse_json(body: bytes) -> tuple[Any, FieldError | None]:
    """Decode strict JSON (no NaN/Infinity literals); return the value or the error.

    orjson reads ordinary bodies; a body it refuses, or that might hold a duplicate key or an
    integer beyond 64 bits (which orjson would read as a float), is read again by the standard
    library with the checks below, so every body gets the same value or the same error.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _parse_json_strict(body)
    members = _members(payload)
    if members < 0 or not _no_duplicate_keys(body, members):
        return _parse_json_strict(body)
    return payload, None


#: A JSON string (its colons are not member separators).
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
#: orjson reads an integer beyond 64 bits as a float: such floats send the body to the
#: standard library, which keeps the integer.
_BIG = float(2**63)


def _no_duplicate_keys(body: bytes, members: int) -> bool:
    """Whether the text holds as many object members as the decoded value (no key twice).

    Every member of the text has one colon outside strings; the decoded value keeps a
    duplicated key once. Counting all colons is enough unless a string holds one.
    """
    colons = body.count(b":")
    if colons == members:
        return True
    inside = sum(m.group().count(b":") for m in _STRING.finditer(body))
    return colons - inside == members


def _members(value: Any) -> int:
    """Object members of a decoded value (a duplicate key kept once); -1 for a huge float.

    Iterative: orjson accepts nesting deeper than Python's recursion limit.
    """
    t = type(value)
    if t is not dict and t is not list:
        return -1 if t is float and not -_BIG < value < _BIG else 0
    n = 0
    stack = [value]
    while stack:
        v = stack.pop()
        items = v.values() if type(v) is dict else v
        if type(v) is dict:
            n += len(v)
        for x in items:
            t = type(x)
            if t is dict or t is list:
                stack.append(x)
            elif t is float and not -_BIG < x < _BIG:
                return -1
    return n


def _parse_json_strict(body: bytes) -> tuple[Any, FieldError | None]:
    """The standard library's reading, with duplicate keys and constants refused."""
    if not body.strip():
        return None, FieldError(
            "body", "required", None, "the request body is empty; send a JSON object"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, FieldError("body", "json", None, f"the body is not UTF-8 text ({exc.reason})")
    try:
        return json.loads(
            text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys
        ), None
    except DuplicateKeyError as exc:
        return None, FieldError(
            exc.key[:64],
            "duplicate_key",
            None,
            f"the key {exc.key[:64]!r} appears more than once in one JSON object; send each "
            "key once (duplicate keys are read differently by different parsers)",
        )
    except (ValueError, RecursionError) as exc:
        return None, FieldError("body", "json", None, f"the body is not valid JSON: {exc}")


class DuplicateKeyError(ValueError):
    """A JSON object holds the same key twice (``{"AGE": 30, "AGE": 999}``)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate keys are a smuggling trick: a proxy or a log reader that keeps the first value
    # sees another request than a parser that keeps the last. Refused, never resolved.
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(key)
            seen.add(key)
    return out


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (send a finite number)")


def _segment_errors(segment: Any) -> list[FieldError]:
    if not isinstance(segment, dict):
        return [FieldError("segment", "type", _short(segment), "segment must be a JSON object")]
    out = []
    if len(segment) > _SEGMENT_KEYS_MAX:
        out.append(
            FieldError(
                "segment",
                "max_size",
                len(segment),
                f"segment may hold at most {_SEGMENT_KEYS_MAX} attributes",
            )
        )
    for key, value in list(segment.items())[:_SEGMENT_KEYS_MAX]:
        name = f"segment.{str(key)[:64]}"
        if len(str(key)) > 64:
            out.append(FieldError(name, "length", None, "segment keys must be <= 64 characters"))
        if value is not None and not isinstance(value, str | int | float | bool):
            out.append(
                FieldError(
                    name,
                    "type",
                    _short(value),
                    "segment values must be strings, numbers, booleans or null",
                )
            )
        elif isinstance(value, str) and len(value) > _SEGMENT_VALUE_MAX:
            out.append(
                FieldError(
                    name,
                    "length",
                    _short(value),
                    f"segment values must be <= {_SEGMENT_VALUE_MAX} characters",
                )
            )
        elif isinstance(value, float) and not math.isfinite(value):
            out.append(FieldError(name, "type", str(value), "segment numbers must be finite"))
    return out


def _short(value: Any) -> Any:
    """A JSON-safe, bounded copy of a value for an error payload."""
    if value is None or isinstance(value, bool | int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
            return str(value)[:64]
        return value
    if isinstance(value, str):
        return value if len(value) <= 128 else value[:128] + "…"
    text = json.dumps(value, default=str)
    return text if len(text) <= 128 else text[:128] + "…"


def _text(body: bytes) -> str:
    text = body[:_LOG_TEXT_MAX].decode("utf-8", "replace")
    return text + ("…" if len(body) > _LOG_TEXT_MAX else "")


class _LimitStep(Guard):
    def __init__(self, limiter: AsyncRateLimiter) -> None:
        self.limiter = limiter

    def _outcome(self, ctx: RequestContext, decision: RateDecision, who: str) -> Rejection | None:
        if decision.degraded and decision.allowed:
            ctx.act(self.name, "fail_open", reason="backend_unavailable")
        if decision.allowed:
            return None
        ctx.act(self.name, "reject", reason=decision.reason, limit=decision.limit)
        ctx.rate_reason = decision.reason
        if decision.reason == "backend_unavailable":
            return _unavailable(
                "the rate-limit store (limits fail closed)", "rate_limit_store_unavailable"
            )
        return Rejection(
            429,
            "rate_limited",
            {
                "error": f"rate limit {decision.limit} reached for this {who}; retry after "
                f"{decision.retry_after_header} s",
                "reason": decision.reason,
                "retry_after": int(decision.retry_after_header),
            },
            {"Retry-After": decision.retry_after_header},
            reason=decision.reason,
        )


class ClientLimit(_LimitStep):
    """The per-client rate limit (``[limits] per_client``)."""

    name = "client_limit"

    async def run(self, ctx: RequestContext) -> Rejection | None:
        """Count the request against the client's allowance."""
        if ctx.client is None or not self.limiter.client_items:
            return None
        return self._outcome(ctx, await self.limiter.hit(ctx.client.name, None), "client")


class Validate(Guard):
    """The contract's rules on the features, plus the body-shape errors of :class:`ParseBody`.

    With a :class:`~tabguard.serving._compiled.CompiledRecord`, an ordinary valid record is
    accepted in one pass and its raw encoding kept for the next steps; any other record goes
    through the :class:`~tabguard.contract.RecordValidator`, which names every error.
    """

    name = "validate"

    def __init__(self, validator: RecordValidator, compiled: CompiledRecord | None = None) -> None:
        self.validator = validator
        self.compiled = compiled

    async def run(self, ctx: RequestContext) -> Rejection | None:
        """Reject with 422 (413 for an oversized body) listing every error."""
        if self.compiled is not None and not ctx.shape_errors and ctx.features is not None:
            vector = self.compiled.encode(ctx.features)
            if vector is not None:
                ctx.vector = vector
                return None
        errors = list(ctx.shape_errors)
        if ctx.features is not None:
            errors += self.validator.errors(ctx.features)
        if not errors:
            return None
        ctx.errors = [e.to_dict() for e in errors]
        ctx.act(self.name, "reject", rules=sorted({e.rule for e in errors})[:10])
        http = 413 if any(e.rule == "max_size" and e.field == "body" for e in errors) else 422
        return Rejection(http, "rejected_validation", {"errors": ctx.errors}, reason="validation")


class SubjectLimit(_LimitStep):
    """The per-subject rate limit (``[limits] per_subject``), for valid requests."""

    name = "subject_limit"

    async def run(self, ctx: RequestContext) -> Rejection | None:
        """Count the request against the subject's allowance."""
        if ctx.subject_id is None or not self.limiter.subject_items:
            return None
        return self._outcome(ctx, await self.limiter.hit(None, ctx.subject_id), "subject")


@dataclass
class Models:
    """What can score: the fast main and fallback scorers and the rule policy."""

    version: str
    main: FastScorer
    fallback: FastScorer | None
    rules: RulePolicy

    def pick(self, flag: str) -> tuple[str, FastScorer | None]:
        """The scorer the ``model`` flag selects (rules when the fallback is missing)."""
        if flag == "fallback":
            return ("fallback", self.fallback) if self.fallback is not None else ("rules", None)
        if flag == "rules":
            return "rules", None
        return "main", self.main


class Sanitise(Guard):
    """The model's contract transform: clip, neutral values, coarse bins, encoding.

    ``compiled`` maps a transform (by ``id``) to its
    :class:`~tabguard.serving._compiled.CompiledTransform`, used when the validate step kept
    the record's raw encoding; otherwise :meth:`FeatureTransform.transform_record` runs.
    """

    name = "sanitise"

    def __init__(
        self, models: Models, compiled: Mapping[int, CompiledTransform] | None = None
    ) -> None:
        self.models = models
        self.compiled = dict(compiled or {})

    async def run(self, ctx: RequestContext) -> Rejection | None:
        """Pick the scorer from the ``model`` flag and transform the features."""
        if ctx.features is None:
            return None
        wanted = ctx.flags.flags.model
        ctx.scorer, ctx.fast = self.models.pick(wanted)
        if ctx.scorer != wanted:
            ctx.act("model", "unavailable", scorer=wanted, using=ctx.scorer)
        neutralize = ctx.flags.flags.neutralize
        transform = (ctx.fast or self.models.main).scorer.transform
        compiled = self.compiled.get(id(transform)) if ctx.vector is not None else None
        guarded: dict[str, Any] | None = None
        if compiled is not None and ctx.vector is not None:
            row, steps = compiled.apply(ctx.vector, neutralize)
            guarded = compiled.features(row[0])
        else:
            row, steps = transform.transform_record(ctx.features, neutralize)
        ctx.row = row
        ctx.guarded = guarded if guarded is not None else guarded_features(transform, row[0])
        for item in steps:
            action, _, name = item.partition(":")
            change = {"field": name, "from": ctx.features.get(name), "to": ctx.guarded.get(name)}
            ctx.act(self.name, action, **change)
        for name in neutralize:
            spec = transform.contract.features.get(name)
            if spec is None or spec.neutral is None:
                ctx.act(
                    self.name,
                    "neutralize_skipped",
                    field=name,
                    reason="not a feature of the contract"
                    if spec is None
                    else "the contract declares no neutral value",
                )
        return None


def guarded_features(transform: FeatureTransform, row: np.ndarray) -> dict[str, Any]:
    """The model input in raw units (category indices back to categories) for the log."""
    out: dict[str, Any] = {}
    for name, value in zip(transform.feature_names, row.tolist(), strict=True):
        spec = transform.contract.features[name]
        if spec.type in ("category", "boolean") and not math.isnan(value):
            out[name] = transform.decode(name, value)
        else:
            out[name] = None if math.isnan(value) else value
    return out


class Score(Guard):
    """The fast scoring path, or the rule policy (``model = rules``)."""

    name = "score"

    def __init__(self, models: Models, neutral: Mapping[str, Any]) -> None:
        self.models = models
        self.neutral = neutral

    async def run(self, ctx: RequestContext) -> Rejection | None:
        """Set ``score`` (and the decision, for rules) and ``model_version``."""
        if ctx.features is None:
            return None
        if ctx.scorer == "rules" or ctx.fast is None:
            record = dict(ctx.features)
            for name in ctx.flags.flags.neutralize:
                if self.neutral.get(name) is not None:
                    record[name] = self.neutral[name]
            outcome = self.models.rules.decide(record)
            ctx.score, ctx.decision = outcome.score, outcome.decision
            ctx.model_version = self.models.rules.version
            ctx.act("model", "rules", rule=outcome.rule)
            return None
        if ctx.row is None:
            return None
        score = ctx.fast.score_row(ctx.row[0])
        if not math.isfinite(score):
            raise ValueError(f"the {ctx.scorer} scorer returned a non-finite score {score!r}")
        ctx.score = score
        ctx.model_version = self.models.version
        if ctx.scorer == "fallback":
            ctx.act("model", "fallback")
        return None


class Decide(Guard):
    """The decision layer: threshold from the flag or the model, review band."""

    name = "decide"

    def __init__(self, policy: DecisionPolicy) -> None:
        self.policy = policy

    async def run(self, ctx: RequestContext) -> Rejection | None:
        """Set ``threshold`` and ``decision`` (the rule policy decides by itself)."""
        if ctx.decision is not None or ctx.score is None:
            return None
        ctx.threshold = self.policy.threshold(ctx.flags.flags.threshold)
        ctx.decision = self.policy.decide(ctx.score, ctx.threshold)
        return None


class DetectProbing(Guard):
    """Per-client probing signals (S6) and the configured action for flagged clients."""

    name = "probing"

    def __init__(self, detector: ProbingDetector, throttle: AsyncRateLimiter | None = None) -> None:
        self.detector = detector
        self.throttle = throttle
        self.action = detector.config.action

    async def run(self, ctx: RequestContext) -> Rejection | None:
        """Observe the query; flag, throttle or override a flagged client's decision."""
        if ctx.client is None or ctx.features is None or ctx.decision is None:
            return None
        vector = ctx.vector if ctx.vector is not None else self.detector.encode(ctx.features)
        result = await self.detector.observe(
            ctx.client.name,
            ctx.subject_id,
            vector,
            ctx.score,
            ctx.threshold,
            now=ctx.now,
            ignore=ctx.flags.flags.neutralize,
        )
        if not result.available:
            ctx.act(self.name, "unavailable", reason="probing_store_unavailable")
            return None
        ctx.probing = list(result.signals)
        if not result.flagged:
            return None
        ctx.probing.append("client_flagged")
        reasons = list(result.reasons)
        if self.action == "throttle" and self.throttle is not None:
            decision = await self.throttle.hit(ctx.client.name, None)
            if not decision.allowed:
                ctx.act(self.name, "throttle", reasons=reasons)
                if decision.reason == "backend_unavailable":
                    return _unavailable(
                        "the rate-limit store (limits fail closed)", "rate_limit_store_unavailable"
                    )
                ctx.rate_reason = "probing_throttle"
                return Rejection(
                    429,
                    "probing_throttled",
                    {
                        "error": "too many similar requests from this client; retry after "
                        f"{decision.retry_after_header} s",
                        "reason": "probing_throttle",
                        "retry_after": int(decision.retry_after_header),
                    },
                    {"Retry-After": decision.retry_after_header},
                    reason="probing_throttle",
                )
            ctx.act(self.name, "flag", reasons=reasons)
            return None
        if self.action in ("review", "deny"):
            new = _override(ctx.decision, self.action)
            if new != ctx.decision:
                change = {"from": ctx.decision, "to": new}
                ctx.act(self.name, "override", reasons=reasons, **change)
                ctx.decision = new
                return None
        ctx.act(self.name, "flag", reasons=reasons)
        return None


def _override(decision: str, action: str) -> str:
    if action == "deny":
        return "deny"
    return "review" if decision == "approve" else decision


class Respond(Guard):
    """The answer: 200 with the decision, or 202 when decisions are delayed."""

    name = "respond"

    def __init__(self, delayed: DelayedDecisions, default_delay: float = 0.0) -> None:
        self.delayed = delayed
        self.default_delay = default_delay

    async def run(self, ctx: RequestContext) -> Rejection | None:
        """Build the response and remember the decision for ``GET /v1/decisions/{id}``."""
        if ctx.decision is None:
            raise RuntimeError("the pipeline reached respond without a decision")
        delay = ctx.flags.flags.delay or self.default_delay
        if delay > 0:
            ctx.available_at = ctx.timestamp + timedelta(seconds=delay)
            ctx.status = "delayed"
            ctx.http_status = 202
            ctx.response = {
                "decision_id": ctx.decision_id,
                "available_at": ctx.available_at.isoformat(),
            }
        else:
            ctx.response = {
                "decision_id": ctx.decision_id,
                "decision": ctx.decision,
                "model_version": ctx.model_version,
            }
            if ctx.include_score and ctx.score is not None:
                ctx.response["score"] = ctx.score
        self.delayed.remember(
            StoredDecision(
                decision_id=ctx.decision_id,
                client=ctx.client.name if ctx.client else None,
                decision=ctx.decision,
                model_version=ctx.model_version,
                score=ctx.score,
                available_at=ctx.available_at,
            )
        )
        return None


# --------------------------------------------------------------------------------------------
# The pipeline


class GuardPipeline:
    """Run the steps in order, then log and count the request whatever happened.

    Parameters
    ----------
    steps : sequence of Guard
        In order; the first :class:`Rejection` stops the request.
    log : PredictionLog, optional
        Where every request's record goes.
    metrics : ServiceMetrics, optional
    segment_features : sequence of str
        Category features whose values label the request metrics (``contract.segments``).
    refusals : RefusalSummary, optional
        Where requests refused for want of a valid key go instead of one record each (a
        bounded summary per source and minute); without it they are logged one by one.
    segment_labels : SegmentLabels, optional
        The bounded segment labels of ``tabguard_decisions_total`` and ``tabguard_score``.
    """

    def __init__(
        self,
        steps: Sequence[Guard],
        log: PredictionLog | None = None,
        metrics: ServiceMetrics | None = None,
        segment_features: Sequence[str] = (),
        refusals: RefusalSummary | None = None,
        segment_labels: SegmentLabels | None = None,
    ) -> None:
        self.steps = list(steps)
        self.segment_labels = segment_labels
        self.log = log
        self.metrics = metrics
        self.segment_features = list(segment_features)
        self.refusals = refusals
        self.log_errors = 0
        # Logs that take stored rows get them built directly (no record model per request).
        self._append_row = getattr(log, "append_row", None)
        self._flags_json: tuple[Any, str] | None = None
        self._segments: dict[tuple[Any, ...], str] = {}

    async def run(self, ctx: RequestContext) -> RequestContext:
        """Run every step; the context holds the response and was logged."""
        try:
            for step in self.steps:
                rejection = await step.run(ctx)
                if rejection is not None:
                    ctx.status = rejection.status
                    ctx.http_status = rejection.http_status
                    ctx.response = {**rejection.body, "decision_id": ctx.decision_id}
                    ctx.headers = dict(rejection.headers)
                    if not ctx.errors:
                        ctx.errors = [
                            {"rule": rejection.reason, "message": rejection.body.get("error")}
                        ]
                    ctx.decision = None  # not communicated (the score, if any, is logged)
                    break
        except Exception as exc:  # a bug must still answer, and be logged
            log.exception("decision %s: internal error", ctx.decision_id)
            ctx.status, ctx.http_status = "error", 500
            ctx.response = {
                "error": "internal error; the request was logged",
                "decision_id": ctx.decision_id,
            }
            ctx.errors = [{"rule": "internal_error", "message": f"{type(exc).__name__}: {exc}"}]
            ctx.headers = {}
        finally:
            self.finish(ctx)
        return ctx

    def finish(self, ctx: RequestContext) -> None:
        """Log the request and update the metrics (never raises)."""
        latency = time.perf_counter() - ctx.started
        try:
            if self.refusals is not None and ctx.auth_failure is not None:
                self._summarise(ctx, latency)
            elif self._append_row is not None:
                self._append_row(self.row(ctx, latency))
            else:
                record = self.record(ctx, latency)
                if self.log is not None:
                    self.log.append(record)
        except Exception:
            self.log_errors += 1
            log.exception("decision %s: could not hand the record to the log", ctx.decision_id)
        if self.metrics is not None:
            try:
                self._count(ctx, latency)
            except Exception:
                log.exception("decision %s: metrics update failed", ctx.decision_id)

    def _summarise(self, ctx: RequestContext, latency: float) -> None:
        if self.refusals is None or ctx.auth_failure is None:
            return
        parts = split_key(bearer_token(ctx.authorization) or "")
        self.refusals.add(
            source=ctx.source,
            at=ctx.timestamp,
            status=ctx.status,
            reason=ctx.auth_failure,
            message=str(ctx.response.get("error", "")),
            key_id=parts[0] if parts is not None else None,
            body=ctx.body,
            flags=ctx.flags,
            latency_ms=latency * 1000.0,
        )

    def row(self, ctx: RequestContext, latency: float) -> dict[str, Any]:
        """The stored row of a finished request (``record_to_row(self.record(...))``)."""
        snap = ctx.flags
        cached = self._flags_json
        if cached is None or cached[0] is not snap:
            cached = self._flags_json = (
                snap,
                dumps_json({**snap.flags.to_dict(), "version": snap.version}),
            )
        return build_row(
            decision_id=ctx.decision_id,
            timestamp=ctx.timestamp,
            client=ctx.client.name if ctx.client else None,
            subject_id=ctx.subject_id
            if ctx.subject_id is not None
            else _raw_subject(ctx.raw, ctx.features),
            raw=ctx.raw if ctx.raw is not None else {"_body": _text(ctx.body)},
            features=ctx.guarded,
            guard_actions=ctx.actions,
            flags_json=cached[1],
            model_name=ctx.scorer,
            model_version=ctx.model_version,
            score=ctx.score,
            decision=ctx.decision,
            status=ctx.status,
            errors=ctx.errors,
            segment=ctx.segment,
            probing=ctx.probing,
            latency_ms=latency * 1000.0,
            available_at=ctx.available_at,
        )

    def record(self, ctx: RequestContext, latency: float) -> PredictionRecord:
        """The prediction-log record of a finished request."""
        snap = ctx.flags
        return PredictionRecord.model_construct(
            decision_id=ctx.decision_id,
            timestamp=ctx.timestamp,
            client=ctx.client.name if ctx.client else None,
            subject_id=ctx.subject_id
            if ctx.subject_id is not None
            else _raw_subject(ctx.raw, ctx.features),
            raw=ctx.raw if ctx.raw is not None else {"_body": _text(ctx.body)},
            features=ctx.guarded,
            guard_actions=ctx.actions,
            flags={**snap.flags.to_dict(), "version": snap.version},
            model_name=ctx.scorer,
            model_version=ctx.model_version,
            score=ctx.score,
            decision=ctx.decision,  # type: ignore[arg-type]  # set only from Decision values
            status=ctx.status,
            errors=ctx.errors,
            segment=ctx.segment,
            probing=ctx.probing,
            latency_ms=latency * 1000.0,
            available_at=ctx.available_at,
        )

    def _count(self, ctx: RequestContext, latency: float) -> None:
        m = self.metrics
        if m is None:
            return
        inc = m.inc
        segment = ""
        features = ctx.features
        if features is not None and ctx.status in ("accepted", "delayed"):
            segment = self._segment_text(features)
        labels = (
            self.segment_labels.labels(features, ctx.segment)
            if self.segment_labels is not None
            else None
        )
        m.count_request(ctx.status, ctx.decision or "none", segment, labels, ctx.score, latency)
        for action in ctx.actions:
            inc(m.guard_actions, action["step"], action["action"])
            reason = action.get("reason")
            if action["action"] in ("fail_open", "unavailable") or reason in (
                "key_store_unavailable",
                "rate_limit_store_unavailable",
                "backend_unavailable",
            ):
                m.backend_errors.labels(_backend_of(action)).inc()
        if ctx.rate_reason is not None:
            m.rate_limit_denials.labels(ctx.rate_reason).inc()
        for signal in ctx.probing:
            if signal == "client_flagged":
                m.probing_flagged.labels(_flag_action(ctx)).inc()
            else:
                m.probing_signals.labels(signal).inc()

    def _segment_text(self, features: dict[str, Any]) -> str:
        """``"EDUCATION=2,MARRIAGE=1"``: the ``segment`` label of ``tabguard_requests``."""
        values = [features.get(n) for n in self.segment_features]
        try:
            key = tuple((type(v), v) for v in values)
            found = self._segments.get(key)
        except TypeError:  # an unhashable value
            key, found = None, None
        if found is None:
            found = ",".join(f"{n}={v}" for n, v in zip(self.segment_features, values, strict=True))
            if key is not None:
                if len(self._segments) > 4096:
                    self._segments.clear()
                self._segments[key] = found
        return found


def _backend_of(action: Mapping[str, Any]) -> str:
    step = action.get("step")
    if step in ("client_limit", "subject_limit"):
        return "limits"
    if step == "authenticate":
        return "keys"
    return str(step)


def _flag_action(ctx: RequestContext) -> str:
    for action in reversed(ctx.actions):
        if action["step"] == "probing":
            return str(action["action"])
    return "flag"


def _raw_subject(raw: Any, features: Any) -> str | None:
    if isinstance(raw, dict) and features is None:
        subject = raw.get("subject_id")
        if isinstance(subject, str):
            return subject[:_SUBJECT_MAX]
    return None
