"""The model directory: round trip, parity, and refusal of tampered artifacts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import Contract
from tabguard.errors import ArtifactIntegrityError, DataError
from tabguard.training import load_model, manifest_digest, save_model


def rng_rows(df: pd.DataFrame, n: int = 50) -> pd.DataFrame:
    """A few rows, reproducibly."""
    return df.sample(n, random_state=1).reset_index(drop=True)


def _copy(model_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(model_dir, dst)
    return dst


def test_round_trip_gives_identical_predictions(
    model_dir: Path, small_credit: pd.DataFrame, credit_contract: Contract
) -> None:
    bundle = load_model(model_dir)
    assert bundle.version == "credit_default/7"
    assert bundle.threshold == credit_contract.decision.threshold
    assert bundle.contract == credit_contract
    assert bundle.metadata["metrics"] == {"auc": 0.5}
    assert bundle.metadata["scorers"]["main"]["kind"] == bundle.main.kind
    again = load_model(model_dir)
    rows = rng_rows(small_credit, 200)
    for name in ("main", "fallback"):
        a = bundle.scorer(name).positive_proba(rows)
        b = again.scorer(name).positive_proba(rows)
        assert a.shape == (200,)
        assert np.all((a >= 0) & (a <= 1))
        np.testing.assert_array_equal(a, b)
    # Re-saving the loaded scorers reproduces the same predictions again.
    resaved = save_model(
        model_dir.parent / "resaved",
        main=bundle.main,
        fallback=bundle.fallback,
        contract=bundle.contract,
        metadata=bundle.metadata,
    )
    third = load_model(resaved)
    np.testing.assert_array_equal(third.main.positive_proba(rows), bundle.main.positive_proba(rows))
    assert third.version == bundle.version


def test_score_record_matches_predict_proba(model_dir: Path, small_credit: pd.DataFrame) -> None:
    bundle = load_model(model_dir)
    rows = rng_rows(small_credit, 40)
    for scorer in bundle.scorers.values():
        batch = scorer.positive_proba(rows)
        single = [scorer.score_record(r)[0] for r in rows.to_dict(orient="records")]
        np.testing.assert_array_equal(batch, np.array(single))
        neutral = scorer.positive_proba(rows, neutralize=["AGE"])
        single_n = [
            scorer.score_record(r, neutralize=["AGE"])[0] for r in rows.to_dict(orient="records")
        ]
        np.testing.assert_array_equal(neutral, np.array(single_n))


def test_score_record_reports_guard_actions(model_dir: Path, small_credit: pd.DataFrame) -> None:
    bundle = load_model(model_dir)
    record = small_credit.iloc[0].to_dict()
    record["AGE"] = 95  # valid (max 125) but beyond the clip range [18, 80]
    score, actions = bundle.main.score_record(record, neutralize=["PAY_AMT1"])
    assert 0.0 <= score <= 1.0
    assert "clip:AGE" in actions and "neutralize:PAY_AMT1" in actions


def test_fallback_has_no_gameable_features(model_dir: Path, credit_contract: Contract) -> None:
    bundle = load_model(model_dir)
    assert bundle.fallback is not None
    assert not set(bundle.fallback.feature_names) & set(credit_contract.gameable_features())
    assert "SEX" not in bundle.main.feature_names  # protected: never a model input
    with pytest.raises(KeyError, match="unknown scorer"):
        bundle.scorer("shadow")


def test_every_file_is_in_the_manifest(model_dir: Path) -> None:
    manifest = json.loads((model_dir / "manifest.json").read_text())
    on_disk = {p.name for p in model_dir.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == on_disk
    assert {"model.json", "contract.yaml", "evaluation.json", "report.html"} <= on_disk


def test_one_flipped_byte_in_any_artifact_is_refused(model_dir: Path, tmp_path: Path) -> None:
    files = json.loads((model_dir / "manifest.json").read_text())["files"]
    assert len(files) >= 6
    for i, (name, entry) in enumerate(sorted(files.items())):
        d = _copy(model_dir, tmp_path / str(i))
        p = d / name
        data = bytearray(p.read_bytes())
        pos = len(data) // 2
        data[pos] ^= 0x01
        p.write_bytes(bytes(data))
        with pytest.raises(ArtifactIntegrityError) as err:
            load_model(d)
        msg = str(err.value)
        assert name in msg and entry["sha256"] in msg and "refused" in msg
        assert "actual" in msg and "expected" in msg


def test_missing_file_is_refused(model_dir: Path, tmp_path: Path) -> None:
    d = _copy(model_dir, tmp_path)
    victim = next(p for p in d.iterdir() if p.name.startswith("fallback"))
    victim.unlink()
    with pytest.raises(ArtifactIntegrityError, match=rf"{victim.name}.*missing.*refused"):
        load_model(d)


def test_missing_manifest_is_refused(model_dir: Path, tmp_path: Path) -> None:
    d = _copy(model_dir, tmp_path)
    (d / "manifest.json").unlink()
    with pytest.raises(ArtifactIntegrityError, match=r"manifest\.json is missing"):
        load_model(d)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("extra.pkl", b"\x80\x04\x95harmless-looking"),
        ("override.lgb.txt", b"tree\nversion=v4\n"),
        ("payload.bin", b"\x80\x05\x95\x00"),
        ("tool.sh", b"#!/bin/sh\necho hi\n"),
    ],
)
def test_unlisted_loadable_file_is_refused(
    model_dir: Path, tmp_path: Path, name: str, content: bytes
) -> None:
    d = _copy(model_dir, tmp_path)
    (d / name).write_bytes(content)
    with pytest.raises(ArtifactIntegrityError, match=rf"{name}.*not listed.*refused"):
        load_model(d)


def test_unlisted_harmless_file_is_ignored(model_dir: Path, tmp_path: Path) -> None:
    d = _copy(model_dir, tmp_path)
    (d / "NOTES.md").write_text("reviewed by model risk\n")
    assert load_model(d).version == "credit_default/7"


def test_manifest_entry_outside_the_directory_is_refused(model_dir: Path, tmp_path: Path) -> None:
    d = _copy(model_dir, tmp_path)
    m = json.loads((d / "manifest.json").read_text())
    m["files"]["../outside.txt"] = {"sha256": "0" * 64, "bytes": 1}
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactIntegrityError, match="not a plain relative path"):
        load_model(d)


def test_pinned_digest(model_dir: Path, tmp_path: Path) -> None:
    digest = manifest_digest(model_dir)
    assert load_model(model_dir, expected_digest=digest).digest == digest
    d = _copy(model_dir, tmp_path)
    m = json.loads((d / "manifest.json").read_text())
    m["model_version"] = "credit_default/99"  # a rewritten manifest, hashes still consistent
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactIntegrityError, match="manifest hash mismatch"):
        load_model(d, expected_digest=digest)


def test_not_a_model_directory(tmp_path: Path) -> None:
    with pytest.raises(ArtifactIntegrityError, match="not a model directory"):
        load_model(tmp_path / "absent")
    (tmp_path / "x").mkdir()
    with pytest.raises(ArtifactIntegrityError, match=r"manifest\.json is missing"):
        load_model(tmp_path / "x")


def test_save_refuses_to_overwrite_foreign_directory(
    model_dir: Path, tmp_path: Path, credit_contract: Contract
) -> None:
    bundle = load_model(model_dir)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="not a tabguard model directory"):
        save_model(foreign, main=bundle.main, contract=credit_contract)
    assert (foreign / "thesis.tex").read_text() == "precious"
    # A previous tabguard model directory is replaced as a whole (no stale files left).
    d = _copy(model_dir, tmp_path)
    save_model(d, main=bundle.main, contract=credit_contract)
    assert not any(p.name.startswith("fallback") for p in d.iterdir())
    assert load_model(d).fallback is None


def test_loading_does_not_import_mlflow_or_mapie(lightgbm_dir: Path, skops_dir: Path) -> None:
    code = (
        "import sys; from tabguard.training import load_model; "
        f"b = load_model({str(lightgbm_dir)!r}); b = load_model({str(skops_dir)!r}); "
        "bad = [m for m in ('mlflow', 'mapie', 'matplotlib') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_predict_proba_follows_scikit_learn(model_dir: Path, small_credit: pd.DataFrame) -> None:
    """predict_proba has one column per class in classes_; positive_proba is its column 1."""
    bundle = load_model(model_dir)
    rows = small_credit.head(50)
    for name in ("main", "fallback"):
        scorer = bundle.scorer(name)
        both = scorer.predict_proba(rows)
        assert both.shape == (50, 2) and scorer.classes_.tolist() == [0, 1]
        np.testing.assert_array_equal(both[:, 1], scorer.positive_proba(rows))
        np.testing.assert_allclose(both.sum(axis=1), 1.0)
