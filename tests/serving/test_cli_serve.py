"""`tabguard serve` refuses bad input with one line and exit code 2, before starting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tabguard.cli import main
from tests.serving.conftest import write_config


def run(argv: list[str], home: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    old = os.environ.get("TABGUARD_HOME")
    os.environ["TABGUARD_HOME"] = str(home)
    try:
        with pytest.raises(SystemExit) as exc:
            main(argv)
    finally:
        if old is None:
            os.environ.pop("TABGUARD_HOME", None)
        else:
            os.environ["TABGUARD_HOME"] = old
    return int(exc.value.code or 0), capsys.readouterr().err


def test_a_missing_model_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["serve", str(tmp_path / "nope")], tmp_path, capsys)
    assert code == 2 and "error:" in err and "nope" in err
    assert len(err.strip().splitlines()) == 1


def test_a_tampered_model_directory(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    (copy / "main.lgb.txt").write_text("tree\n", encoding="utf-8")
    code, err = run(["serve", str(copy)], tmp_path, capsys)
    assert code == 2 and "hash mismatch" in err


def test_a_signed_model_with_a_rewritten_threshold_and_manifest_is_not_served(
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whoever can write the model directory rehashes it; without the key they cannot re-sign."""
    import json
    import shutil

    from tabguard.training._manifest import write_manifest
    from tabguard.training._signing import KEY_FILE_ENV, key_from_file, sign_manifest

    key_file, other_file = tmp_path / "signing.key", tmp_path / "other.key"
    key_file.write_text("k" * 48)
    other_file.write_text("o" * 48)
    signed = tmp_path / "signed"
    shutil.copytree(model_dir, signed)
    sign_manifest(signed, key_from_file(key_file))
    meta = json.loads((signed / "model.json").read_text())
    meta["threshold"] = 0.99  # approve almost everyone
    (signed / "model.json").write_text(json.dumps(meta))
    write_manifest(signed, list(json.loads((signed / "manifest.json").read_text())["files"]))

    monkeypatch.setenv(KEY_FILE_ENV, str(key_file))
    code, err = run(["serve", str(signed)], tmp_path, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "the manifest was changed after it was signed; the model was refused" in err
    monkeypatch.setenv(KEY_FILE_ENV, str(other_file))  # a key that did not sign it
    code, err = run(["serve", str(signed)], tmp_path, capsys)
    assert code == 2 and "signed with key id" in err and "the model was refused" in err
    assert "o" * 8 not in err and "k" * 8 not in err  # the keys are never printed


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('[probing]\naction = "ban"\n', "probing.action"),
        ("[probing]\nwalk_minimum = 3\n", "probing.walk_minimum: unknown key"),
        ("[server]\nport = 0\n", "server.port"),
        ('[decisions]\nrules_default = "maybe"\n', "decisions.rules_default"),
    ],
)
def test_bad_service_settings(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, needle: str
) -> None:
    write_config(tmp_path, toml)
    code, err = run(["serve", str(model_dir)], tmp_path, capsys)
    assert code == 2 and needle in err and "tabguard.toml" in err


def test_with_a_signing_key_an_unsigned_model_is_refused(
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One line and exit 2 for an unsigned model (in process: the refusal comes before the
    server starts). That the workers of a real service verify and serve a signed model is
    checked with the other checks of one two-worker service (``test_workers.py``)."""
    from tabguard.training._signing import KEY_FILE_ENV

    key_file = tmp_path / "signing.key"  # outside the model directory
    key_file.write_text("x" * 48)
    home = tmp_path / "home"
    write_config(home, "")
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file))
    code, err = run(["serve", str(model_dir)], home, capsys)
    assert code == 2
    [line] = [x for x in err.splitlines() if x.startswith("error:")]
    assert "manifest.sig: missing; a model signing key is configured" in line
