"""MLflow tracking into a temporary SQLite store, and clear errors when tracking fails."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tabguard.contract import Contract, contract_hash
from tabguard.io import frame_sha256
from tabguard.training import TrackingError, TrainConfig, load_model, train
from tabguard.training._tracking import default_tracking_uri, tabguard_home

FAST = {"num_boost_round": 30, "early_stopping_rounds": 5}


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    from tabguard.datasets import load_credit_default

    return load_credit_default().sample(1000, random_state=2).reset_index(drop=True)


def test_run_is_logged_and_model_registered(
    small: pd.DataFrame,
    credit_contract: Contract,
    tmp_path: Path,
    mlflow_store: Callable[[Path], str],
) -> None:
    from mlflow.tracking import MlflowClient

    uri = mlflow_store(tmp_path / "store" / "mlflow.db")
    cfg = TrainConfig(
        track=True,
        tracking_uri=uri,
        audit=False,
        n_bootstrap=20,
        n_jobs=1,
        report=False,
        params=FAST,
    )
    res = train(small, credit_contract, cfg, out=tmp_path / "m1")
    assert res.version == "credit_default/1" and res.run_id
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.get_run(res.run_id)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["tabguard.data_sha256"] == frame_sha256(small)
    assert tags["tabguard.contract_sha256"] == contract_hash(credit_contract)
    assert tags["tabguard.code_version"]
    assert "tabguard.git_commit" in tags or res.bundle.metadata["code"]["git_commit"] is None
    assert tags["tabguard.manifest_sha256"] == res.bundle.digest
    assert run.data.params["main.num_leaves"] == "31"
    assert run.data.params["option.preset"] == "default"
    assert run.data.metrics["test_auc"] == pytest.approx(res.metrics["test_auc"])
    assert "conformal_coverage" in run.data.metrics
    arts = {a.path for a in client.list_artifacts(res.run_id, "model")}
    assert {"model/manifest.json", "model/model.json", "model/main.lgb.txt"} <= arts
    # Artifacts live beside the store, not in the working directory.
    assert (tmp_path / "store" / "mlartifacts").is_dir()
    mv = client.get_model_version("credit_default", "1")
    assert mv.run_id == res.run_id and mv.tags["manifest_sha256"] == res.bundle.digest
    meta = load_model(tmp_path / "m1").metadata["mlflow"]
    assert meta["run_id"] == res.run_id and meta["registered_version"] == "1"
    # A second run registers the next version.
    res2 = train(small, credit_contract, cfg, out=tmp_path / "m2")
    assert res2.version == "credit_default/2"
    assert load_model(tmp_path / "m2").version == "credit_default/2"


def test_tracking_failure_is_clear_and_writes_nothing(
    small: pd.DataFrame, credit_contract: Contract, tmp_path: Path
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    cfg = TrainConfig(
        tracking_uri=f"sqlite:///{blocker / 'mlflow.db'}",
        audit=False,
        n_bootstrap=0,
        n_jobs=1,
        fallback=False,
        params=FAST,
    )
    out = tmp_path / "model"
    # The store is checked before any training work.
    with pytest.raises(
        TrackingError,
        match=r"MLflow tracking failed while connecting to the store \(store sqlite:///",
    ):
        train(small, credit_contract, cfg, out=out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a_file"]  # no staging leftovers


def test_default_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("TABGUARD_HOME", str(tmp_path / "home"))
    assert tabguard_home() == tmp_path / "home"
    assert default_tracking_uri() == f"sqlite:///{(tmp_path / 'home' / 'mlflow.db').resolve()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert default_tracking_uri() == "http://mlflow.internal:5000"


def test_failure_after_registration_rolls_back(
    small: pd.DataFrame,
    credit_contract: Contract,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mlflow_store: Callable[[Path], str],
) -> None:
    from mlflow.tracking import MlflowClient

    from tabguard.training._tracking import Tracker

    def broken_upload(self: Tracker, model_dir: Path, artifact_path: str = "model") -> None:
        raise TrackingError("MLflow tracking failed while uploading (simulated)")

    monkeypatch.setattr(Tracker, "log_model_dir", broken_upload)
    uri = mlflow_store(tmp_path / "mlflow.db")
    cfg = TrainConfig(
        tracking_uri=uri, audit=False, n_bootstrap=0, fallback=False, report=False, params=FAST
    )
    out = tmp_path / "model"
    with pytest.raises(TrackingError, match="simulated"):
        train(small, credit_contract, cfg, out=out)
    assert not out.exists()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert client.search_model_versions("name='credit_default'") == []
    exp = client.get_experiment_by_name("tabguard-credit_default")
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_unreachable_server_fails_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from tabguard.training._tracking import Tracker

    for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(k, raising=False)
    tracker = Tracker("http://127.0.0.1:9", "tabguard-x", "x")
    with pytest.raises(
        TrackingError, match=r"while connecting to the store \(store http://127\.0\.0\.1:9\)"
    ):
        tracker.connect()
    import os

    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # the fast-fail setting is undone
