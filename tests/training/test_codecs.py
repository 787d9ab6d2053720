"""No pickle in a model directory; skops files are loaded with an explicit type allowlist."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.naive_bayes import GaussianNB

from tabguard.errors import ArtifactIntegrityError
from tabguard.training import load_model
from tabguard.training._manifest import sha256_file

PICKLE_PROTO = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def _blobs(path: Path) -> list[tuple[str, bytes]]:
    data = path.read_bytes()
    out = [(path.name, data)]
    if data.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            out += [(f"{path.name}:{n}", zf.read(n)) for n in zf.namelist()]
    return out


def test_no_pickle_in_model_directory(model_dir: Path) -> None:
    for p in model_dir.iterdir():
        assert p.suffix not in (".pkl", ".pickle", ".joblib")
        for name, blob in _blobs(p):
            assert not blob.startswith(PICKLE_PROTO), f"{name} is a pickle"
            if name.endswith(".npy"):
                # .npy arrays of dtype object embed pickles; skops must never write one.
                header = blob[:256].decode("latin-1")
                assert "'descr': '|O'" not in header and "'descr': 'O'" not in header, name
                np.load(io.BytesIO(blob), allow_pickle=False)
            assert b"cloudpickle" not in blob and b"joblib" not in blob, name


def _rewrite_with_hash(d: Path, fname: str) -> None:
    """An attacker who can also rewrite manifest.json (no pinned digest)."""
    m = json.loads((d / "manifest.json").read_text())
    m["files"][fname] = {"sha256": sha256_file(d / fname), "bytes": (d / fname).stat().st_size}
    (d / "manifest.json").write_text(json.dumps(m))


def test_skops_with_untrusted_type_is_refused_even_with_a_forged_manifest(
    skops_dir: Path, tmp_path: Path
) -> None:
    bundle = load_model(skops_dir)
    d = tmp_path / "m"
    shutil.copytree(skops_dir, d)
    X = np.random.default_rng(0).normal(size=(40, bundle.main.n_features))
    svc = GaussianNB().fit(X, (X[:, 0] > 0).astype(int))
    sio.dump(svc, d / "main.skops")
    _rewrite_with_hash(d, "main.skops")
    with pytest.raises(ArtifactIntegrityError, match=r"trusted list.*GaussianNB.*refused"):
        load_model(d)


def test_skops_file_of_the_wrong_kind_is_refused(
    skops_dir: Path, lightgbm_dir: Path, tmp_path: Path
) -> None:
    """A trusted sklearn type in the wrong role (a forest posing as the logistic scorer)."""
    from sklearn.ensemble import RandomForestClassifier

    d = tmp_path / "m"
    shutil.copytree(skops_dir, d)
    n = load_model(skops_dir).main.n_features
    X = np.random.default_rng(0).normal(size=(40, n))
    rf = RandomForestClassifier(n_estimators=2).fit(X, (X[:, 0] > 0).astype(int))
    sio.dump(rf, d / "main.skops")
    _rewrite_with_hash(d, "main.skops")
    with pytest.raises(ArtifactIntegrityError, match=r"expected one of .* for a 'logistic'"):
        load_model(d)


def test_lightgbm_text_that_is_not_a_model_is_refused(lightgbm_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "m"
    shutil.copytree(lightgbm_dir, d)
    (d / "main.lgb.txt").write_text("not a model\n")
    _rewrite_with_hash(d, "main.lgb.txt")
    with pytest.raises(ArtifactIntegrityError, match=r"main.lgb.txt.*refused"):
        load_model(d)
