"""Signed model manifests: who may publish a model, checked wherever a model is loaded.

``manifest.json`` pins the SHA-256 of every file of a model directory, but whoever can write
the directory can rewrite the manifest too (change the threshold in ``model.json``, then its
hash). A signature made with a key kept **outside** the directory closes that: ``tabguard train
--sign`` writes ``manifest.sig``, an HMAC-SHA256 of the manifest's exact bytes, and every
loader (``tabguard serve`` and its workers, ``audit model``, the monitor's and the retraining
loaders: they all go through :func:`~tabguard.training.verify_manifest`) checks it when a
verification key is configured, and refuses a model that is unsigned or signed otherwise.

The key (at least 32 bytes) comes from ``TABGUARD_MODEL_SIGNING_KEY_FILE`` (a file, e.g. a
mounted secret) or ``TABGUARD_MODEL_SIGNING_KEY`` (the key itself); ``tabguard train
--signing-key FILE`` names one explicitly. A key file inside the model directory is refused.

What it protects against: someone who can write the model directory (a shared volume, an
artifact store, a compromised CI step) but does not hold the key cannot change a single byte
of a signed model, nor replace it with an unsigned or differently signed one, without every
verifying loader refusing it. What it does not: HMAC is symmetric, so every host that verifies
holds a key that can also sign (keep it only on training and serving hosts); it does not stop
an attacker who has the key or who controls the serving host's environment (they can unset
the verification key); it says nothing about whether the training data was clean (that is the
data audit's job); and an old model signed with the same key can be put back (pin
``expected_digest`` or keep one key per model line to prevent a rollback).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tabguard.errors import ArtifactIntegrityError, DataError

#: The signature file written next to ``manifest.json``.
SIGNATURE = "manifest.sig"
SIGNATURE_FORMAT = "tabguard-manifest-signature"
ALGORITHM = "hmac-sha256"
#: The key itself (text).
KEY_ENV = "TABGUARD_MODEL_SIGNING_KEY"
#: A file holding the key (its bytes; a trailing newline is dropped).
KEY_FILE_ENV = "TABGUARD_MODEL_SIGNING_KEY_FILE"
#: Shortest key accepted (bytes): a guessable key would sign for anyone.
MIN_KEY_BYTES = 32


@dataclass(frozen=True, repr=False)
class SigningKey:
    """A model-signing key (never printed: ``repr`` shows only its id and source)."""

    secret: bytes
    source: str

    @property
    def key_id(self) -> str:
        """A public fingerprint of the key (16 hex digits), stored in ``manifest.sig``."""
        return hashlib.sha256(b"tabguard-model-key:" + self.secret).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r}, source={self.source!r})"

    def sign(self, manifest: bytes) -> str:
        """HMAC-SHA256 of the manifest's bytes (hex)."""
        return hmac.new(self.secret, manifest, hashlib.sha256).hexdigest()


def _checked(secret: bytes, source: str) -> SigningKey:
    if len(secret) < MIN_KEY_BYTES:
        raise DataError(
            f"model signing key from {source}: must be at least {MIN_KEY_BYTES} bytes; got "
            f"{len(secret)} (make one with `python -c 'import secrets; "
            "print(secrets.token_hex(32))'`)"
        )
    return SigningKey(secret, source)


def key_from_file(path: str | os.PathLike[str]) -> SigningKey:
    """Read a signing key from a file (a trailing newline is not part of the key).

    Raises
    ------
    DataError
        The file cannot be read or the key is shorter than :data:`MIN_KEY_BYTES`.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataError(f"model signing key file {p}: cannot be read ({exc.strerror})") from None
    return _checked(raw.rstrip(b"\r\n"), f"file {p}")


def configured_key(environ: Mapping[str, str] | None = None) -> SigningKey | None:
    """The key named by ``TABGUARD_MODEL_SIGNING_KEY_FILE`` or ``TABGUARD_MODEL_SIGNING_KEY``."""
    env = os.environ if environ is None else environ
    path = env.get(KEY_FILE_ENV)
    if path:
        return key_from_file(path)
    value = env.get(KEY_ENV)
    if value:
        return _checked(value.encode("utf-8"), f"environment variable {KEY_ENV}")
    return None


def _outside(model_dir: Path, key: SigningKey) -> None:
    if not key.source.startswith("file "):
        return
    path = Path(key.source.removeprefix("file ")).resolve()
    if path.is_relative_to(model_dir.resolve()):
        raise DataError(
            f"model signing key {path}: lies inside the model directory {model_dir}; keep the "
            "key outside it (whoever can write the directory must not hold the key)"
        )


def sign_manifest(model_dir: str | os.PathLike[str], key: SigningKey) -> Path:
    """Write ``manifest.sig`` for the directory's current ``manifest.json``."""
    root = Path(model_dir)
    _outside(root, key)
    manifest = (root / "manifest.json").read_bytes()
    payload = {
        "format": SIGNATURE_FORMAT,
        "algorithm": ALGORITHM,
        "key_id": key.key_id,
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "signature": key.sign(manifest),
    }
    out = root / SIGNATURE
    out.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


def check_signature(model_dir: Path, manifest: bytes, key: SigningKey | None) -> str:
    """Check ``manifest.sig`` against the manifest's bytes; return what was found.

    Returns
    -------
    str
        ``"verified (key <id>)"``, ``"unsigned"`` or ``"signed, not verified (no key
        configured)"``.

    Raises
    ------
    ArtifactIntegrityError
        With a key: the signature is missing, unreadable, made with another key, or does not
        match the manifest. Without a key: never (an unverified signature is reported).
    """
    path = model_dir / SIGNATURE
    if key is None:
        return "signed, not verified (no key configured)" if path.is_file() else "unsigned"
    _outside(model_dir, key)
    where = f"{path}"
    if not path.is_file() or path.is_symlink():
        raise ArtifactIntegrityError(
            f"{where}: missing; a model signing key is configured ({key.source}, key id "
            f"{key.key_id}) so unsigned models are refused. Sign it with `tabguard train "
            "--sign`, or unset the key to load unsigned models"
        )
    try:
        sig = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactIntegrityError(
            f"{where}: unreadable ({exc}); the model was refused"
        ) from None
    if (
        not isinstance(sig, dict)
        or sig.get("format") != SIGNATURE_FORMAT
        or sig.get("algorithm") != ALGORITHM
        or not isinstance(sig.get("signature"), str)
    ):
        raise ArtifactIntegrityError(
            f"{where}: not a tabguard signature ({SIGNATURE_FORMAT}, {ALGORITHM}); the model "
            "was refused"
        )
    if sig.get("key_id") != key.key_id:
        raise ArtifactIntegrityError(
            f"{where}: signed with key id {sig.get('key_id')!r}, the configured key is "
            f"{key.key_id} ({key.source}); the model was refused"
        )
    if not hmac.compare_digest(sig["signature"], key.sign(manifest)):
        raise ArtifactIntegrityError(
            f"{where}: the signature does not match manifest.json (sha256 "
            f"{hashlib.sha256(manifest).hexdigest()}): the manifest was changed after it was "
            "signed; the model was refused"
        )
    return f"verified (key {key.key_id})"
