"""`tabguard monitor show|run|reference` from the command line."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from tabguard.cli import main
from tabguard.contract import Contract
from tests.monitoring.test_update import make_records, write


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose log holds 9 days of traffic and whose store is updated."""
    from tabguard.datasets import load_credit_default

    root = tmp_path_factory.mktemp("home")
    log = f"sqlite:///{root / 'predictions.db'}"
    df = load_credit_default().head(2600)
    write(log, root / "spool", make_records(df, step=timedelta(minutes=5)))
    (root / "monitor.yaml").write_text(
        json.dumps({"log": log, "aggregation": {"segments": {"values": {"channel": ["online"]}}}}),
        encoding="utf-8",
    )
    with pytest.raises(SystemExit):
        main(["monitor", "update", "--home", str(root)])
    return root


def test_show_compares_with_last_week(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "monitor",
        "show",
        "--home",
        str(home),
        "--at",
        "2026-02-10T12:00",
        "--segment",
        "channel=online",
    )
    assert code == 0
    assert "channel=online: [2026-02-10 06:00, 2026-02-10 12:00) vs 1w earlier" in out
    assert "deny rate" in out and "requests" in out and "score p50" in out


def test_show_json_is_machine_readable(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "monitor",
        "show",
        "--home",
        str(home),
        "--window",
        "1d",
        "--compare",
        "1d",
        "--json",
    )
    assert code == 0
    rows = pd.DataFrame(json.loads(out))
    requests = rows[rows.metric == "requests"].iloc[0]
    assert requests["now"] == 288 and requests["before"] == 288  # one request every 5 min


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--segment", "channel"), "KEY=VALUE"),
        (("--window", "90m"), "multiple of the store's bucket"),
        (("--compare", "soon"), "duration"),
        (("--at", "yesterday"), "ISO time"),
    ],
)
def test_show_usage_mistakes_exit_2(
    home: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], fragment: str
) -> None:
    code, out, err = run(capsys, "monitor", "show", "--home", str(home), *args)
    assert code == 2 and fragment in out + err


def test_show_on_an_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "monitor", "show", "--home", str(tmp_path))
    assert code == 1 and "monitor update" in out


def test_run_turns_then_stops(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "monitor", "run", "--home", str(home), "--every", "1s", "--iterations", "1"
    )
    assert code == 0 and "read 0 log rows" in out


def test_reference_for_an_older_model(
    home: Path,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    credit_contract: Contract,
) -> None:
    from tabguard.datasets import load_credit_default
    from tabguard.monitoring._drift import DriftReference
    from tests.training.conftest import build_model_dir

    df = load_credit_default().sample(800, random_state=1).reset_index(drop=True)
    model = build_model_dir("lightgbm", tmp_path_factory, df, credit_contract)
    data = tmp_path / "train.csv"
    df.to_csv(data, index=False)
    out = tmp_path / "ref.json"
    code, text, _ = run(
        capsys, "monitor", "reference", str(model), "--data", str(data), "--out", str(out)
    )
    assert code == 0 and "drift: {reference:" in text
    ref = DriftReference.load(out)
    assert ref.source["rows"] == 800 and ("feature", "AGE") in ref.columns
    # The model directory has no reference.json: show says how to make one, and uses one.
    log = f"sqlite:///{home / 'predictions.db'}"
    config = tmp_path / "monitor.yaml"
    config.write_text(f"model: {model}\nlog: {log}\nstore: sqlite:///{tmp_path / 'm.db'}\n")
    assert run(capsys, "monitor", "update", "--config", str(config))[0] == 0
    code, _, err = run(capsys, "monitor", "show", "--config", str(config))
    assert code == 2 and "tabguard monitor reference" in err
    config.write_text(config.read_text() + f"drift: {{reference: {out}}}\n")
    code, text, _ = run(capsys, "monitor", "show", "--config", str(config), "--top", "0", "--json")
    metrics = set(pd.DataFrame(json.loads(text))["metric"])
    assert code == 0 and {"raw AGE PSI", "feature AGE p99", "raw SEX PSI"} <= metrics
