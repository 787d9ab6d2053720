"""``tabguard train``: summary output, exit 1 on critical audit findings, exit 2 on bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tabguard.training
from tabguard.cli import main
from tabguard.contract import Contract, save_contract
from tabguard.redteam import poison
from tabguard.training import load_model


@pytest.fixture
def files(tmp_path: Path, credit_contract: Contract) -> dict[str, Path]:
    from tabguard.datasets import load_credit_default

    df = load_credit_default().sample(1000, random_state=4)
    data = tmp_path / "train.csv"
    df.to_csv(data, index=False)
    bad = poison(df, credit_contract, {"AGE": 999}, rate=0.45, random_state=0).data
    poisoned = tmp_path / "poisoned.csv"
    bad.to_csv(poisoned, index=False)
    contract = save_contract(credit_contract, tmp_path / "contract.yaml")
    return {"data": data, "poisoned": poisoned, "contract": contract}


@pytest.fixture
def fast_train(monkeypatch: pytest.MonkeyPatch) -> None:
    """Few trees, no bootstrap, integrity-only audit: the CLI plumbing is what is tested."""
    real = tabguard.training.train

    def quick(df: pd.DataFrame, contract: Contract, cfg: Any, **kw: Any) -> Any:
        cfg = dataclasses.replace(
            cfg,
            params={"num_boost_round": 30, "early_stopping_rounds": 5},
            n_bootstrap=30,
            audit_checks=["integrity"],
            n_jobs=1,
        )
        return real(df, contract, cfg, **kw)

    monkeypatch.setattr(tabguard.training, "train", quick)


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0)


@pytest.mark.usefixtures("fast_train")
def test_train_command_prints_summary(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("TABGUARD_HOME", str(tmp_path / "home"))
    out = tmp_path / "model"
    rc = run(
        [
            "train",
            str(files["data"]),
            "-c",
            str(files["contract"]),
            "--out",
            str(out),
            "--preset",
            "robust",
            "--seed",
            "3",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    for piece in (
        "AUC",
        "fallback",
        "conformal 90% sets",
        "coverage",
        "mlflow run",
        "credit_default/1",
        str(out),
    ):
        assert piece in text, piece
    bundle = load_model(out)
    assert bundle.metadata["data"]["file_sha256"]
    assert bundle.metadata["options"]["seed"] == 3
    assert (tmp_path / "home" / "mlflow.db").is_file()


@pytest.mark.usefixtures("fast_train")
def test_critical_findings_exit_1_and_allow_findings_overrides(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model"
    base = [
        "train",
        str(files["poisoned"]),
        "-c",
        str(files["contract"]),
        "-o",
        str(out),
        "--no-tracking",
    ]
    assert run(base) == 1
    err = capsys.readouterr().err
    assert "refused" in err and "tabguard audit data" in err and "--allow-findings" in err
    flat = " ".join(err.split())
    assert flat.startswith("error: training refused:") and ".;" not in flat and ".." not in flat
    assert not out.exists()
    assert run([*base, "--allow-findings"]) == 0
    assert "critical data finding" in capsys.readouterr().out
    assert load_model(out).metadata["audit"]["overridden"] is True


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"data": "missing.csv"}, "file not found"),
        ({"contract": "missing.yaml"}, "contract file must exist"),
        ({"--model": "xgboost"}, "model: must be one of"),
        ({"--preset": "paranoid"}, "preset: must be one of"),
        ({"--noise": "-0.5"}, "noise: must be a number"),
        ({"--bins": "LIMIT_BAL"}, "bins: coarse binning needs bin edges"),
        ({"--alpha": "0.9"}, "alpha: must lie in"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    expected: str,
) -> None:
    data = change.pop("data", str(files["data"]))
    contract = change.pop("contract", str(files["contract"]))
    extra = [x for kv in change.items() for x in kv]
    argv = ["train", data, "-c", contract, "-o", str(tmp_path / "m"), "--no-tracking", *extra]
    assert run(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err
    assert len(err.splitlines()) == 1, err
    assert not (tmp_path / "m").exists()


def test_out_pointing_at_a_foreign_directory_exits_2(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    argv = [
        "train",
        str(files["data"]),
        "-c",
        str(files["contract"]),
        "-o",
        str(foreign),
        "--no-tracking",
    ]
    assert run(argv) == 2
    assert "not a tabguard model directory" in capsys.readouterr().err
    assert (foreign / "keep.txt").read_text() == "x"


@pytest.mark.usefixtures("fast_train")
def test_train_sign_writes_a_signature_the_loaders_verify(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tabguard.errors import ArtifactIntegrityError
    from tabguard.training._signing import KEY_FILE_ENV, key_from_file

    key = tmp_path / "signing.key"
    key.write_text("z" * 40)
    base = ["train", str(files["data"]), "-c", str(files["contract"]), "--no-tracking"]
    # --sign without a key, and a configured key without --sign: one line, before training
    assert run([*base, "--out", str(tmp_path / "a"), "--sign"]) == 2
    assert "--sign: no model signing key" in capsys.readouterr().err
    monkeypatch.setenv(KEY_FILE_ENV, str(key))
    assert run([*base, "--out", str(tmp_path / "b")]) == 2
    assert "pass --sign to sign this one" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
    assert run([*base, "--out", str(tmp_path / "model"), "--sign"]) == 0
    bundle = load_model(tmp_path / "model")  # the key of the environment
    assert bundle.signature == f"verified (key {key_from_file(key).key_id})"
    other = tmp_path / "other.key"
    other.write_text("y" * 40)
    with pytest.raises(ArtifactIntegrityError, match="signed with key id"):
        load_model(tmp_path / "model", signing_key=key_from_file(other))
