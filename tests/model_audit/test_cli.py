"""`tabguard audit model`: exit codes 0/1/2 and outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tabguard.cli import main
from tabguard.datasets import credit_default_contract_path

FAST = "performance,backdoor,fairness"
CONTRACT = str(credit_default_contract_path())


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tabguard.cli", *args], capture_output=True, text=True, timeout=300
    )


def exit_code(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return int(info.value.code or 0)


@pytest.fixture(scope="module")
def ref_csv(tmp_path_factory: pytest.TempPathFactory, credit) -> Path:
    p = tmp_path_factory.mktemp("cli") / "ref.csv"
    credit[1].to_csv(p, index=False)
    return p


def test_backdoored_model_exit_1_as_a_process(tmp_path, ref_csv, credit_models):
    out = tmp_path / "out"
    r = run(
        "audit",
        "model",
        str(credit_models["poisoned"]),
        "--data",
        str(ref_csv),
        "--contract",
        CONTRACT,
        "--out",
        str(out),
        "--checks",
        FAST,
    )  # not --quiet: the findings table is printed
    assert r.returncode == 1, r.stdout + r.stderr
    found = json.loads((out / "findings.json").read_text())["findings"]
    assert any("backdoor" in f["check"] and f["features"] == ["AGE"] for f in found)
    assert "model_backdoor" in r.stdout and (out / "report.html").is_file()


def test_clean_model_exit_0(tmp_path, ref_csv, credit_models):
    out = tmp_path / "out"
    rc = exit_code(
        "audit",
        "model",
        str(credit_models["clean"]),
        "--data",
        str(ref_csv),
        "--contract",
        CONTRACT,
        "--out",
        str(out),
        "--checks",
        FAST,
        "-q",
    )
    assert rc == 0
    assert json.loads((out / "findings.json").read_text())["kind"] == "model_audit"


def test_bad_input_exit_2_one_line(tmp_path, ref_csv, credit, credit_models, capsys):
    junk = tmp_path / "model.pkl"
    junk.write_bytes(b"\x80\x04junk")
    unlabelled = tmp_path / "unlabelled.csv"
    credit[1].drop(columns=["DEFAULT"]).to_csv(unlabelled, index=False)
    model, out = str(credit_models["clean"]), str(tmp_path / "o")
    cases = [
        ("audit", "model", model, "--data", str(ref_csv), "--out", out),  # no --contract
        (
            "audit",
            "model",
            str(junk),
            "--data",
            str(ref_csv),
            "--contract",
            CONTRACT,
            "--out",
            out,
        ),  # a pickle is never loaded
        (
            "audit",
            "model",
            model,
            "--data",
            str(unlabelled),
            "--contract",
            CONTRACT,
            "--out",
            out,
        ),  # reference data without labels
        (
            "audit",
            "model",
            model,
            "--data",
            str(ref_csv),
            "--contract",
            CONTRACT,
            "--out",
            out,
            "--scorer",
            "fallback",
        ),  # fallback of a model file
    ]
    for args in cases:
        assert exit_code(*args, "-q") == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "Traceback" not in err, err
        assert len(err.splitlines()) == 1, err


def test_misspelt_check_names_the_valid_ones(tmp_path, ref_csv, credit_models, capsys):
    args = ("audit", "model", str(credit_models["clean"]), "--data", str(ref_csv))
    assert exit_code(*args, "--out", str(tmp_path), "--checks", "backdor,fairness") == 2
    # a usage mistake: the usage line first, then the message (in Typer's box)
    err = capsys.readouterr().err
    flat = " ".join(err.replace("│", " ").split())
    assert flat.startswith("Usage: tabguard audit model [OPTIONS]"), err
    assert (
        "unknown model check(s) 'backdor'; valid checks: performance, importance, "
        "unacceptable, backdoor, gameability, extraction, membership, fairness"
    ) in flat
