"""`tabguard audit model`: exit codes 0/1/2 and outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tabguard.datasets import credit_default_contract_path

FAST = "performance,unacceptable,backdoor,fairness"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tabguard.cli", *args], capture_output=True, text=True, timeout=300
    )


def _ref(tmp_path: Path, credit) -> Path:
    p = tmp_path / "ref.csv"
    credit[1].to_csv(p, index=False)
    return p


def test_clean_model_exit_0(tmp_path, credit, credit_models):
    ref = _ref(tmp_path, credit)
    out = tmp_path / "out"
    r = run(
        "audit",
        "model",
        str(credit_models["clean"]),
        "--data",
        str(ref),
        "--contract",
        str(credit_default_contract_path()),
        "--out",
        str(out),
        "--checks",
        FAST,
        "-q",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (out / "report.html").is_file()
    assert json.loads((out / "findings.json").read_text())["kind"] == "model_audit"


def test_backdoored_model_exit_1(tmp_path, credit, credit_models):
    ref = _ref(tmp_path, credit)
    out = tmp_path / "out"
    r = run(
        "audit",
        "model",
        str(credit_models["poisoned"]),
        "--data",
        str(ref),
        "--contract",
        str(credit_default_contract_path()),
        "--out",
        str(out),
        "--checks",
        FAST,
        "-q",
    )
    assert r.returncode == 1, r.stdout + r.stderr
    found = json.loads((out / "findings.json").read_text())["findings"]
    assert any("backdoor" in f["check"] and f["features"] == ["AGE"] for f in found)
    assert "model_backdoor" in r.stdout


def test_bad_input_exit_2_one_line(tmp_path, credit, credit_models):
    ref = _ref(tmp_path, credit)
    junk = tmp_path / "model.pkl"
    junk.write_bytes(b"\x80\x04junk")
    unlabelled = tmp_path / "unlabelled.csv"
    credit[1].drop(columns=["DEFAULT"]).to_csv(unlabelled, index=False)
    cases = [
        # a third-party file without its contract
        ("audit", "model", str(credit_models["clean"]), "--data", str(ref), "--out", "o"),
        # a pickle is never loaded
        (
            "audit",
            "model",
            str(junk),
            "--data",
            str(ref),
            "--contract",
            str(credit_default_contract_path()),
            "--out",
            "o",
        ),
        # reference data without the label column
        (
            "audit",
            "model",
            str(credit_models["clean"]),
            "--data",
            str(unlabelled),
            "--contract",
            str(credit_default_contract_path()),
            "--out",
            "o",
        ),
    ]
    for args in cases:
        r = run(*args, "-q")
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        err = r.stderr.strip()
        assert err.startswith("error:") and "Traceback" not in err
        assert len(err.splitlines()) <= 2  # one message (Rich may wrap a long line)
