"""monitor.yaml: defaults, validation errors naming key, rule and value."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tabguard.monitoring import MonitorConfigError, default_store_url, load_monitor_config


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "monitor.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_without_a_file(tmp_path: Path) -> None:
    cfg = load_monitor_config(home=tmp_path)
    assert cfg.bucket == timedelta(hours=1)
    assert cfg.aggregation.segments.top_k == 20
    assert cfg.outcomes.maturity == timedelta(days=90)
    assert cfg.log_url() == f"sqlite:///{tmp_path / 'predictions.db'}"
    assert cfg.store_url() == f"sqlite:///{tmp_path / 'monitoring.db'}"


def test_full_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
log: memory://
store: sqlite:///mon.db
aggregation:
  bucket: 15m
  sketch_k: 400
  segments: {request_keys: [channel], combinations: [[channel, EDUCATION]], top_k: 5}
  columns: {raw: [AGE], features: all}
drift: {bins: 20}
outcomes: {maturity: 30d}
rules: [{name: seed, metric: volume, window: 1h, threshold: 10, direction: below}]
""",
    )
    cfg = load_monitor_config(path)
    assert cfg.bucket == timedelta(minutes=15)
    assert cfg.aggregation.sketch_k == 400
    assert cfg.aggregation.segments.combinations == [["channel", "EDUCATION"]]
    assert cfg.aggregation.columns.raw == ["AGE"]
    assert cfg.outcomes.maturity == timedelta(days=30)
    assert cfg.store_url() == "sqlite:///mon.db"
    assert cfg.alerting.rules[0].name == "seed"


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("aggregation: {bucket: 11m}", "aggregation.bucket", "divide one week"),
        ("aggregation: {bucket: soon}", "aggregation.bucket", "duration"),
        ("aggregation: {sketch_k: 3}", "aggregation.sketch_k", "greater than or equal to 8"),
        ("aggregation: {buckets: 1h}", "aggregation.buckets", "unknown key"),
        ("bucket: 1h", "bucket", "unknown key; the keys are log, store"),
        ("store: redis://x:6379/0", "store", "must be SQL"),
        ("store: mysql://x/db", "store", "sqlite:///"),
        (
            "aggregation: {segments: {combinations: [[channel]]}}",
            "aggregation.segments.combinations",
            "2 or 3 distinct",
        ),
        ("outcomes: {maturity: -1}", "outcomes.maturity", "duration"),
        ("- a\n- b", "(file)", "YAML mapping"),
        ("aggregation: [", "(file)", "invalid YAML"),
    ],
)
def test_errors_name_key_rule_and_value(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(MonitorConfigError) as info:
        load_monitor_config(path)
    msg = str(info.value)
    assert info.value.key == key
    assert fragment in msg
    assert str(path) in msg and "\n" not in msg


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(MonitorConfigError, match="no such file"):
        load_monitor_config(tmp_path / "nope.yaml")


def test_password_is_masked(tmp_path: Path) -> None:
    path = _write(tmp_path, "store: 'redis://u:secret@h:6379/0'")
    with pytest.raises(MonitorConfigError) as info:
        load_monitor_config(path)
    assert "secret" not in str(info.value)


def test_default_store_beside_the_log() -> None:
    assert (
        default_store_url("sqlite:////var/tg/predictions.db") == "sqlite:////var/tg/monitoring.db"
    )
    assert default_store_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert default_store_url("memory://") == "memory://"
