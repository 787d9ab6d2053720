"""Alert history and actions: one suite over memory, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tabguard.flags import MemoryFlagStore
from tabguard.monitoring._actions import ActionRunner, alertmanager_payload
from tabguard.monitoring._alerting import Alerting, replay
from tabguard.monitoring._alerts import AlertError, AlertStore, AlertTracker
from tabguard.monitoring._rules_config import AlertingConfig, parse_alerting
from tests.monitoring._fake_store import FakeStore
from tests.monitoring.conftest import seed_rule

T0 = datetime(2026, 1, 5, tzinfo=UTC)
WEEK = timedelta(weeks=1)
ONSET = T0 + 3 * WEEK + timedelta(hours=8)


def _config(url: str = "http://127.0.0.1:9/none", **rule: Any) -> AlertingConfig:
    actions = [{"flag": "neutralize", "value": ["PAY_AMT1"]}, "webhook", "log"]
    r = seed_rule(**{"severity": "critical", "actions": actions, **rule})
    hook = {"name": "am", "url": url, "retries": 2, "backoff": "0s"}
    return parse_alerting({"rules": [r], "notify": {"webhooks": [hook]}})


def _store(url: str) -> FakeStore:
    """Three weeks at 20% denials, then a drop to 5% on channel=online from ONSET for 12 h."""
    store = FakeStore(url)
    for w in range(4):
        store.fill(T0 + w * WEEK, 8 if w == 3 else 48, {"channel": "online"}, 100, 0.2)
    store.fill(ONSET, 12, {"channel": "online"}, 100, 0.05)
    store.fill(ONSET + timedelta(hours=12), 36, {"channel": "online"}, 100, 0.2)
    return store


class Receiver:
    """A local Alertmanager stand-in on an ephemeral port: records posts, answers ``codes``."""

    def __init__(self, codes: list[int] | None = None) -> None:
        self.posts: list[Any] = []
        self.codes = list(codes or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append(json.loads(body))
                code = outer.codes.pop(0) if outer.codes else 200
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v2/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _alerting(store: FakeStore, config: AlertingConfig, flags: Any = None) -> Alerting:
    # The fake store is filled before the run and never changes: its counters are read once
    # (as replay reads its span) and past windows reused across steps (frozen history).
    view = store.with_counts(T0 - 3 * WEEK, T0 + 8 * WEEK, ["sd", "probing"])
    return Alerting(view, config, flags, sleep=lambda s: None, frozen_history=True)


def _run(
    store: FakeStore, config: AlertingConfig, flags: Any, start: datetime, hours: int
) -> list[Any]:
    alerting = _alerting(store, config, flags)
    return [alerting.step(start + timedelta(hours=h)) for h in range(1, hours + 1)]


def test_alert_opens_acts_once_then_resolves(store_url: str, receiver: Receiver) -> None:
    store, flags = _store(store_url), MemoryFlagStore()
    flags.set("neutralize", ["AGE"], actor="ops")
    steps = _run(store, _config(receiver.url), flags, ONSET, 30)
    opened = [(s.at, a) for s in steps for a in s.opened]
    assert len(opened) == 1
    at, alert = opened[0]
    assert alert.segment == ("channel", "online") and alert.severity == "critical"
    assert at - ONSET <= timedelta(hours=6)
    # the flag: merged with what was neutralised, actor monitor:<rule>, reason names the alert
    assert flags.get("neutralize") == ["AGE", "PAY_AMT1"]
    change = flags.history(limit=1)[0]
    assert change.actor == "monitor:drop" and f"alert {alert.id}" in (change.reason or "")
    alerts = AlertStore.of(store)
    final = alerts.get(alert.id)
    assert final.state == "resolved" and final.resolved_at is not None
    assert final.resolved_at > at
    kinds = [e["kind"] for e in alerts.events(alert.id)]
    assert kinds[0] == "opened" and "resolved" in kinds
    # webhook: one post when opening, one (with endsAt) when resolving
    assert len(receiver.posts) == 2
    first, last = receiver.posts[0][0], receiver.posts[1][0]
    assert first["labels"]["alertname"] == "drop" and first["labels"]["segment_value"] == "online"
    assert "endsAt" not in first and "endsAt" in last


def test_cooldown_blocks_a_second_alert(store_url: str) -> None:
    store = _store(store_url)
    store.fill(ONSET + timedelta(hours=14), 4, {"channel": "online"}, 100, 0.05)  # relapse
    cfg = _config(cooldown="2d", actions=["log"])
    steps = _run(store, cfg, None, ONSET, 30)
    assert sum(len(s.opened) for s in steps) == 1
    cfg2 = _config(cooldown="1h", actions=["log"])
    store2 = _store("memory://")
    store2.fill(ONSET + timedelta(hours=14), 4, {"channel": "online"}, 100, 0.05)
    steps2 = _run(store2, cfg2, None, ONSET, 30)
    assert sum(len(s.opened) for s in steps2) >= 1


def test_ack_and_listing(store_url: str) -> None:
    store = _store(store_url)
    cfg = _config(actions=["log"])
    steps = _run(store, cfg, None, ONSET, 7)
    alerts = AlertStore.of(store)
    (alert,) = [a for s in steps for a in s.opened]
    acked = alerts.ack(alert.id, "alice", ONSET + timedelta(hours=7), note="looking")
    assert acked.state == "acknowledged" and acked.acknowledged_by == "alice"
    assert [a.id for a in alerts.list(state="active")] == [alert.id]
    # acknowledged alerts still resolve when the condition clears
    _run_from = _alerting(store, cfg)
    for h in range(8, 40):
        _run_from.step(ONSET + timedelta(hours=h))
    assert alerts.get(alert.id).state == "resolved"
    with pytest.raises(AlertError, match="already resolved"):
        alerts.ack(alert.id, "bob", ONSET + timedelta(days=2))
    with pytest.raises(AlertError, match="no alert with id 999"):
        alerts.get(999)


def test_quiet_traffic_never_alerts(store_url: str) -> None:
    store = FakeStore(store_url)
    for w in range(4):
        store.fill(T0 + w * WEEK, 168, {"channel": "tiny"}, 2, 0.3)
    store.fill(ONSET, 12, {"channel": "tiny"}, 2, 0.0)  # a total drop, on 2 requests an hour
    steps = _run(store, _config(actions=["log"]), None, ONSET - timedelta(days=2), 72)
    assert not any(s.opened for s in steps)
    statuses = {e.status for s in steps for e in s.evaluations}
    assert statuses <= {"low_volume", "not_significant", "ok"}


def test_webhook_failures_are_retried_logged_and_never_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = Receiver(codes=[503, 503, 503])
    try:
        store = _store("memory://")
        with caplog.at_level(logging.WARNING, logger="tabguard.monitoring"):
            steps = _run(store, _config(down.url), MemoryFlagStore(), ONSET, 7)
        hooks = [a for s in steps for a in s.actions if a["action"] == "webhook"]
        assert len(hooks) == 1 and not hooks[0]["ok"]
        assert hooks[0]["sent"][0]["attempts"] == 3 and len(down.posts) == 3
        assert "webhook am" in caplog.text and "HTTP 503" in caplog.text
        flag = [a for s in steps for a in s.actions if a["action"] == "flag"]
        assert flag[0]["applied"]  # the flag still went through
    finally:
        down.close()


def test_webhook_unreachable_port() -> None:
    # Bind then close a socket: nothing listens on that ephemeral port.
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    store = _store("memory://")
    steps = _run(store, _config(f"http://127.0.0.1:{port}/x"), None, ONSET, 7)
    hook = next(a for st in steps for a in st.actions if a["action"] == "webhook")
    assert not hook["ok"] and "ConnectError" in hook["sent"][0]["error"]
    flag = next(a for st in steps for a in st.actions if a["action"] == "flag")
    assert not flag["ok"] and "no flag store" in flag["error"]


def test_alertmanager_payload_shape() -> None:
    store = _store("memory://")
    cfg = _config(labels={"team": "risk"})
    alert = next(a for s in _run(store, _config(actions=["log"]), None, ONSET, 7) for a in s.opened)
    (item,) = alertmanager_payload(alert, cfg.rules[0])
    assert set(item) == {"labels", "annotations", "startsAt"}
    assert item["labels"]["team"] == "risk" and item["labels"]["severity"] == "critical"
    assert all(isinstance(v, str) for v in item["labels"].values())
    assert all(isinstance(v, str) for v in item["annotations"].values())
    datetime.fromisoformat(item["startsAt"])


def test_replay_records_actions_without_applying(store_url: str) -> None:
    store, flags = _store(store_url), MemoryFlagStore()
    res = replay(
        store, _config(), ONSET - timedelta(days=1), ONSET + timedelta(days=1), flag_store=flags
    )
    assert len(res.alerts) == 1 and res.alerts[0].segment == ("channel", "online")
    flag = next(a for a in res.actions_of(res.alerts[0].id) if a["action"] == "flag")
    assert flag["ok"] and not flag["applied"] and flag["value"] == ["PAY_AMT1"]
    assert flags.get("neutralize") == [] and flags.version() == 0
    assert AlertStore.of(store).list() == []  # the live history is untouched
    applied = replay(
        store,
        _config(actions=["log", {"flag": "threshold", "value": 0.3}]),
        ONSET - timedelta(days=1),
        ONSET + timedelta(days=1),
        apply=True,
        flag_store=flags,
    )
    assert flags.get("threshold") == 0.3
    assert [a.id for a in AlertStore.of(store).list()] == [applied.alerts[0].id]


def test_tracker_ignores_skipped_evaluations_while_open() -> None:
    store = _store("memory://")
    cfg = _config(actions=["log"])
    alerting = _alerting(store, cfg)
    for h in range(1, 8):
        alerting.step(ONSET + timedelta(hours=h))
    (alert,) = alerting.alerts.list(state="active")
    # no data at all for a while: low volume, the alert stays open
    alerting.step(ONSET + timedelta(days=20))
    assert alerting.alerts.get(alert.id).state == "open"
    assert isinstance(alerting.tracker, AlertTracker)


def test_http_client_can_be_injected() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    store = _store("memory://")
    alerting = Alerting(store, _config(), None, http=client)
    for h in range(1, 8):
        alerting.step(ONSET + timedelta(hours=h))
    assert len(seen) == 1 and json.loads(seen[0].content)[0]["labels"]["alertname"] == "drop"
    assert isinstance(alerting.runner, ActionRunner)
