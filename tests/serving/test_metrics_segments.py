"""Per-segment metrics on /metrics and the dashboard mounted by the service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tabguard.training import ModelBundle
from tests.serving.conftest import Harness, write_config


def test_decisions_and_scores_by_bounded_segment(
    tmp_path: Path, bundle: ModelBundle, sample_records: list[dict[str, Any]]
) -> None:
    home = tmp_path / "home"
    write_config(home, '[server]\nmetrics_segments = {channel = ["online"]}\n')
    with Harness(home, bundle) as h:
        for i, channel in enumerate(("online", "partner", "online")):
            body = {"subject_id": f"s{i}", "features": sample_records[0]}
            r = h.post({**body, "segment": {"channel": channel}})
            assert r.status_code == 200, r.text
        bad = {"subject_id": "s9", "features": {**sample_records[0], "AGE": 999}}
        assert h.post({**bad, "segment": {"channel": "online"}}).status_code == 422
        text = h.client.get("/metrics").text
    lines = [ln for ln in text.splitlines() if ln.startswith("tabguard_decisions_total{")]
    online = [ln for ln in lines if 'segment_key="channel",segment_value="online"' in ln]
    assert sum(float(ln.rsplit(" ", 1)[1]) for ln in online) == 3  # refused one included
    assert any('segment_value="other"' in ln for ln in lines)  # partner is not declared
    assert not any('segment_value="partner"' in ln for ln in lines)
    refused = [ln for ln in lines if 'decision="none"' in ln and 'segment_key="all"' in ln]
    assert refused and 'status="rejected_validation"' in refused[0]
    assert 'tabguard_score_count{segment_key="all",segment_value="all"} 3.0' in text
    assert 'tabguard_score_bucket{le="0.05",segment_key="channel",segment_value="online"}' in text


def test_dashboard_is_off_unless_configured_and_needs_the_monitor_scope(
    tmp_path: Path, bundle: ModelBundle
) -> None:
    home = tmp_path / "off"
    write_config(home)
    with Harness(home, bundle) as h:
        assert h.client.get("/dashboard/").status_code == 404
        assert h.client.get("/dashboard/api/v1/meta").status_code == 404
    home = tmp_path / "on"
    write_config(home, '[server]\ndashboard = "monitor.yaml"\n')
    (home / "monitor.yaml").write_text(
        f"store: sqlite:///{home / 'monitoring.db'}\n", encoding="utf-8"
    )
    with Harness(home, bundle) as h:
        monitor_key = h.keys.create("ops-dash", "monitor")[1]
        page = h.client.get("/dashboard/")
        assert (
            page.status_code == 200
            and "default-src 'self'" in page.headers["content-security-policy"]
        )
        meta = "/dashboard/api/v1/meta"
        assert h.client.get(meta).status_code == 401
        r = h.client.get(meta, headers={"Authorization": f"Bearer {h.key}"})
        assert r.status_code == 403  # decide and score do not open the dashboard
        for key in (monitor_key, h.admin_key):
            r = h.client.get(meta, headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200 and r.json()["latest"] is None


def test_count_request_equals_one_update_per_metric() -> None:
    """The request path's cached updates give the exposition of the one-by-one updates."""
    from prometheus_client import generate_latest

    from tabguard.serving._metrics import SegmentLabels, ServiceMetrics

    labels = SegmentLabels({"EDUCATION": ("1", "2")}, {"channel": ("online",)})
    requests = [
        ("accepted", "approve", "EDUCATION=2", {"EDUCATION": 2}, {}, 0.12, 0.0004),
        ("accepted", "deny", "EDUCATION=2.0", {"EDUCATION": 2.0}, {"channel": "x"}, 0.93, 0.002),
        ("rejected_validation", "none", "", {"EDUCATION": True}, {"channel": "online"}, None, 0.3),
        ("accepted", "approve", "EDUCATION=2", {"EDUCATION": 2}, {}, 1.0, 9.0),  # edge, +Inf
        ("accepted", "review", "EDUCATION=[1]", {"EDUCATION": [1]}, {}, 0.5, 0.0001),
    ]
    fast, slow = ServiceMetrics(), ServiceMetrics()
    for status, decision, segment, features, seg, score, latency in requests * 2:
        fast.count_request(status, decision, segment, labels.labels(features, seg), score, latency)
        slow.requests.labels(status, decision, segment).inc()
        for key, value in labels.of(features, seg):
            slow.decisions.labels(key, value, status, decision).inc()
            if score is not None:
                slow.scores.labels(key, value).observe(score)
        slow.latency.labels(status).observe(latency)

    def text(m: ServiceMetrics) -> list[str]:  # the _created series hold the creation time
        lines = generate_latest(m.registry).decode().splitlines()
        return [ln for ln in lines if "_created{" not in ln]

    assert text(fast) == text(slow)
    assert labels.labels({"EDUCATION": 2}, {}) != labels.labels({"EDUCATION": True}, {})
