"""Each guard alone, the pipeline's logging guarantees, and hypothesis properties."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tabguard.contract import RecordValidator
from tabguard.datasets import credit_default_contract
from tabguard.errors import BackendUnavailableError
from tabguard.flags import Flags, FlagSnapshot, MemoryFlagStore
from tabguard.serving import (
    Authenticate,
    ClientLimit,
    Decide,
    DecisionPolicy,
    DelayedDecisions,
    DetectProbing,
    FlowGate,
    GuardPipeline,
    KeyCache,
    MemoryKeyStore,
    Models,
    ParseBody,
    ProbingConfig,
    ProbingDetector,
    RequestContext,
    Respond,
    RulePolicy,
    Sanitise,
    Score,
    SubjectLimit,
    Validate,
    compile_scorer,
    random_records,
)
from tabguard.serving._limits import AsyncRateLimiter
from tabguard.training import ModelBundle

CONTRACT = credit_default_contract()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def ctx_of(body: Any = None, auth: str | None = None, **flags: Any) -> RequestContext:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return RequestContext.new(auth, raw, FlagSnapshot(Flags(**flags), 1))


def parsed(body: Any, **flags: Any) -> RequestContext:
    ctx = ctx_of(body, **flags)
    assert run(ParseBody().run(ctx)) is None
    return ctx


@pytest.fixture(scope="module")
def models(bundle: ModelBundle) -> Models:
    return Models(
        bundle.version,
        compile_scorer(bundle.main),
        compile_scorer(bundle.fallback),  # type: ignore[arg-type]
        RulePolicy(CONTRACT),
    )


@pytest.fixture
def record(sample_records: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(sample_records[0])


# ---- authenticate ------------------------------------------------------------------------------


def test_authenticate() -> None:
    store = MemoryKeyStore()
    key = store.create("bank-a", "decide,score")[1]
    reader = store.create("reader", "score")[1]
    guard = Authenticate(KeyCache(store))
    ok = ctx_of({}, auth=f"Bearer {key}")
    assert run(guard.run(ok)) is None
    assert ok.client is not None and ok.client.name == "bank-a" and ok.include_score
    for auth, code, reason in [
        (None, 401, "missing_key"),
        ("Token abc", 401, "malformed_header"),
        ("Bearer tg_aaaaaaaaaaaa_x", 401, "invalid_key"),
        (f"Bearer {reader}", 403, "missing_scope"),
    ]:
        c = ctx_of({}, auth=auth)
        rejection = run(guard.run(c))
        assert (rejection.http_status, rejection.reason) == (code, reason)
        assert c.client is None and c.actions[-1]["action"] == "reject"


def test_authenticate_backend_down_is_503() -> None:
    class Down(MemoryKeyStore):
        def verify(self, key: str) -> None:
            raise BackendUnavailableError("down")

    rejection = run(Authenticate(KeyCache(Down())).run(ctx_of({}, auth="Bearer tg_x")))
    assert (rejection.http_status, rejection.status) == (503, "unavailable")


# ---- flow --------------------------------------------------------------------------------------


def test_flow_gate() -> None:
    assert run(FlowGate().run(ctx_of({}))) is None
    rejection = run(FlowGate().run(ctx_of({}, flow="disabled")))
    assert (rejection.http_status, rejection.status) == (503, "flow_disabled")


# ---- parse -------------------------------------------------------------------------------------


def test_parse_fills_the_context(record: dict[str, Any]) -> None:
    ctx = parsed({"subject_id": "c1", "features": record, "segment": {"channel": "web"}})
    assert ctx.shape_errors == []
    assert (ctx.subject_id, ctx.features, ctx.segment) == ("c1", record, {"channel": "web"})
    assert ctx.raw == record


def test_parse_never_raises_and_keeps_the_raw_body() -> None:
    ctx = ctx_of(b"\x00\xff garbage")
    assert run(ParseBody().run(ctx)) is None
    assert ctx.shape_errors[0].rule == "json"
    assert "_body" in ctx.raw and ctx.features is None


def test_parse_marks_oversized_bodies_naming_the_configured_limit() -> None:
    ctx = RequestContext.new(None, b"{", FlagSnapshot(Flags(), 0), too_large=True)
    run(ParseBody(2048).run(ctx))
    assert ctx.shape_errors[0].rule == "max_size"
    assert "at most 2048 bytes ([server] max_body_bytes)" in ctx.shape_errors[0].message


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"subject_id": "a", "features": {"AGE": 30, "AGE": 999}}', "AGE"),
        (b'{"subject_id": "a", "subject_id": "b", "features": {}}', "subject_id"),
        (b'{"subject_id": "a", "features": {}, "segment": {"c": 1, "c": 2}}', "c"),
    ],
)
def test_parse_refuses_duplicate_keys_naming_the_key(body: bytes, key: str) -> None:
    ctx = ctx_of(body)
    run(ParseBody().run(ctx))
    [error] = ctx.shape_errors
    assert (error.field, error.rule) == (key, "duplicate_key")
    assert repr(key) in error.message and ctx.features is None
    assert ctx.raw == {"_body": body.decode()}  # logged as received, both values


@pytest.mark.parametrize(
    ("value", "rule"),
    [("1" + "0" * 400, "type"), ("-" + "9" * 400, "type"), ("1e400", "type"), ("-1e999", "type")],
)
def test_numbers_beyond_float_range_are_a_422_naming_field_and_rule(
    record: dict[str, Any], value: str, rule: str
) -> None:
    text = json.dumps({"subject_id": "c", "features": {**record, "AGE": 0}})
    ctx = ctx_of(text.replace('"AGE": 0', f'"AGE": {value}').encode())
    run(ParseBody().run(ctx))
    rejection = run(Validate(RecordValidator(CONTRACT)).run(ctx))
    assert rejection is not None and rejection.http_status == 422
    [error] = ctx.errors
    assert (error["field"], error["rule"]) == ("AGE", rule)
    assert len(json.dumps(error)) < 400  # a 400-digit value is not echoed in full


# ---- limits ------------------------------------------------------------------------------------


def test_client_and_subject_limits(record: dict[str, Any]) -> None:
    limiter = AsyncRateLimiter(per_client="2/minute", per_subject="1/minute")
    from tabguard.serving import ApiClient

    client = ApiClient("bank-a", frozenset({"decide"}), "k")

    async def go() -> list[Any]:
        out = []
        for subject in ("a", "a", "b"):
            c = ctx_of({"subject_id": subject, "features": record})
            await ParseBody().run(c)
            c.client = client
            out.append(await ClientLimit(limiter).run(c) or await SubjectLimit(limiter).run(c))
        return out

    first, second, third = run(go())
    assert first is None
    assert (second.http_status, second.reason) == (429, "subject_limit")
    assert (third.http_status, third.reason) == (429, "client_limit")
    assert second.headers["Retry-After"].isdigit()


def test_limits_fail_open_marks_the_request() -> None:
    from tabguard.serving import ApiClient
    from tests.serving._tcp_proxy import closed_port

    limiter = AsyncRateLimiter(
        per_client="5/second",
        storage=f"redis://127.0.0.1:{closed_port()}/0",
        on_backend_error="fail_open",
        timeout=0.2,
    )
    c = parsed({"subject_id": "s", "features": {}})
    c.client = ApiClient("bank-a", frozenset({"decide"}), "k")
    assert run(ClientLimit(limiter).run(c)) is None
    assert c.actions == [
        {"step": "client_limit", "action": "fail_open", "reason": "backend_unavailable"}
    ]


# ---- validate ----------------------------------------------------------------------------------


def test_validate(record: dict[str, Any]) -> None:
    guard = Validate(RecordValidator(CONTRACT))
    assert run(guard.run(parsed({"subject_id": "c", "features": record}))) is None
    bad = parsed({"subject_id": 3, "features": {**record, "AGE": 17}})
    rejection = run(guard.run(bad))
    assert rejection.http_status == 422
    assert {(e["field"], e["rule"]) for e in rejection.body["errors"]} == {
        ("subject_id", "type"),
        ("AGE", "min"),
    }


# ---- sanitise, score, decide -------------------------------------------------------------------


def test_sanitise_clips_bins_and_neutralises(models: Models, record: dict[str, Any]) -> None:
    ctx = parsed(
        {"subject_id": "c", "features": {**record, "AGE": 120}}, neutralize=("PAY_AMT2", "NOPE")
    )
    assert run(Sanitise(models).run(ctx)) is None
    assert ctx.scorer == "main" and ctx.guarded["AGE"] == 80
    assert ctx.guarded["PAY_AMT2"] == CONTRACT.features["PAY_AMT2"].neutral
    kinds = {(a["action"], a.get("field")) for a in ctx.actions}
    assert {("clip", "AGE"), ("neutralize", "PAY_AMT2"), ("neutralize_skipped", "NOPE")} <= kinds
    clip = next(a for a in ctx.actions if a["action"] == "clip")
    assert (clip["from"], clip["to"]) == (120, 80)


def test_sanitise_picks_the_scorer(models: Models, record: dict[str, Any]) -> None:
    fb = parsed({"subject_id": "c", "features": record}, model="fallback")
    run(Sanitise(models).run(fb))
    assert fb.scorer == "fallback" and "AGE" not in fb.guarded  # gameable features dropped
    no_fallback = Models(models.version, models.main, None, models.rules)
    c = parsed({"subject_id": "c", "features": record}, model="fallback")
    run(Sanitise(no_fallback).run(c))
    assert c.scorer == "rules" and c.actions[0]["action"] == "unavailable"


def test_score_and_decide(models: Models, bundle: ModelBundle, record: dict[str, Any]) -> None:
    ctx = parsed({"subject_id": "c", "features": record}, threshold=0.0)
    run(Sanitise(models).run(ctx))
    run(Score(models, {}).run(ctx))
    assert ctx.score == pytest.approx(bundle.main.score_record(record)[0], abs=1e-12)
    policy = DecisionPolicy.from_contract(CONTRACT.decision, bundle.threshold)
    run(Decide(policy).run(ctx))
    assert (ctx.threshold, ctx.decision) == (0.0, "deny")
    rules = parsed({"subject_id": "c", "features": record}, model="rules")
    run(Sanitise(models).run(rules))
    run(Score(models, {}).run(rules))
    run(Decide(policy).run(rules))
    assert rules.decision == "review" and rules.model_version.startswith("rules/")


def test_decision_policy_band_moves_with_the_threshold() -> None:
    p = DecisionPolicy(0.5, "deny", (0.4, 0.5), 0.5)
    assert [p.decide(s) for s in (0.39, 0.4, 0.49, 0.5)] == ["approve", "review", "review", "deny"]
    assert p.band(0.3) == pytest.approx((0.2, 0.3))
    assert p.decide(0.25, 0.3) == "review" and p.decide(0.31, 0.3) == "deny"
    approve = DecisionPolicy(0.7, "approve")
    assert (approve.decide(0.8), approve.decide(0.2)) == ("approve", "deny")


# ---- probing and respond -----------------------------------------------------------------------


def test_detect_probing_overrides_a_flagged_clients_decision(record: dict[str, Any]) -> None:
    from tabguard.serving import ApiClient

    detector = ProbingDetector(CONTRACT, ProbingConfig(action="review", walk_min=2))
    guard = DetectProbing(detector)
    client = ApiClient("bank-a", frozenset({"decide"}), "k")
    decisions = []
    for limit in (10000, 20000, 30000):  # LIMIT_BAL is not gameable: a pure walk
        ctx = parsed({"subject_id": "c", "features": {**record, "LIMIT_BAL": limit}})
        ctx.client, ctx.decision, ctx.score, ctx.threshold = client, "approve", 0.1, 0.5
        run(guard.run(ctx))
        decisions.append((ctx.decision, tuple(ctx.probing)))
    # the second query is one walk step; the third is the second step: walk_min reached
    assert decisions[0] == ("approve", ())
    assert decisions[1] == ("approve", ("feature_walk",))
    assert decisions[2] == ("review", ("feature_walk", "client_flagged"))


def test_respond_200_and_202(record: dict[str, Any]) -> None:
    delayed = DelayedDecisions()
    ctx = parsed({"subject_id": "c", "features": record})
    ctx.decision, ctx.model_version, ctx.score = "approve", "m/1", 0.2
    run(Respond(delayed).run(ctx))
    assert ctx.http_status == 200 and "score" not in ctx.response
    late = parsed({"subject_id": "c", "features": record})
    late.decision, late.model_version = "deny", "m/1"
    run(Respond(delayed, default_delay=60).run(late))
    assert late.http_status == 202 and late.status == "delayed"
    assert set(late.response) == {"decision_id", "available_at"}
    item = run(delayed.lookup(late.decision_id, client=None))  # type: ignore[arg-type]
    assert item is not None and not DelayedDecisions.is_available(item)


# ---- the pipeline ------------------------------------------------------------------------------


class ListLog:
    """A prediction log that keeps records in a list."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def append(self, record: Any) -> None:
        self.records.append(record)


def pipeline_of(models: Models, bundle: ModelBundle, log: ListLog) -> tuple[GuardPipeline, str]:
    store = MemoryKeyStore()
    key = store.create("bank-a", "decide,score")[1]
    limiter = AsyncRateLimiter(per_client=None, per_subject="1000/second")
    steps = [
        Authenticate(KeyCache(store)),
        FlowGate(),
        ParseBody(),
        ClientLimit(limiter),
        Validate(RecordValidator(CONTRACT)),
        SubjectLimit(limiter),
        Sanitise(models),
        Score(models, {}),
        Decide(DecisionPolicy.from_contract(CONTRACT.decision, bundle.threshold)),
        DetectProbing(ProbingDetector(CONTRACT, ProbingConfig(action="flag"))),
        Respond(DelayedDecisions()),
    ]
    return GuardPipeline(steps, log, None), key  # type: ignore[arg-type]


def test_a_cancelled_request_is_still_logged(
    models: Models, bundle: ModelBundle, record: dict[str, Any]
) -> None:
    log = ListLog()
    pipe, key = pipeline_of(models, bundle, log)

    class Slow(FlowGate):
        async def run(self, ctx: RequestContext) -> None:
            await asyncio.sleep(10)

    pipe.steps.insert(1, Slow())

    async def go() -> None:
        ctx = ctx_of({"subject_id": "c", "features": record}, auth=f"Bearer {key}")
        task = asyncio.create_task(pipe.run(ctx))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(go())
    assert len(log.records) == 1 and log.records[0].client == "bank-a"


#: Integers beyond float range (``10**400``, big negatives): JSON allows them, float() cannot.
huge_integers = st.integers(min_value=2**1024, max_value=10**600) | st.integers(
    min_value=-(10**600), max_value=-(2**1024)
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | huge_integers
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
FEATURES = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(CONTRACT.features, json_values),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"subject_id": json_values, "features": st.one_of(FEATURES, json_values)},
            optional={"segment": json_values, "other": json_values},
        ),
    )
)
def test_any_json_body_never_gives_500_and_is_always_logged(
    models: Models, bundle: ModelBundle, body: Any
) -> None:
    log = ListLog()
    pipe, key = pipeline_of(models, bundle, log)
    ctx = run(pipe.run(ctx_of(body, auth=f"Bearer {key}")))
    assert ctx.http_status in (200, 422), ctx.response
    assert len(log.records) == 1
    json.dumps(ctx.response, allow_nan=False)  # the body is always valid JSON


def _bounds(name: str) -> tuple[float, float]:
    spec = CONTRACT.features[name]
    lo, hi = spec.clip if spec.clip is not None else (spec.min, spec.max)
    return (-math.inf if lo is None else lo), (math.inf if hi is None else hi)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    extremes=st.dictionaries(
        st.sampled_from([*CONTRACT.gameable_features(), "LIMIT_BAL", "BILL_AMT1"]),
        st.sampled_from(["min", "max"]),
    ),
    neutralize=st.lists(st.sampled_from(list(CONTRACT.features)), max_size=3),
)
def test_sanitised_features_always_lie_inside_the_clip_ranges(
    models: Models, seed: int, extremes: dict[str, str], neutralize: list[str]
) -> None:
    record = random_records(CONTRACT, 1, seed=seed)[0]
    for name, side in extremes.items():
        spec = CONTRACT.features[name]
        record[name] = spec.min if side == "min" else spec.max
        if spec.type == "integer":
            record[name] = int(record[name])
    ctx = parsed({"subject_id": "c", "features": record}, neutralize=tuple(neutralize))
    assert run(Validate(RecordValidator(CONTRACT)).run(ctx)) is None
    run(Sanitise(models).run(ctx))
    for name, value in ctx.guarded.items():
        spec = CONTRACT.features[name]
        if spec.is_numeric:
            lo, hi = _bounds(name)
            assert lo <= value <= hi, (name, value)
        if name in neutralize and spec.neutral is not None:
            assert value == spec.neutral


def test_flag_store_feeds_the_watcher_snapshot() -> None:
    """The snapshot the pipeline reads is what the store holds (sanity of the fixture path)."""
    from tabguard.flags import FlagWatcher

    store = MemoryFlagStore()
    store.set("threshold", "0.3", actor="t")
    assert FlagWatcher(store, interval=0).current().flags.threshold == 0.3


class RowLog(ListLog):
    """A log that takes stored rows, as :class:`PredictionLog` does."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []

    def append_row(self, row: dict[str, Any]) -> None:
        self.rows.append(row)


def test_rows_built_on_the_request_path_equal_the_record_rows(
    models: Models, bundle: ModelBundle, record: dict[str, Any]
) -> None:
    from tabguard.serving import record_to_row

    log = RowLog()
    pipe, key = pipeline_of(models, bundle, log)
    bodies = [
        {"subject_id": "ok", "features": record},
        {"subject_id": "bad", "features": {**record, "AGE": 999}},
        {"subject_id": "odd", "features": {**record, "AGE": 80.0}, "segment": {"ch": "web"}},
        {"subject_id": 7},
    ]
    contexts = [run(pipe.run(ctx_of(b, auth=f"Bearer {key}"))) for b in bodies]
    contexts.append(run(pipe.run(ctx_of({"subject_id": "x", "features": record}))))  # 401
    assert log.records == [] and len(log.rows) == len(contexts)  # rows, no record models
    assert [c.http_status for c in contexts] == [200, 422, 200, 422, 401]
    for ctx, row in zip(contexts, log.rows, strict=True):
        latency = row["latency_ms"] / 1000.0
        assert row == record_to_row(pipe.record(ctx, latency))
