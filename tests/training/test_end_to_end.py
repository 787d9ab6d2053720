"""End to end on the full bundled data through the CLI (slow: runs the full data audit)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tabguard.cli import main
from tabguard.training import load_model

DATASETS = Path(__file__).resolve().parents[2] / "src" / "tabguard" / "datasets"


@pytest.mark.slow
def test_train_bundled_data_end_to_end(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mlflow_store: Callable[[Path], str],
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("TABGUARD_HOME", str(tmp_path / "home"))
    # the default store, already created (test_cli covers tabguard creating it)
    mlflow_store(tmp_path / "home" / "mlflow.db")
    out = tmp_path / "credit"
    argv = [
        "train",
        str(DATASETS / "credit_default.csv.gz"),
        "--contract",
        str(DATASETS / "credit_default.yaml"),
        "--out",
        str(out),
        "--preset",
        "robust",
    ]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0, capsys.readouterr()
    bundle = load_model(out)
    m = bundle.metadata["metrics"]
    assert bundle.version == "credit_default/1"
    assert m["test_auc"] > 0.75 and m["fallback_test_auc"] > 0.74
    assert abs(m["conformal_coverage"] - 0.9) < 0.02
    # The full data audit of the clean bundled data (every check): no critical finding, and no
    # row suspected or quarantined (the audit's clean rows are all 30,000 rows).
    audit = bundle.metadata["audit"]
    assert audit["ran"] is True
    assert audit["severity_counts"]["critical"] == 0
    assert audit["rows"] == 30000 and audit["clean_rows"] == 30000
    assert audit["quarantined_rows"] == 0
    assert bundle.metadata["data"]["clean_rows"] == 30000
