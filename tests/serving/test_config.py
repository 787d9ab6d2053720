"""tabguard.toml: defaults, the documented example, and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tabguard.serving import (
    ConfigError,
    load_config,
    open_flags,
    open_keys,
    open_limiter,
    open_log,
    open_log_reader,
    tabguard_home,
)

EXAMPLE = """
[limits]
per_client = "100/second"
per_subject = "1/month"
storage = "memory://"          # or "redis://127.0.0.1:6379/0"
on_backend_error = "fail_closed"   # or "fail_open"
[stores]
flags = "sqlite:///.tabguard/state.db"   # or postgresql://..., redis://..., memory://
keys = "sqlite:///.tabguard/state.db"
log = "sqlite:///.tabguard/predictions.db"  # or postgresql://...
[log]
batch_size = 200
flush_interval = 0.5
spool_dir = ".tabguard/spool"
[probing]
window = 50
[decisions]
delay_seconds = 0
"""


def write(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "tabguard.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file_put_state_under_the_home(tmp_path: Path) -> None:
    cfg = load_config(tmp_path)
    assert not cfg.from_file
    assert cfg.limits.per_client == "100/second" and cfg.limits.per_subject is None
    assert cfg.limits.on_backend_error == "fail_closed"
    assert cfg.stores.flags == f"sqlite:///{tmp_path / 'state.db'}"
    assert cfg.stores.keys == cfg.stores.flags
    assert cfg.stores.log == f"sqlite:///{tmp_path / 'predictions.db'}"
    assert cfg.log.spool_dir == tmp_path / "spool"
    assert cfg.decisions.delay_seconds == 0


def test_home_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABGUARD_HOME", str(tmp_path / "h"))
    assert tabguard_home() == tmp_path / "h"
    assert load_config().home == tmp_path / "h"
    monkeypatch.delenv("TABGUARD_HOME")
    assert tabguard_home() == Path(".tabguard")


def test_the_documented_example_loads(tmp_path: Path) -> None:
    write(tmp_path, EXAMPLE)
    cfg = load_config(tmp_path)
    assert cfg.from_file
    assert cfg.limits.per_subject == "1/month"
    assert cfg.stores.log == "sqlite:///.tabguard/predictions.db"
    assert cfg.log.batch_size == 200 and cfg.log.spool_dir == Path(".tabguard/spool")
    assert cfg.probing.window == 50 and cfg.probing.action == "flag"


def test_partial_sections_keep_the_other_defaults(tmp_path: Path) -> None:
    write(tmp_path, '[stores]\nlog = "postgresql://u@db:5432/tg"\n[limits]\nper_client = "off"\n')
    cfg = load_config(tmp_path)
    assert cfg.stores.log == "postgresql://u@db:5432/tg"
    assert cfg.stores.flags.endswith("state.db")
    assert cfg.limits.per_client is None
    assert cfg.log.flush_interval == 0.5


def test_every_section_is_validated_at_load(tmp_path: Path) -> None:
    write(
        tmp_path,
        '[decisions]\ndelay_seconds = 3\nrules_default = "deny"\n'
        '[server]\nport = 9000\nworkers = 2\n[probing]\naction = "throttle"\n',
    )
    cfg = load_config(tmp_path)
    assert cfg.decisions.delay_seconds == 3 and cfg.decisions.rules_default == "deny"
    assert (cfg.server.port, cfg.server.workers, cfg.server.host) == (9000, 2, "127.0.0.1")
    assert cfg.probing.action == "throttle" and cfg.probing.throttle == "1/minute"


@pytest.mark.parametrize(
    ("text", "key", "needle"),
    [
        ("[limits\n", "(file)", "invalid TOML"),
        ("[limitz]\n", "limitz", "unknown section"),
        ("limits = 3\n", "limits", "must be a table"),
        ('[limits]\nper_clent = "1/second"\n', "limits.per_clent", "unknown key"),
        ('[limits]\nper_client = "100/sec"\n', "limits.per_client", "'100/sec'"),
        ('[limits]\nper_subject = "0/month"\n', "limits.per_subject", "N >= 1"),
        ("[limits]\nper_subject = 5\n", "limits.per_subject", "rate string"),
        ('[limits]\non_backend_error = "ignore"\n', "limits.on_backend_error", "fail_closed"),
        ('[limits]\nstorage = "sqlite:///x.db"\n', "limits.storage", "redis://"),
        ('[limits]\nstrategy = "token-bucket"\n', "limits.strategy", "moving-window"),
        ('[stores]\nkeys = "redis://localhost:6379/0"\n', "stores.keys", "keys store supports"),
        ('[stores]\nflags = "mysql://x"\n', "stores.flags", "scheme must be one of"),
        ("[log]\nbatch_size = 0\n", "log.batch_size", "greater than or equal to 1"),
        ('[log]\nflush_interval = "fast"\n', "log.flush_interval", "number"),
        ("[decisions]\ndelay_seconds = -1\n", "decisions.delay_seconds", "greater than"),
        ("[decisions]\nreview_band = 0.05\n", "decisions.review_band", "unknown key"),
        ('[decisions]\nrules_default = "maybe"\n', "decisions.rules_default", "review"),
        ("[server]\nport = 70000\n", "server.port", "less than or equal to 65535"),
        ('[server]\nclock = "2031-01-01"\n', "server.clock", "unknown key"),
        ('[probing]\naction = "ban"\n', "probing.action", "throttle"),
        ('[probing]\nthrottle = "fast"\n', "probing.throttle", "N/unit"),
        ('[probing]\nstorage = "sqlite:///x.db"\n', "probing.storage", "redis://"),
    ],
)
def test_errors_name_the_file_key_rule_and_value(
    tmp_path: Path, text: str, key: str, needle: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: ")
    assert needle in message
    assert "\n" not in message
    assert info.value.key == key


def test_errors_never_print_a_password(tmp_path: Path) -> None:
    write(tmp_path, '[stores]\nkeys = "redis://:hunter2@cache:6379/0"\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert "hunter2" not in str(info.value) and "***" in str(info.value)


def test_factories_open_the_configured_stores(tmp_path: Path) -> None:
    write(
        tmp_path,
        '[stores]\nflags = "memory://"\nkeys = "memory://"\n[limits]\nper_subject = "1/day"\n',
    )
    cfg = load_config(tmp_path)
    with open_flags(cfg) as flags, open_keys(cfg) as keys:
        assert flags.url == "memory://" and keys.url == "memory://"
    with open_log(cfg) as plog:
        assert plog.url == f"sqlite:///{tmp_path / 'predictions.db'}"
    with open_log_reader(cfg) as reader:
        assert reader.count() == 0
    limiter = open_limiter(cfg)
    assert [str(i) for i in limiter.subject_items] == ["1 per 1 day"]


def test_config_is_a_leaf_of_the_service() -> None:
    """_config.py imports no other part of the service at import time (it only parses)."""
    import ast

    import tabguard.serving._config as config_module

    tree = ast.parse(Path(config_module.__file__).read_text(encoding="utf-8"))
    imported = {
        node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tabguard")
    }
    assert imported <= {
        "tabguard._home",
        "tabguard.errors",
        "tabguard.storage",
        "tabguard.storage._url",
    }
    assert not hasattr(config_module.ServingConfig, "open_key_store")


def test_the_service_takes_the_validated_sections_as_they_are(tmp_path: Path, bundle: Any) -> None:
    from tabguard.serving import ScoringService

    write(tmp_path, "[server]\nkey_cache_ttl = 2\n[probing]\nwalk_min = 3\n")
    cfg = load_config(tmp_path)
    service = ScoringService(bundle, cfg)
    assert service.server is cfg.server and service.decisions is cfg.decisions
    assert service.probing_config is cfg.probing


def test_one_home_helper_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tabguard.training._tracking import default_tracking_uri

    monkeypatch.setenv("TABGUARD_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert load_config().home == tabguard_home() == tmp_path / "elsewhere"
    assert default_tracking_uri() == f"sqlite:///{(tmp_path / 'elsewhere' / 'mlflow.db').resolve()}"


# ---- settings from the environment -----------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No TABGUARD_<SECTION>_<KEY> variable from the caller's environment."""
    import os

    for name in list(os.environ):
        if name.startswith(("TABGUARD_LIMITS_", "TABGUARD_STORES_", "TABGUARD_LOG_")) or (
            name.startswith(("TABGUARD_DECISIONS_", "TABGUARD_PROBING_", "TABGUARD_SERVER_"))
        ):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize(
    ("variable", "key", "value"),
    [
        ("TABGUARD_STORES_LOG", "stores.log", "postgresql://tg:s3cret@db:5432/tabguard"),
        ("TABGUARD_STORES_KEYS", "stores.keys", "postgresql://tg:s3cret@db:5432/tabguard"),
        ("TABGUARD_STORES_FLAGS", "stores.flags", "redis://:s3cret@cache:6379/1"),
        ("TABGUARD_LIMITS_STORAGE", "limits.storage", "redis://:s3cret@cache:6379/0"),
        ("TABGUARD_PROBING_STORAGE", "probing.storage", "redis://:s3cret@cache:6379/2"),
    ],
)
def test_every_store_url_can_come_from_the_environment(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, variable: str, key: str, value: str
) -> None:
    section, name = key.split(".")
    write(tmp_path, f'[{section}]\n{name} = "memory://"\n')
    clean_env.setenv(variable, value)
    cfg = load_config(tmp_path)
    assert getattr(getattr(cfg, section), name) == value  # the environment wins over the file
    assert cfg.environment == {key: variable}


def test_precedence_is_environment_then_file_then_default(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    write(tmp_path, '[server]\nport = 9000\nhost = "0.0.0.0"\n[limits]\nper_client = "5/second"\n')
    clean_env.setenv("TABGUARD_SERVER_PORT", "9100")
    clean_env.setenv("TABGUARD_LIMITS_PER_CLIENT", "off")
    clean_env.setenv("TABGUARD_LOG_BATCH_SIZE", "50")
    clean_env.setenv("TABGUARD_SERVER_METRICS_REQUIRE_KEY", "true")
    cfg = load_config(tmp_path)
    assert cfg.server.port == 9100 and cfg.server.host == "0.0.0.0"  # env, file
    assert cfg.server.workers == 1  # default
    assert cfg.limits.per_client is None and cfg.log.batch_size == 50
    assert cfg.server.metrics_require_key is True


def test_an_empty_variable_is_ignored_and_other_variables_are_not_settings(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    write(tmp_path, '[stores]\nlog = "memory://"\n')
    clean_env.setenv("TABGUARD_STORES_LOG", "")
    clean_env.setenv("TABGUARD_DEBUG", "1")
    clean_env.setenv("TABGUARD_SERVE_MODEL", "/models/x")
    cfg = load_config(tmp_path)
    assert cfg.stores.log == "memory://" and cfg.environment == {}


@pytest.mark.parametrize(
    ("variable", "value", "key", "needle"),
    [
        ("TABGUARD_STORES_LOG", "mysql://tg:s3cret@db/x", "stores.log", "scheme must be one of"),
        ("TABGUARD_STORES_KEYS", "redis://:s3cret@c:6379/0", "stores.keys", "keys store supports"),
        ("TABGUARD_SERVER_PORT", "eighty", "server.port", "integer"),
        ("TABGUARD_LIMITS_PER_SUBJECT", "1/fortnight", "limits.per_subject", "N/unit"),
        ("TABGUARD_STORES_LOGG", "sqlite:///x.db", "stores.logg", "TABGUARD_STORES_LOG,"),
    ],
)
def test_errors_name_the_variable_and_never_print_a_password(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, variable: str, value: str, key: str, needle: str
) -> None:
    clean_env.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    message = str(info.value)
    assert message.startswith(f"environment variable {variable} ({key}): ")
    assert needle in message and "s3cret" not in message and "\n" not in message
    assert info.value.variable == variable and info.value.key == key


def test_the_cli_reports_an_environment_error_in_one_line(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tabguard.cli import main

    clean_env.setenv("TABGUARD_HOME", str(tmp_path))
    clean_env.setenv("TABGUARD_STORES_FLAGS", "ftp://admin:s3cret@host/x")
    with pytest.raises(SystemExit) as info:
        main(["flags", "get"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.startswith("error: environment variable TABGUARD_STORES_FLAGS (stores.flags):")
    assert "s3cret" not in err


def test_log_status_prints_the_log_url_without_its_password(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tabguard.cli import main
    from tests.serving._tcp_proxy import closed_port

    clean_env.setenv("TABGUARD_HOME", str(tmp_path))
    url = f"postgresql://tg:s3cret@127.0.0.1:{closed_port()}/tabguard"
    clean_env.setenv("TABGUARD_STORES_LOG", url)
    with pytest.raises(SystemExit) as info:
        main(["log", "status"])
    out, err = capsys.readouterr()
    assert info.value.code == 1  # the database is unreachable
    assert "tg:***@127.0.0.1" in out and "s3cret" not in out + err
