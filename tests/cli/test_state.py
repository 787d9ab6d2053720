"""``tabguard keys|flags|log`` against a temporary TABGUARD_HOME."""

from __future__ import annotations

import csv
import getpass
from pathlib import Path

import pytest

from tabguard.cli import main
from tabguard.flags import open_flag_store
from tabguard.serving import PredictionLog, PredictionRecord, load_config, open_key_store


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TABGUARD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_keys_create_prints_the_key_last_and_it_verifies(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "keys", "create", "bank-a", "--scopes", "decide,score")
    assert code == 0
    key = out.split()[-1]
    assert key.startswith("tg_")
    with open_key_store(load_config().stores.keys) as store:
        client = store.verify(key)
    assert client is not None and client.scopes == {"decide", "score"}
    assert (home / "state.db").is_file()


def test_keys_list_and_revoke(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "keys", "create", "bank-a")
    key = out.split()[-1]
    code, out, _ = run(capsys, "keys", "list")
    assert code == 0 and "bank-a" in out and key not in out and key.split("_", 2)[2] not in out
    assert run(capsys, "keys", "revoke", "bank-a")[0] == 0
    with open_key_store(load_config().stores.keys) as store:
        assert store.verify(key) is None
    code, out, _ = run(capsys, "keys", "list")
    assert "no API keys" in out
    code, out, _ = run(capsys, "keys", "list", "--all")
    assert "bank-a" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("keys", "create", "x", "--scopes", "write"), "scopes"),
        (("keys", "revoke", "ghost"), "'ghost': no active key"),
        (("flags", "set", "threshold", "1.7"), "flag 'threshold': must be a number in [0, 1]"),
        (("flags", "set", "colour", "red"), "flag 'colour': unknown flag"),
        (("flags", "get", "colour"), "unknown flag"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    home: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], needle: str
) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2
    assert needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_flags_set_get_history(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "flags", "set", "threshold", "0.3", "--reason", "fraud wave")
    assert code == 0 and "threshold: unset -> 0.3" in out and getpass.getuser() in out
    run(capsys, "flags", "set", "neutralize", "AGE,PAY_AMT1", "--actor", "risk-team")
    code, out, _ = run(capsys, "flags", "get", "neutralize")
    assert out.strip() == "AGE,PAY_AMT1"
    code, out, _ = run(capsys, "flags", "get", "--json")
    assert '"threshold": 0.3' in out and '"version": 2' in out
    code, out, _ = run(capsys, "flags", "history")
    assert "fraud wave" in out and "risk-team" in out
    assert out.index("neutralize") < out.index("threshold")  # newest first
    with open_flag_store(load_config().stores.flags) as store:
        assert store.get_all().threshold == 0.3


def test_log_export_and_status(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with PredictionLog.from_config(load_config()) as plog:
        for i in range(5):
            plog.append(PredictionRecord(decision_id=f"d{i}", status="accepted", score=0.1 * i))
    out_csv = tmp_path / "export.csv"
    code, out, _ = run(capsys, "log", "export", str(out_csv))
    assert code == 0 and "wrote 5 rows" in out
    with out_csv.open(newline="") as fh:
        assert [r["decision_id"] for r in csv.DictReader(fh)] == [f"d{i}" for i in range(5)]
    code, out, _ = run(capsys, "log", "status")
    assert code == 0 and out.startswith("5 rows") and "0 records spooled" in out


def test_broken_config_is_reported_by_every_command(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home.mkdir(parents=True)
    (home / "tabguard.toml").write_text('[limits]\non_backend_error = "shrug"\n')
    for args in (("keys", "list"), ("flags", "get"), ("log", "status")):
        code, _, err = run(capsys, *args)
        assert code == 2 and "limits.on_backend_error" in err and "'shrug'" in err


def test_log_status_with_the_database_down_reports_the_spool(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.serving._tcp_proxy import closed_port

    home.mkdir(parents=True)
    (home / "tabguard.toml").write_text(
        f'[stores]\nlog = "postgresql://postgres@127.0.0.1:{closed_port()}/x"\n'
    )
    with PredictionLog.from_config(load_config()) as plog:
        for i in range(3):
            plog.append(PredictionRecord(decision_id=f"d{i}", status="error"))
    code, out, err = run(capsys, "log", "status")
    assert code == 1
    assert "? (database unreachable)" in out and "3 records spooled" in out
    assert "Connection refused" in err or "connection failed" in err


def test_log_export_parquet_appends_to_an_archive_and_prunes(
    home: Path,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tabguard.contract import TransformOptions
    from tabguard.datasets import load_credit_default
    from tests.serving.conftest import model_dir_of

    df = load_credit_default().head(400)
    model = model_dir_of("lightgbm", tmp_path_factory, df, TransformOptions())
    with PredictionLog.from_config(load_config()) as plog:
        for i in range(5):
            plog.append(
                PredictionRecord(decision_id=f"d{i}", raw={"AGE": 30 + i}, status="accepted")
            )
    archive = tmp_path / "archive"
    args = ("log", "export", "--format", "parquet", str(archive), "--model", str(model))
    code, out, _ = run(capsys, *args)
    assert code == 0 and "archived 5 rows" in out
    code, out, _ = run(capsys, *args, "--prune", "--keep", "0s")
    assert code == 0 and "archived 0 rows" in out and "pruned 5 rows" in out
    code, out, _ = run(capsys, "log", "status")
    assert out.startswith("0 rows")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--format", "xml"), "'xml' is not one of"),
        (("--format", "parquet"), "--model"),
        (("--prune",), "--format parquet"),
    ],
)
def test_log_export_usage_mistakes_are_exit_2(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], says: str
) -> None:
    code, _, err = run(capsys, "log", "export", str(tmp_path / "out"), *args)
    assert code == 2 and says in err
