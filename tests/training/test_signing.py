"""Signed manifests: sign at save, verify at every load when a key is configured."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tabguard.errors import ArtifactIntegrityError, DataError
from tabguard.training import load_model, verify_manifest
from tabguard.training._manifest import write_manifest
from tabguard.training._signing import (
    KEY_ENV,
    KEY_FILE_ENV,
    SIGNATURE,
    SigningKey,
    configured_key,
    key_from_file,
    sign_manifest,
)

KEY = SigningKey(b"k" * 32, "test")
OTHER = SigningKey(b"o" * 32, "test")


@pytest.fixture
def signed(lightgbm_dir: Path, tmp_path: Path) -> Path:
    d = tmp_path / "model"
    shutil.copytree(lightgbm_dir, d)
    sign_manifest(d, KEY)
    return d


def test_a_signed_model_loads_with_its_key_and_says_so(signed: Path) -> None:
    bundle = load_model(signed, signing_key=KEY)
    assert bundle.signature == f"verified (key {KEY.key_id})"
    assert load_model(signed, signing_key=None).signature.startswith("signed, not verified")


def test_with_a_key_an_unsigned_or_otherwise_signed_model_is_refused(
    lightgbm_dir: Path, signed: Path
) -> None:
    with pytest.raises(ArtifactIntegrityError, match="missing; a model signing key is configured"):
        load_model(lightgbm_dir, signing_key=KEY)
    with pytest.raises(ArtifactIntegrityError, match=f"signed with key id '{KEY.key_id}'"):
        load_model(signed, signing_key=OTHER)
    assert verify_manifest(lightgbm_dir, signing_key=None).signature == "unsigned"


def test_rewriting_the_threshold_and_the_manifest_is_refused(signed: Path) -> None:
    """The attack a hash manifest alone cannot stop: whoever writes the directory rehashes."""
    meta = json.loads((signed / "model.json").read_text())
    meta["threshold"] = 0.99  # approve almost everyone
    (signed / "model.json").write_text(json.dumps(meta))
    listed = list(json.loads((signed / "manifest.json").read_text())["files"])
    write_manifest(signed, listed)  # hashes now match the tampered file
    assert load_model(signed, signing_key=None).threshold == 0.99  # hashes alone: accepted
    with pytest.raises(ArtifactIntegrityError, match="the manifest was changed after it was"):
        load_model(signed, signing_key=KEY)


def test_a_forged_or_broken_signature_file_is_refused(signed: Path) -> None:
    sig = json.loads((signed / SIGNATURE).read_text())
    sig["signature"] = "0" * 64
    (signed / SIGNATURE).write_text(json.dumps(sig))
    with pytest.raises(ArtifactIntegrityError, match=r"does not match manifest\.json"):
        verify_manifest(signed, signing_key=KEY)
    (signed / SIGNATURE).write_text("not json")
    with pytest.raises(ArtifactIntegrityError, match="unreadable"):
        verify_manifest(signed, signing_key=KEY)


def test_keys_come_from_a_file_or_the_environment_and_must_be_long(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"s" * 40 + b"\n")
    assert key_from_file(path).secret == b"s" * 40  # the newline is not part of the key
    assert configured_key({KEY_FILE_ENV: str(path)}) == key_from_file(path)
    assert configured_key({KEY_ENV: "e" * 32}).secret == b"e" * 32  # type: ignore[union-attr]
    assert configured_key({}) is None
    path.write_bytes(b"short")
    with pytest.raises(DataError, match="at least 32 bytes; got 5"):
        key_from_file(path)
    assert "k" * 8 not in repr(KEY) and KEY.key_id in repr(KEY)  # never printed


def test_a_key_inside_the_model_directory_is_refused(signed: Path) -> None:
    (signed / "key.bin").write_bytes(b"k" * 32)
    inside = key_from_file(signed / "key.bin")
    with pytest.raises(DataError, match="lies inside the model directory"):
        verify_manifest(signed, signing_key=inside)


def test_the_environment_key_is_the_default_of_every_loader(
    signed: Path, lightgbm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tabguard.monitoring import MonitorConfig
    from tabguard.monitoring._update import plan_for_model

    monkeypatch.setenv(KEY_ENV, "k" * 32)
    assert load_model(signed).signature.startswith("verified")
    with pytest.raises(ArtifactIntegrityError, match="unsigned models are refused"):
        load_model(lightgbm_dir)
    plan_for_model(signed, MonitorConfig())  # the monitor's loader verifies the same way
    with pytest.raises(ArtifactIntegrityError, match="unsigned models are refused"):
        plan_for_model(lightgbm_dir, MonitorConfig())
