"""The HTTP API: every status code, flags taken up without restart, every request logged."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tabguard.datasets import credit_default_contract
from tabguard.errors import BackendUnavailableError
from tabguard.flags import MemoryFlagStore
from tabguard.serving import MemoryKeyStore, ScoringService, create_app, load_config, open_keys
from tests.serving._tcp_proxy import closed_port
from tests.serving.conftest import Harness, body_of, write_config

Make = Callable[..., Harness]


@pytest.fixture
def h(harness_factory: Make) -> Harness:
    return harness_factory()


def test_200_decision_only_unless_the_key_has_the_score_scope(
    h: Harness, sample_records: list[dict[str, Any]]
) -> None:
    body = body_of(sample_records[0], segment={"channel": "web"})
    with_score = h.post(body)
    assert with_score.status_code == 200
    got = with_score.json()
    assert set(got) == {"decision_id", "decision", "model_version", "score"}
    assert got["decision"] in ("approve", "deny", "review")
    assert got["model_version"] == h.service.bundle.version
    expected = h.service.bundle.main.score_record(sample_records[0])[0]
    assert got["score"] == pytest.approx(expected, abs=1e-12)
    decision_only = h.post(body, key=h.decide_key)
    assert decision_only.status_code == 200
    assert set(decision_only.json()) == {"decision_id", "decision", "model_version"}


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        (None, "missing API key"),
        ("Basic dXNlcjpwdw==", "malformed"),
        ("Bearer", "malformed"),
        ("Bearer tg_000000000000_nope", "invalid or revoked"),
        ("Bearer not-a-key", "invalid or revoked"),
    ],
)
def test_401_for_missing_malformed_and_unknown_keys(
    h: Harness, sample_records: list[dict[str, Any]], header: str | None, needle: str
) -> None:
    headers = {"Authorization": header} if header else {}
    r = h.post(body_of(sample_records[0]), key=None, headers=headers)
    assert r.status_code == 401
    assert needle in r.json()["error"]
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_401_after_revocation(h: Harness, sample_records: list[dict[str, Any]]) -> None:
    h.service.keys.ttl = 0  # no cache: the revocation takes effect at once
    assert h.post(body_of(sample_records[0]), key=h.decide_key).status_code == 200
    h.keys.revoke("web-app")
    assert h.post(body_of(sample_records[0]), key=h.decide_key).status_code == 401


def test_403_without_the_decide_scope(h: Harness, sample_records: list[dict[str, Any]]) -> None:
    r = h.post(body_of(sample_records[0]), key=h.score_only_key)
    assert r.status_code == 403
    assert "'decide' scope" in r.json()["error"]
    # admin implies every scope
    assert h.post(body_of(sample_records[0]), key=h.admin_key).status_code == 200


def test_422_lists_every_contract_error(h: Harness, sample_records: list[dict[str, Any]]) -> None:
    rec = {**sample_records[0], "AGE": 999, "EDUCATION": 9, "LIMIT_BAL": "lots", "EXTRA": 1}
    del rec["PAY_0"]
    r = h.post(body_of(rec))
    assert r.status_code == 422
    errors = {(e["field"], e["rule"]) for e in r.json()["errors"]}
    assert errors == {
        ("AGE", "max"),
        ("EDUCATION", "category"),
        ("LIMIT_BAL", "type"),
        ("PAY_0", "required"),
        ("EXTRA", "unknown_field"),
    }
    age = next(e for e in r.json()["errors"] if e["field"] == "AGE")
    assert age["value"] == 999 and "[18, 125]" in age["message"]


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        (b"", "body", "required"),
        (b"{not json", "body", "json"),
        (b"\xff\xfe", "body", "json"),
        (b'{"subject_id": "a", "features": {"AGE": NaN}}', "body", "json"),
        (b"[1, 2]", "body", "type"),
        (b'{"features": {}}', "subject_id", "required"),
        (b'{"subject_id": 7, "features": {}}', "subject_id", "type"),
        (b'{"subject_id": " ", "features": {}}', "subject_id", "length"),
        (b'{"subject_id": "a"}', "features", "required"),
        (b'{"subject_id": "a", "features": [1]}', "features", "type"),
        (b'{"subject_id": "a", "features": {}, "segment": [1]}', "segment", "type"),
        (b'{"subject_id": "a", "features": {}, "segment": {"c": {"x": 1}}}', "segment.c", "type"),
        (b'{"subject_id": "a", "features": {}, "score": 0.1}', "score", "unknown_field"),
        (b"[" * 5000 + b"]" * 5000, "body", "json"),
    ],
)
def test_422_for_malformed_bodies(h: Harness, body: bytes, field: str, rule: str) -> None:
    r = h.post(body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert (field, rule) in {(e["field"], e["rule"]) for e in r.json()["errors"]}


def test_fastapi_validation_errors_use_the_same_shape(h: Harness) -> None:
    r = h.client.get("/v1/decisions/" + "x" * 65, headers={"Authorization": f"Bearer {h.key}"})
    assert r.status_code == 422
    (err,) = r.json()["errors"]
    assert set(err) == {"field", "rule", "value", "message"}
    assert err["field"] == "decision_id" and err["rule"] == "string_too_long"


def test_413_for_an_oversized_body(h: Harness) -> None:
    big = json.dumps({"subject_id": "a", "features": {"x": "y" * 200_000}})
    r = h.post(big)
    assert r.status_code == 413
    assert r.json()["errors"][0]["rule"] == "max_size"
    assert h.records()["status"].tolist() == ["rejected_validation"]


def test_413_names_the_configured_limit_not_the_default(
    harness_factory: Make, sample_records: list[dict[str, Any]]
) -> None:
    h = harness_factory("[server]\nmax_body_bytes = 3000\n")
    assert h.post(body_of(sample_records[0])).status_code == 200  # ~700 bytes: under it
    padded = json.dumps(body_of(sample_records[0])) + " " * 3000
    r = h.post(padded)
    assert r.status_code == 413
    [error] = r.json()["errors"]
    assert error["rule"] == "max_size"
    assert "3000 bytes ([server] max_body_bytes)" in error["message"], error
    assert "65536" not in r.text


def test_duplicate_json_keys_are_a_422_and_the_log_keeps_both_values(h: Harness) -> None:
    """A smuggling trick: parsers disagree on which of two values counts."""
    body = '{"subject_id": "dup-1", "features": {"AGE": 30, "AGE": 999}}'
    r = h.post(body)
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert (error["field"], error["rule"]) == ("AGE", "duplicate_key")
    [row] = h.records().to_dict("records")
    assert row["status"] == "rejected_validation"
    assert row["raw"] == {"_body": body}  # as received, both values


@pytest.mark.parametrize("value", ["1" + "0" * 400, "-" + "9" * 400, "1e400"])
def test_numbers_beyond_float_range_are_a_422_over_http(
    h: Harness, sample_records: list[dict[str, Any]], value: str
) -> None:
    text = json.dumps(body_of({**sample_records[0], "LIMIT_BAL": 0}))
    r = h.post(text.replace('"LIMIT_BAL": 0', f'"LIMIT_BAL": {value}'))
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert (error["field"], error["rule"]) == ("LIMIT_BAL", "type")
    assert len(r.content) < 1000  # the 400-digit value is not echoed in full


def test_429_per_client_with_retry_after(
    harness_factory: Make, sample_records: list[dict[str, Any]]
) -> None:
    h = harness_factory('[limits]\nper_client = "3/minute"\n')
    codes = [
        h.post(body_of(r, subject=f"s{i}")).status_code for i, r in enumerate(sample_records[:5])
    ]
    assert codes == [200, 200, 200, 429, 429]
    r = h.post(body_of(sample_records[0]))
    assert r.json()["reason"] == "client_limit"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    # another client has its own allowance
    assert h.post(body_of(sample_records[0]), key=h.decide_key).status_code == 200


def test_429_per_subject_counts_only_valid_requests(
    harness_factory: Make, sample_records: list[dict[str, Any]]
) -> None:
    h = harness_factory('[limits]\nper_client = "off"\nper_subject = "1/month"\n')
    bad = {**sample_records[0], "AGE": 5}
    assert h.post(body_of(bad, subject="cust-9")).status_code == 422  # a typo costs nothing
    assert h.post(body_of(sample_records[0], subject="cust-9")).status_code == 200
    r = h.post(body_of(sample_records[1], subject="cust-9"))
    assert r.status_code == 429 and r.json()["reason"] == "subject_limit"
    assert int(r.headers["Retry-After"]) > 27 * 86400
    assert h.post(body_of(sample_records[1], subject="cust-10")).status_code == 200


def test_503_when_the_flow_is_disabled_then_back_without_restart(
    h: Harness, sample_records: list[dict[str, Any]]
) -> None:
    h.set_flag("flow", "disabled")
    r = h.post(body_of(sample_records[0]))
    assert r.status_code == 503 and r.json()["reason"] == "flow_disabled"
    h.set_flag("flow", "enabled")
    assert h.post(body_of(sample_records[0])).status_code == 200


def test_flag_changes_are_picked_up_within_a_second(
    h: Harness, sample_records: list[dict[str, Any]]
) -> None:
    # No refresh() here: the service's own watcher thread must see the change.
    body = body_of(sample_records[0])
    assert h.post(body).json()["decision"] in ("approve", "deny", "review")
    h.flags.set("threshold", "0.0", actor="ops")  # everything is a positive: deny
    deadline = time.monotonic() + 1.0
    decisions = []
    while time.monotonic() < deadline:
        decisions.append(h.post(body).json()["decision"])
        if decisions[-1] == "deny":
            break
        time.sleep(0.05)
    assert decisions[-1] == "deny"


@pytest.mark.parametrize("policy", ["fail_closed", "fail_open"])
def test_redis_down_gives_the_configured_behaviour(
    harness_factory: Make, sample_records: list[dict[str, Any]], policy: str
) -> None:
    port = closed_port()
    h = harness_factory(
        f'[limits]\nper_client = "100/second"\nper_subject = "1/month"\n'
        f'storage = "redis://127.0.0.1:{port}/0"\non_backend_error = "{policy}"\ntimeout = 0.2\n'
    )
    r = h.post(body_of(sample_records[0]))
    if policy == "fail_closed":
        assert r.status_code == 503
        assert r.json()["reason"] == "rate_limit_store_unavailable"
        assert r.headers["Retry-After"] == "1"
    else:
        assert r.status_code == 200
    metrics = h.client.get("/metrics").text
    assert 'tabguard_backend_errors_total{backend="limits"}' in metrics
    rec = h.records().iloc[0]
    assert rec["status"] == ("unavailable" if policy == "fail_closed" else "accepted")


def test_503_when_the_key_store_is_down(
    h: Harness, sample_records: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tabguard.errors import BackendUnavailableError

    def down(key: str) -> None:
        raise BackendUnavailableError("key store sqlite:///x: unreachable")

    monkeypatch.setattr(h.keys, "verify", down)
    r = h.post(body_of(sample_records[0]), key="tg_0123456789ab_new-key-not-cached")
    assert r.status_code == 503 and r.json()["reason"] == "key_store_unavailable"


def test_delayed_decisions_202_then_get(
    harness_factory: Make, sample_records: list[dict[str, Any]]
) -> None:
    from datetime import UTC, datetime, timedelta

    from tabguard.redteam import SimulatedClock

    # The service clock decides when a delayed decision is available: moved by the test, not
    # slept through (the early read stays early however slow the machine is).
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    clock = SimulatedClock(start)
    h = harness_factory(clock=clock)
    h.set_flag("delay", "0.3")
    r = h.post(body_of(sample_records[0]))
    assert r.status_code == 202
    ticket = r.json()
    assert set(ticket) == {"decision_id", "available_at"}
    auth = {"Authorization": f"Bearer {h.key}"}
    url = f"/v1/decisions/{ticket['decision_id']}"
    early = h.client.get(url, headers=auth)
    assert early.status_code == 202 and early.json()["available_at"] == ticket["available_at"]
    assert int(early.headers["Retry-After"]) >= 1
    clock.set(start + timedelta(seconds=0.35))
    done = h.client.get(url, headers=auth)
    assert done.status_code == 200
    assert done.json()["decision"] in ("approve", "deny", "review")
    # another client cannot read it; an unknown id is 404 too; no key is 401
    other = h.client.get(url, headers={"Authorization": f"Bearer {h.decide_key}"})
    assert other.status_code == 404
    assert h.client.get("/v1/decisions/unknown", headers=auth).status_code == 404
    assert h.client.get(url).status_code == 401
    assert h.records()["status"].tolist() == ["delayed"]


def test_get_reads_decisions_of_another_worker_from_the_log(
    h: Harness, sample_records: list[dict[str, Any]]
) -> None:
    r = h.post(body_of(sample_records[0]))
    decision_id = r.json()["decision_id"]
    assert h.log.flush(10)
    h.service.delayed._items.clear()  # as if another process had answered
    h.log._recent.clear()
    got = h.client.get(f"/v1/decisions/{decision_id}", headers={"Authorization": f"Bearer {h.key}"})
    assert got.status_code == 200 and got.json()["decision"] == r.json()["decision"]


def test_probing_throttle_gives_429(
    harness_factory: Make, sample_records: list[dict[str, Any]]
) -> None:
    h = harness_factory(
        '[probing]\naction = "throttle"\nwalk_min = 3\nthrottle = "1/hour"\ncooldown = 60\n'
    )
    base = dict(sample_records[0])
    codes = []
    for age in range(30, 40):  # walk AGE, one feature at a time
        codes.append(h.post(body_of({**base, "AGE": age})).status_code)
    assert codes[:3] == [200, 200, 200]
    assert 429 in codes
    r = h.post(body_of({**base, "AGE": 50}))
    assert r.status_code == 429 and r.json()["reason"] == "probing_throttle"
    statuses = h.records()["status"].tolist()
    assert "probing_throttled" in statuses
    metrics = h.client.get("/metrics").text
    assert 'tabguard_probing_signals_total{signal="feature_walk"}' in metrics
    assert 'tabguard_rate_limit_denials_total{reason="probing_throttle"}' in metrics


def test_500_is_logged_and_answered_as_json(
    h: Harness, sample_records: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(row: np.ndarray) -> float:
        raise RuntimeError("boom")

    monkeypatch.setattr(h.service.models.main, "score_row", broken)
    r = h.post(body_of(sample_records[0]))
    assert r.status_code == 500
    assert r.json()["decision_id"]
    rec = h.records().iloc[0]
    assert rec["status"] == "error" and "boom" in rec["errors"][0]["message"]


def test_every_request_is_logged_with_its_context(
    harness_factory: Make, sample_records: list[dict[str, Any]]
) -> None:
    h = harness_factory('[limits]\nper_client = "off"\nper_subject = "1/day"\n')
    h.set_flag("neutralize", "PAY_AMT1")
    good = {**sample_records[0], "AGE": 99}  # valid, clipped to 80 by the contract
    sent = [
        h.post(body_of(good, segment={"channel": "web"})),  # 200
        h.post(body_of(good)),  # 429 subject
        h.post(body_of({**good, "AGE": 999}, subject="c2")),  # 422
        h.post(body_of(good, subject="c3"), key=None),  # 401
        h.post(b"{oops"),  # 422
    ]
    assert [r.status_code for r in sent] == [200, 429, 422, 401, 422]
    df = h.records()
    assert len(df) == 5
    keyed = [r.json()["decision_id"] for i, r in enumerate(sent) if i != 3]
    assert set(keyed) <= set(df["decision_id"])
    # The request without a key is counted in the summary of its source and minute.
    [summary] = df.loc[~df["decision_id"].isin(keyed)].to_dict(orient="records")
    assert summary["status"] == "unauthorized" and summary["raw"]["_summary"]["requests"] == 1
    assert summary["guard_actions"][0]["requests"] == 1
    assert summary["raw"]["_summary"]["samples"][0].startswith('{"subject_id":"c3"')
    first = df.set_index("decision_id").loc[sent[0].json()["decision_id"]]
    assert first["status"] == "accepted" and first["client"] == "bank-a"
    assert first["raw"]["AGE"] == 99 and first["features"]["AGE"] == 80
    assert first["features"]["PAY_AMT1"] == credit_default_contract().features["PAY_AMT1"].neutral
    actions = {(a["step"], a["action"], a.get("field")) for a in first["guard_actions"]}
    assert ("sanitise", "clip", "AGE") in actions
    assert ("sanitise", "neutralize", "PAY_AMT1") in actions
    assert first["flags"]["neutralize"] == ["PAY_AMT1"] and first["flags"]["version"] >= 1
    assert first["segment"] == {"channel": "web"}
    assert first["model_name"] == "main" and first["model_version"] == h.service.bundle.version
    assert 0 <= first["score"] <= 1 and first["latency_ms"] > 0
    statuses = df.set_index("decision_id").loc[keyed, "status"]
    assert statuses.tolist() == [
        "accepted",
        "rate_limited",
        "rejected_validation",
        "rejected_validation",
    ]


def test_model_flag_switches_to_fallback_and_rules(
    h: Harness, sample_records: list[dict[str, Any]]
) -> None:
    rec = sample_records[0]
    h.set_flag("model", "fallback")
    fb = h.post(body_of(rec)).json()
    expected = h.service.bundle.fallback.score_record(rec)[0]  # type: ignore[union-attr]
    assert fb["score"] == pytest.approx(expected, abs=1e-12)
    h.set_flag("model", "rules")
    rules = h.post(body_of(rec)).json()
    assert rules["model_version"].startswith("rules/")
    df = h.records()
    assert df["model_name"].tolist() == ["fallback", "rules"]


def test_health_metrics_and_openapi(h: Harness, sample_records: list[dict[str, Any]]) -> None:
    h.post(body_of(sample_records[0]))
    public = h.client.get("/health").json()
    assert public == {"status": "ok", "model_version": h.service.bundle.version}
    detail = h.client.get("/health", headers={"Authorization": f"Bearer {h.admin_key}"}).json()
    assert detail["detail"]["scorers"][0]["path"] == "numba-lightgbm"
    text = h.client.get("/metrics").text
    for name in (
        "tabguard_requests_total",
        "tabguard_request_latency_seconds_bucket",
        "tabguard_flag_threshold",
        "tabguard_log_queue_records",
        "tabguard_log_spool_records",
        "tabguard_model_info",
    ):
        assert name in text
    spec = h.client.get("/openapi.json").json()
    body = spec["paths"]["/v1/decisions"]["post"]["requestBody"]["content"]["application/json"]
    age = body["schema"]["properties"]["features"]["properties"]["AGE"]
    assert (age["type"], age["minimum"], age["maximum"]) == ("integer", 18, 125)
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert h.client.get("/docs").status_code == 200


def test_health_details_never_show_a_store_password(harness_factory: Make) -> None:
    url = f"redis://:s3cret@127.0.0.1:{closed_port()}/0"
    h = harness_factory(f'[limits]\nstorage = "{url}"\non_backend_error = "fail_open"\n')
    text = h.client.get("/health", headers={"Authorization": f"Bearer {h.admin_key}"}).text
    assert "s3cret" not in text
    assert ":***@127.0.0.1" in text


def test_metrics_can_require_an_admin_key(harness_factory: Make) -> None:
    h = harness_factory("[server]\nmetrics_require_key = true\n")
    assert h.client.get("/metrics").status_code == 401
    ok = h.client.get("/metrics", headers={"Authorization": f"Bearer {h.admin_key}"})
    assert ok.status_code == 200


def test_create_app_from_a_directory_uses_the_configured_stores(
    tmp_path: Any, model_dir: Any, sample_records: list[dict[str, Any]], train_df: Any
) -> None:
    from fastapi.testclient import TestClient

    home = tmp_path / "home"
    home.mkdir()
    key = open_keys(load_config(home)).create("bank-a")[1]
    app = create_app(model_dir, home=home, reference=train_df)
    with TestClient(app) as client:
        r = client.post(
            "/v1/decisions",
            json=body_of(sample_records[0]),
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 200
    assert (home / "predictions.db").is_file()
    assert list((home / "reference").glob("*.json"))  # the profile is kept for workers
    # a second app finds the stored profile without the data
    again = create_app(model_dir, home=home)
    assert again.state.service.reference is not None


def test_polling_counts_against_the_client_limit(
    harness_factory: Make, sample_records: list[dict[str, Any]]
) -> None:
    h = harness_factory('[limits]\nper_client = "2/minute"\n')
    decision_id = h.post(body_of(sample_records[0])).json()["decision_id"]
    auth = {"Authorization": f"Bearer {h.key}"}
    assert h.client.get(f"/v1/decisions/{decision_id}", headers=auth).status_code == 200
    r = h.client.get(f"/v1/decisions/{decision_id}", headers=auth)
    assert r.status_code == 429 and r.json()["reason"] == "client_limit"
    assert int(r.headers["Retry-After"]) >= 1


def test_livez_and_readyz_when_everything_answers(h: Harness) -> None:
    live = h.client.get("/livez")
    assert (live.status_code, live.json()) == (200, {"status": "alive"})
    ready = h.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "reason": "ready",
        "checks": {"keys": "ok", "limits": "ok", "flags": "ok", "log": "ok"},
    }
    assert h.client.get("/health").status_code == 200  # kept for existing probes


def test_readyz_is_503_until_the_service_has_started(bundle: Any, tmp_path: Path) -> None:
    write_config(tmp_path)
    service = ScoringService(bundle, load_config(tmp_path), key_store=MemoryKeyStore())
    client = TestClient(create_app(service=service))  # no lifespan: the stores never open
    assert client.get("/livez").status_code == 200
    r = client.get("/readyz")
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["status"] == "not_ready" and "not started" in r.json()["reason"]
    with client:  # the lifespan starts the service
        service.ready_ttl = 0
        assert client.get("/readyz").status_code == 200
    service.ready_ttl = 0
    assert client.get("/readyz").status_code == 503  # closed again


class _DownKeys(MemoryKeyStore):
    down = False

    def verify(self, key: str) -> Any:
        if self.down:
            raise BackendUnavailableError("key store test: down")
        return super().verify(key)


def test_readyz_is_503_while_the_key_store_is_down(harness_factory: Make) -> None:
    keys = _DownKeys()
    h = harness_factory(key_store=keys)
    h.service.ready_ttl = 0
    assert h.client.get("/readyz").status_code == 200
    keys.down = True
    r = h.client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["keys"] == "down" and "key store" in r.json()["reason"]
    assert h.client.get("/livez").status_code == 200  # alive: do not restart it for this
    keys.down = False
    assert h.client.get("/readyz").status_code == 200


def test_readiness_answers_are_reused_for_ready_ttl(harness_factory: Make) -> None:
    keys = _DownKeys()
    h = harness_factory(key_store=keys)
    h.service.ready_ttl = 3600  # one store check per interval, however many probes
    assert h.client.get("/readyz").status_code == 200
    keys.down = True
    assert h.client.get("/readyz").status_code == 200  # the cached answer
    h.service.ready_ttl = 0
    assert h.client.get("/readyz").status_code == 503


class _DownFlags(MemoryFlagStore):
    down = False

    def version(self) -> int:
        if self.down:
            raise BackendUnavailableError("flag store test: down")
        return super().version()


def test_readyz_stays_ready_when_flags_are_stale_and_says_so(harness_factory: Make) -> None:
    flags = _DownFlags()
    h = harness_factory(flag_store=flags)
    h.service.ready_ttl = 0
    flags.down = True  # the watcher keeps polling: it stays stale while the store is down
    h.service.watcher.refresh()
    r = h.client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"]["flags"] == "stale" and r.json()["reason"] == "ready; degraded: flags"


def test_the_plain_asgi_decision_route_answers_as_the_fastapi_route(
    harness_factory: Make, sample_records: list[dict[str, Any]]
) -> None:
    """``POST /v1/decisions`` skips FastAPI's routing (speed); the registered FastAPI route
    (OpenAPI, and the fallback) must give the same answers, headers included."""
    h = harness_factory('[server]\nmax_body_bytes = 2048\n[limits]\nper_subject = "1/minute"\n')
    taken: list[str] = []
    plain = h.app.decisions_asgi

    async def counted(scope: Any, receive: Any, send: Any) -> None:
        taken.append(scope["path"])
        await plain(scope, receive, send)

    def run(prefix: str) -> list[tuple[int, list[tuple[bytes, bytes]], Any]]:
        good = body_of(sample_records[0], subject=f"{prefix}-a")
        cases: list[tuple[Any, str | None, dict[str, str]]] = [
            (good, "default", {}),
            (good, "default", {}),  # 429 subject limit: Retry-After
            (body_of(sample_records[1], subject=f"{prefix}-b"), h.decide_key, {}),
            (json.dumps(good) + " " * 3000, "default", {}),  # 413
            ('{"subject_id": "x", "features": {"AGE": NaN}}', "default", {}),  # 422
            (good, None, {"X-Forwarded-For": f"198.51.100.{len(prefix)}"}),  # 401
        ]
        out = []
        for body, key, headers in cases:
            r = h.post(body, key=key, headers=headers)
            doc = r.json()
            doc.pop("decision_id")
            out.append((r.status_code, list(r.headers.raw), doc))
        return out

    h.app.decisions_asgi = counted
    fast = run("p")
    assert len(taken) == 6
    h.app.decisions_asgi = None  # FastAPI routes it
    routed = run("r")
    assert len(taken) == 6
    assert [code for code, _, _ in fast] == [200, 429, 200, 413, 422, 401]
    assert fast == routed
