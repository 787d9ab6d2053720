"""The SHA-256 manifest of a model directory, and its verification before any file is read.

``manifest.json`` lists every file of the directory with its size and SHA-256. Loading checks
the whole directory against it *before* parsing a single artifact, so a tampered model never
reaches a deserialiser:

- a listed file that is missing, or whose bytes differ from its hash (one byte is enough);
- a listed path that escapes the directory (``..``, absolute) or is a symbolic link;
- an unlisted file that could execute or be deserialised (pickle/joblib/skops/ONNX/Python/
  shared library, a ZIP or pickle by its magic bytes, or a file with the executable bit).

Unlisted harmless files (an editor backup, ``.DS_Store``) are ignored: they are never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tabguard.errors import ArtifactIntegrityError
from tabguard.training._signing import SIGNATURE, SigningKey, check_signature, configured_key

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "tabguard-model-manifest"
MANIFEST_VERSION = 1

# Suffixes of files that a loader somewhere might deserialise or execute.
_RISKY_SUFFIXES = frozenset(
    {
        ".pkl",
        ".pickle",
        ".joblib",
        ".jbl",
        ".dill",
        ".cloudpickle",
        ".skops",
        ".onnx",
        ".npy",
        ".npz",
        ".pt",
        ".pth",
        ".h5",
        ".keras",
        ".py",
        ".pyc",
        ".pyo",
        ".so",
        ".dll",
        ".dylib",
        ".sh",
        ".bat",
        ".exe",
        ".txt",  # LightGBM models are text: an extra one could be swapped in for a listed one
        ".json",
        ".yaml",
        ".yml",
    }
)
_RISKY_MAGIC = (b"PK\x03\x04", b"\x7fELF", b"MZ", b"#!")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _looks_like_pickle(head: bytes) -> bool:
    # Protocol 2+ pickles start with PROTO (0x80) followed by the protocol number.
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


@dataclass(frozen=True)
class VerifiedManifest:
    """The outcome of :func:`verify_manifest`.

    Attributes
    ----------
    files : dict
        ``{relative path: sha256}`` of every listed (and verified) file.
    digest : str
        SHA-256 of ``manifest.json`` itself: one fingerprint of the whole directory.
    ignored : list of str
        Unlisted harmless files, never read.
    signature : str
        What ``manifest.sig`` says: ``verified (key <id>)``, ``unsigned``, or ``signed, not
        verified (no key configured)`` (see ``tabguard.training._signing``).
    """

    files: dict[str, str]
    digest: str
    ignored: list[str]
    signature: str = "unsigned"


def _safe_relpath(root: Path, rel: str) -> Path:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts or rel != p.as_posix():
        raise ArtifactIntegrityError(
            f"{root / MANIFEST}: entry {rel!r} is not a plain relative path inside the model "
            "directory; the model was refused (the manifest may have been tampered with)"
        )
    return root.joinpath(*p.parts)


def write_manifest(
    model_dir: Path, files: Iterable[str], extra: Mapping[str, Any] | None = None
) -> Path:
    """Hash ``files`` (relative paths in ``model_dir``) and write ``manifest.json``.

    Returns
    -------
    Path
        The manifest's path.
    """
    entries: dict[str, dict[str, Any]] = {}
    for rel in sorted(set(files)):
        if rel == MANIFEST:
            continue
        p = _safe_relpath(model_dir, rel)
        entries[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    payload = {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "algorithm": "sha256",
        "files": entries,
        **dict(extra or {}),
    }
    out = model_dir / MANIFEST
    out.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


def read_manifest(model_dir: Path) -> tuple[dict[str, Any], str]:
    """Parse ``manifest.json`` (plain JSON, nothing executable) and return it with its hash."""
    data, raw = _read_manifest(model_dir)
    return data, hashlib.sha256(raw).hexdigest()


def _read_manifest(model_dir: Path) -> tuple[dict[str, Any], bytes]:
    path = model_dir / MANIFEST
    if not model_dir.is_dir():
        raise ArtifactIntegrityError(
            f"{model_dir}: not a model directory (it does not exist or is a file); "
            "pass the directory written by `tabguard train --out`"
        )
    if not path.is_file() or path.is_symlink():
        raise ArtifactIntegrityError(
            f"{path}: manifest.json is missing; a model directory without its hash manifest "
            "is refused (re-train or re-save the model with tabguard)"
        )
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactIntegrityError(
            f"{path}: manifest.json is not valid JSON ({exc}); the model was refused"
        ) from None
    if (
        not isinstance(data, dict)
        or data.get("format") != MANIFEST_FORMAT
        or not isinstance(data.get("files"), dict)
    ):
        raise ArtifactIntegrityError(
            f"{path}: not a tabguard manifest (expected format {MANIFEST_FORMAT!r} with a "
            "'files' mapping); the model was refused"
        )
    if int(data.get("format_version", 0)) > MANIFEST_VERSION:
        raise ArtifactIntegrityError(
            f"{path}: manifest format_version {data.get('format_version')} is newer than this "
            f"tabguard understands ({MANIFEST_VERSION}); upgrade tabguard"
        )
    return data, raw


def _is_risky(path: Path) -> bool:
    if path.suffix.lower() in _RISKY_SUFFIXES:
        return True
    mode = path.lstat().st_mode
    if mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError:
        return True
    return _looks_like_pickle(head) or any(head.startswith(m) for m in _RISKY_MAGIC)


#: ``signing_key`` default: the key of ``TABGUARD_MODEL_SIGNING_KEY[_FILE]``, if any.
FROM_ENVIRONMENT = "environment"


def verify_manifest(
    model_dir: str | Path,
    expected_digest: str | None = None,
    *,
    signing_key: SigningKey | str | None = FROM_ENVIRONMENT,
) -> VerifiedManifest:
    """Check every file of ``model_dir`` against ``manifest.json`` before anything is parsed.

    Parameters
    ----------
    model_dir : str or Path
    expected_digest : str, optional
        SHA-256 of ``manifest.json`` pinned elsewhere (a registry, a deploy config): a
        directory whose manifest was rewritten is then refused too.
    signing_key : SigningKey or None, optional
        With a key, ``manifest.sig`` must be its signature of the manifest (an unsigned or
        otherwise signed model is refused). Default: the key configured in the environment
        (``TABGUARD_MODEL_SIGNING_KEY_FILE`` / ``TABGUARD_MODEL_SIGNING_KEY``); ``None``
        checks the hashes only.

    Returns
    -------
    VerifiedManifest

    Raises
    ------
    ArtifactIntegrityError
        Missing, modified, unsafe or unlisted risky files; the message names the file, the
        expected and actual hash, and says the model was refused.
    """
    root = Path(model_dir)
    data, raw = _read_manifest(root)
    digest = hashlib.sha256(raw).hexdigest()
    key = configured_key() if signing_key == FROM_ENVIRONMENT else signing_key
    if isinstance(key, str):
        raise TypeError(f"signing_key must be a SigningKey, None or {FROM_ENVIRONMENT!r}")
    # Before any other file is read: a model signed by no one we trust is not looked at.
    signature = check_signature(root, raw, key)
    if expected_digest is not None and digest != expected_digest:
        raise ArtifactIntegrityError(
            f"{root / MANIFEST}: manifest hash mismatch: expected sha256 {expected_digest}, "
            f"actual {digest}; the model was refused (its manifest was replaced)"
        )
    files: dict[str, str] = {}
    for rel, entry in data["files"].items():
        expected = entry.get("sha256") if isinstance(entry, dict) else entry
        if not isinstance(expected, str) or len(expected) != 64:
            raise ArtifactIntegrityError(
                f"{root / MANIFEST}: entry {rel!r} has no valid sha256; the model was refused"
            )
        p = _safe_relpath(root, rel)
        if p.is_symlink():
            raise ArtifactIntegrityError(
                f"{p}: is a symbolic link; model files must be regular files inside the "
                "directory, the model was refused"
            )
        if not p.is_file():
            raise ArtifactIntegrityError(
                f"{p}: listed in manifest.json (expected sha256 {expected}) but missing "
                "(actual: no such file); the model was refused"
            )
        actual = sha256_file(p)
        if actual != expected:
            raise ArtifactIntegrityError(
                f"{p}: hash mismatch: expected sha256 {expected}, actual {actual}; the file "
                "was modified after the model was saved and the model was refused"
            )
        files[rel] = actual
    ignored: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if rel in (MANIFEST, SIGNATURE) or rel in files:
                continue
            if p.is_symlink() or _is_risky(p):
                raise ArtifactIntegrityError(
                    f"{p}: not listed in manifest.json (expected: no such file, actual sha256 "
                    f"{sha256_file(p) if p.is_file() else 'n/a'}) and it could be loaded or "
                    "executed; the model was refused. Remove the file or re-save the model"
                )
            ignored.append(rel)
    return VerifiedManifest(files=files, digest=digest, ignored=ignored, signature=signature)
