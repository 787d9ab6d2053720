"""`tabguard audit data`: outputs, exit codes 0/1/2 and one-line errors for bad input.

The clean and poisoned audits and one bad input run the real entry point as a subprocess (what
a shell sees); the other cases call ``tabguard.cli.main`` in process, which runs the same code
without a fresh interpreter importing the audit stack each time.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import save_contract
from tabguard.datasets import (
    card_fraud_contract,
    credit_default_contract_path,
    make_card_fraud,
)
from tabguard.redteam import poison


def run(
    *args: str, env: dict[str, str] | None = None, python: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *python, "-m", "tabguard.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``tabguard.cli.main(args)`` in process: (exit status, stdout, stderr)."""
    from tabguard.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else (0 if code is None else 1)), out, err


@pytest.fixture(scope="module")
def fraud_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    d = tmp_path_factory.mktemp("fraud")
    c = card_fraud_contract()
    df = make_card_fraud(4000, random_state=3)
    clean = d / "clean.csv"
    df.to_csv(clean, index=False)
    attack = poison(df, c, {"country": "ZZ"}, rate=0.3, target=0, source=1, shuffle=True)
    poisoned = d / "poisoned.csv"
    attack.write(poisoned, d / "truth.json")
    contract = save_contract(c, d / "contract.yaml")
    return clean, poisoned, contract


def test_clean_exit_0_and_outputs(tmp_path: Path, fraud_files: tuple[Path, Path, Path]) -> None:
    clean, _, contract = fraud_files
    r = run(
        "audit", "data", str(clean), "--contract", str(contract), "--out", str(tmp_path), "-q",
        python=("-X", "importtime"),
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    # every figure is inline SVG: the command never imports matplotlib (about a second)
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert "numpy" in imported and not any(m.startswith("matplotlib") for m in imported)
    for name in ("findings.json", "report.html", "clean.csv", "quarantine.csv", "treatments.json"):
        assert (tmp_path / name).is_file()
    findings = json.loads((tmp_path / "findings.json").read_text())
    assert findings["rows"] == 4000 and findings["suspicious_rows"] == []
    assert {"check", "severity", "message", "features", "values", "rows"} <= set(
        findings["findings"][0]
    )
    html = (tmp_path / "report.html").read_text()
    assert "<svg" in html and "data:image/png" not in html and "Trigger scan" in html


def test_poisoned_exit_1_and_quarantine(
    tmp_path: Path, fraud_files: tuple[Path, Path, Path]
) -> None:
    _, poisoned, contract = fraud_files
    # a narrow terminal: the paths' line is never wrapped (a script reads it; rich wrapped it at
    # 80 columns for a pipe, and pytest-xdist's longer temporary paths cut "findings.json" off)
    narrow = {**os.environ, "COLUMNS": "40"}
    r = run(
        "audit", "data", str(poisoned), "-c", str(contract), "-o", str(tmp_path), "-q", env=narrow
    )
    assert r.returncode == 1, r.stdout + r.stderr
    # the process ends without the interpreter's teardown (end_program): what it printed last
    # is flushed first
    assert "suspected of poisoning" in r.stdout
    # --quiet: the summary line and the paths, no findings table (pip's, rsync's -q)
    assert "severity" not in r.stdout and len(r.stdout.splitlines()) <= 4, r.stdout
    last = r.stdout.splitlines()[-1]
    assert last.startswith(f"report: {tmp_path}") and last.endswith("findings.json")
    truth = json.loads((poisoned.parent / "truth.json").read_text())["poisoned_rows"]
    findings = json.loads((tmp_path / "findings.json").read_text())
    assert findings["suspicious_rows"] == truth
    q = pd.read_csv(tmp_path / "quarantine.csv")
    assert set(q["tabguard_row"]) >= set(truth)
    assert q["tabguard_reason"].notna().all()
    assert len(pd.read_csv(tmp_path / "clean.csv")) == findings["rows"] - len(q)


def test_parquet_in_and_out(
    tmp_path: Path, fraud_files: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, poisoned, contract = fraud_files
    data = tmp_path / "poisoned.parquet"  # read as Parquet by its suffix
    pd.read_csv(poisoned).to_parquet(data, index=False)
    out = tmp_path / "out"
    args = ["audit", "data", str(data), "-c", str(contract), "-o", str(out), "-q"]
    # the checks that quarantine this attack (the full audit runs in the tests above)
    checks = ["--checks", "integrity,trigger_scan"]
    code, stdout, stderr = run_main(capsys, *args, *checks, "--format", "parquet")
    assert code == 1, stdout + stderr
    assert not (out / "clean.csv").exists() and not (out / "quarantine.csv").exists()
    truth = json.loads((poisoned.parent / "truth.json").read_text())["poisoned_rows"]
    q = pd.read_parquet(out / "quarantine.parquet")
    clean = pd.read_parquet(out / "clean.parquet")
    assert set(q["tabguard_row"]) >= set(truth)
    # every input row is in exactly one of the two files, with its values
    original = pd.read_parquet(data)
    assert len(clean) + len(q) == len(original)
    kept = np.setdiff1d(np.arange(len(original)), q["tabguard_row"].to_numpy())
    pd.testing.assert_frame_equal(clean, original.iloc[kept].reset_index(drop=True))


def test_the_clean_rows_formatted_ahead_are_the_clean_csv(
    tmp_path: Path,
    fraud_files: tuple[Path, Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a large CSV's rows are formatted as CSV from the validation on, beside the audit; the
    # clean rows written from that text are the file written without it
    from tabguard import _preformat

    _, poisoned, contract = fraud_files
    args = ["audit", "data", str(poisoned), "-c", str(contract), "-q"]
    checks = ["--checks", "integrity,trigger_scan"]  # the checks that quarantine this attack
    code, stdout, stderr = run_main(capsys, *args, *checks, "-o", str(tmp_path / "plain"))
    assert code == 1, stdout + stderr
    used: list[bool] = []
    write = _preformat.PreformattedCsv.write

    def spy(self: _preformat.PreformattedCsv, *a: object, **k: object) -> bool:
        used.append(write(self, *a, **k))  # type: ignore[arg-type]
        return used[-1]

    monkeypatch.setattr(_preformat, "MIN_ROWS", 1)
    monkeypatch.setattr(_preformat, "BLOCK_ROWS", 500)
    monkeypatch.setattr(_preformat, "_idle_class", lambda: True)  # a busy test machine
    monkeypatch.setattr(_preformat.PreformattedCsv, "write", spy)
    code, stdout, stderr = run_main(capsys, *args, *checks, "-o", str(tmp_path / "ahead"))
    assert code == 1, stdout + stderr
    assert used == [True]
    for name in ("clean.csv", "quarantine.csv"):
        assert (tmp_path / "ahead" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes()


def test_unknown_format_exit_2_before_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(
        capsys, "audit", "data", str(tmp_path / "absent.csv"),
        "-c", str(credit_default_contract_path()), "-o", str(tmp_path / "o"), "--format", "xlsx",
    )  # fmt: skip
    assert code == 2
    assert "Invalid value for --format: must be one of csv, parquet; got 'xlsx'" in err
    assert "not found" not in err


def _bad_inputs(tmp: Path) -> dict[str, tuple[Path, str]]:
    c = credit_default_contract_path()
    ok = pd.read_csv(Path(str(c)).with_name("credit_default.csv.gz")).head(200)
    out: dict[str, tuple[Path, str]] = {}
    out["missing"] = (tmp / "nope.csv", "file not found")
    empty = tmp / "empty.csv"
    empty.write_text("")
    out["empty"] = (empty, "file is empty")
    header = tmp / "header.csv"
    header.write_text(",".join(ok.columns) + "\n")
    out["header only"] = (header, "no data rows")
    binary = tmp / "binary.csv"
    binary.write_bytes(b"\x00\x01\x02PNG\x00" * 100)
    out["binary"] = (binary, "is binary")
    xlsx = tmp / "sheet.csv"
    xlsx.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    out["zip"] = (xlsx, "ZIP/Excel")
    nolabel = tmp / "nolabel.csv"
    ok.drop(columns=["DEFAULT"]).to_csv(nolabel, index=False)
    out["no label"] = (nolabel, "label column 'DEFAULT'")
    lower = tmp / "lower.csv"
    ok.rename(columns=str.lower).to_csv(lower, index=False)
    out["columns in lower case"] = (
        lower,
        "the data has 23 of them spelled otherwise ('LIMIT_BAL' as 'limit_bal', 'SEX' as 'sex',",
    )
    label = tmp / "label.csv"
    ok.rename(columns={"DEFAULT": "default"}).to_csv(label, index=False)
    out["label in lower case"] = (label, "is not in the data (the data has 'default')")
    nan = tmp / "nan.csv"
    bad = ok.copy().astype({"DEFAULT": float})
    bad.loc[[3, 5], "DEFAULT"] = float("nan")
    bad.to_csv(nan, index=False)
    out["nan labels"] = (nan, "2 missing value(s) (NaN) at rows [3, 5]")
    types = tmp / "types.csv"
    bad = ok.copy().astype({"AGE": object})
    bad["AGE"] = "unknown"
    bad.to_csv(types, index=False)
    out["type mismatch"] = (types, "column 'AGE': type mismatch")
    gz = tmp / "broken.csv.gz"
    gz.write_bytes(gzip.compress(b"a,b\n1,2\n")[:12])
    out["broken gzip"] = (gz, "gzip")
    return out


BAD_INPUTS = [
    "missing",
    "empty",
    "header only",
    "binary",
    "zip",
    "no label",
    "columns in lower case",
    "label in lower case",
    "nan labels",
    "type mismatch",
    "broken gzip",
]


def _assert_one_line_exit_2(code: int, out: str, err: str, words: str) -> None:
    assert code == 2, (out, err)
    err = err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert words in err, err


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_exit_2_one_line(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path, words = _bad_inputs(tmp_path)[case]
    args = ["audit", "data", str(path), "-c", str(credit_default_contract_path())]
    code, out, err = run_main(capsys, *args, "-o", str(tmp_path / "out"), "-q")
    _assert_one_line_exit_2(code, out, err, words)


def test_bad_input_exit_2_one_line_as_a_process(tmp_path: Path) -> None:
    path, words = _bad_inputs(tmp_path)["nan labels"]
    args = ["audit", "data", str(path), "-c", str(credit_default_contract_path())]
    r = run(*args, "-o", str(tmp_path / "out"), "-q")
    _assert_one_line_exit_2(r.returncode, r.stdout, r.stderr, words)


def test_bad_contract_exit_2(
    tmp_path: Path, fraud_files: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    clean, _, _ = fraud_files
    bad = tmp_path / "c.yaml"
    bad.write_text("name: x\nlabel: {column: is_fraud}\nfeatures:\n  amount: {type: money}\n")
    code, _, err = run_main(
        capsys, "audit", "data", str(clean), "-c", str(bad), "-o", str(tmp_path / "o"), "-q"
    )
    assert code == 2
    assert "features.amount.type" in err and "money" in err


def test_bad_option_exit_2_one_line(
    tmp_path: Path, fraud_files: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from tabguard.cli import main

    clean, _, contract = fraud_files
    with pytest.raises(SystemExit) as info:
        main(["audit", "data", str(clean), "-c", str(contract), "-o", str(tmp_path), "-q",
              "--alpha", "2"])  # fmt: skip
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: options.trigger_scan.alpha: must be in (0, 1); got 2.0"


@pytest.mark.parametrize("command", ["data", "model"])
def test_unknown_check_is_a_usage_mistake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    # a misspelt check is refused with the usage line before any file is opened
    files = ["-d", str(tmp_path / "d.csv")] if command == "model" else []
    code, _, err = run_main(
        capsys, "audit", command, str(tmp_path / "absent"), "-c", str(tmp_path / "c.yaml"),
        *files, "-o", str(tmp_path / "o"), "--checks", "typo",
    )  # fmt: skip
    assert code == 2
    flat = " ".join(err.replace("│", " ").split())
    assert f"Usage: tabguard audit {command} [OPTIONS]" in flat
    assert f"unknown {command} check(s) 'typo'; valid checks: " in flat


def test_trusted_sample(
    tmp_path: Path, fraud_files: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # in-process (tabguard.cli.main): two subprocesses would spend most of their time importing
    from tabguard.cli import main

    clean, _, contract = fraud_files
    trusted = tmp_path / "trusted.csv"
    make_card_fraud(3000, random_state=9).to_csv(trusted, index=False)
    out = tmp_path / "out"
    args = ["audit", "data", str(clean), "-c", str(contract), "-o", str(out), "-q"]
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--checks", "label_noise", "--trusted", str(trusted)])
    assert exit_.value.code == 0, capsys.readouterr()
    findings = json.loads((out / "findings.json").read_text())
    (f,) = [f for f in findings["findings"] if "trusted_rows" in f["evidence"]]
    assert f["evidence"]["trusted_rows"] == 3000 and f["severity"] != "critical"
    # rows flagged at the design rate (no excess) are listed for review, never suspects
    assert f["severity"] == "warning" and len(f["rows"]) > 0
    assert findings["suspicious_rows"] == []
    # too few frauds in the trusted file: exit 2, one line naming the option
    make_card_fraud(600, random_state=9).to_csv(trusted, index=False)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--trusted", str(trusted)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--trusted" in err and "min_trusted_per_label" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_an_ignored_account_column_is_hinted_as_entity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    acc = np.repeat(np.arange(200), rng.integers(3, 7, 200))
    n = len(acc)
    pd.DataFrame(
        {
            "ACCOUNT": acc,
            "SEX": rng.integers(1, 3, 200)[acc],
            "AGE": rng.integers(20, 70, 200)[acc],
            "amount": np.round(rng.lognormal(5, 1, n), 2),
            "y": (rng.random(n) < 0.3).astype(int),
        }
    ).to_csv(tmp_path / "panel.csv", index=False)
    (tmp_path / "c.yaml").write_text(
        "name: panel\nlabel: {column: y, positive: 1}\nfeatures:\n"
        "  SEX: {type: category, categories: [1, 2]}\n"
        "  AGE: {type: integer, min: 18, max: 100}\n"
        "  amount: {type: number, min: 0}\n"
    )
    # not --quiet: the findings table is printed
    code, out, _ = run_main(
        capsys,
        "audit", "data", str(tmp_path / "panel.csv"), "--contract", str(tmp_path / "c.yaml"),
        "--out", str(tmp_path / "out"), "--checks", "integrity",
    )  # fmt: skip
    assert code == 0
    # the finding's cell, wrapped over the table's lines
    cells = " ".join(
        line.split("│")[-2].strip() for line in out.splitlines() if line.count("│") >= 4
    )
    assert "column 'ACCOUNT' is not in the contract and repeats like an account id" in cells
    assert "declare it as `entity: ACCOUNT` in the contract" in cells


def test_the_read_thread_validates_the_rows_and_the_audit_takes_its_validation(
    tmp_path: Path, fraud_files: tuple[Path, Path, Path]
) -> None:
    # the command reads the contract and validates the rows in the thread that reads them
    # (while the audit's modules are imported); the audit given that validation is the audit
    from tabguard.cli._audit_data import _read_in_background
    from tabguard.contract import load_contract, validate_frame
    from tabguard.data_audit import audit_data

    clean, _, contract_path = fraud_files
    df = pd.read_csv(clean).iloc[:600].copy()
    df.loc[:9, "amount"] = -5.0  # invalid rows: the validation is not empty
    data = tmp_path / "data.csv"
    df.to_csv(data, index=False)
    got = _read_in_background(data, contract_path).result(60)
    read, contract, validation = got.coded, got.contract, got.validation
    assert read is not None and contract is not None and validation is not None
    assert contract == load_contract(contract_path) and len(read) == len(got.rows) == 600
    mine = validate_frame(read, contract)
    assert validation.invalid_mask().tolist() == mine.invalid_mask().tolist()
    given = audit_data(read, contract, checks=["integrity"], validation=validation)
    alone = audit_data(read, contract, checks=["integrity"])
    assert given.quarantine.equals(alone.quarantine)
    assert given.quarantine.shape[0] >= 10
    with pytest.raises(ValueError, match="validation"):
        audit_data(read.iloc[:100], contract, validation=validation)
    # a contract the thread cannot read: no validation, the audit validates and says why
    bad = tmp_path / "bad.yaml"
    bad.write_text("features: [")
    got = _read_in_background(data, bad).result(60)
    assert len(got.rows) == 600 and got.contract is got.coded is got.validation is None
