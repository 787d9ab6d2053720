"""The model directory: writing it (:func:`save_model`) and loading it safely (:func:`load_model`).

Layout (every file but the manifest is listed in ``manifest.json`` with its SHA-256)::

    MODEL_DIR/
      manifest.json        sha256 + size of every other file
      model.json           version, threshold, scorers (kind, file, features, transform options),
                           params, metrics, data/contract hashes, MLflow run, code version
      contract.yaml        the feature contract the model was trained under
      main.lgb.txt         main model: LightGBM text, or main.skops for scikit-learn models
      fallback.lgb.txt     fallback model without gameable features (optional)
      evaluation.json      held-out evaluation (written by ``tabguard train``)
      reference.json       training distributions for the monitor's drift (``tabguard train``)
      report.html          evaluation report for people

Nothing in the directory is a pickle. :func:`load_model` verifies every hash before it parses
any file, so a modified byte, a missing file or an unlisted loadable file is refused.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tabguard import __version__
from tabguard.contract import (
    Contract,
    FeatureTransform,
    TransformOptions,
    contract_hash,
    load_contract,
    save_contract,
)
from tabguard.errors import ArtifactIntegrityError, ContractError, DataError
from tabguard.training._codecs import CODECS
from tabguard.training._jsonable import jsonable, utc_now
from tabguard.training._manifest import (
    FROM_ENVIRONMENT,
    MANIFEST,
    read_manifest,
    verify_manifest,
    write_manifest,
)
from tabguard.training._scorer import Scorer
from tabguard.training._signing import SigningKey, sign_manifest

MODEL_FORMAT = "tabguard-model"
MODEL_FORMAT_VERSION = 1
MODEL_JSON = "model.json"
CONTRACT_YAML = "contract.yaml"
SCORER_NAMES = ("main", "fallback")


@dataclass
class ModelBundle:
    """A verified model directory, loaded.

    Attributes
    ----------
    path : Path
        The model directory.
    contract : Contract
        The contract in ``contract.yaml``.
    version : str
        Model version, e.g. ``credit_default/3`` (the MLflow registry version when tracked).
    threshold : float
        Decision threshold on P(positive label).
    metadata : dict
        Content of ``model.json``.
    main : Scorer
    fallback : Scorer or None
        Model trained without gameable features.
    digest : str
        SHA-256 of ``manifest.json``: one fingerprint of the whole directory (pin it in a
        deploy config and pass it to :func:`load_model` as ``expected_digest``).
    files : dict
        ``{file: sha256}`` of every verified file.
    """

    path: Path
    contract: Contract
    version: str
    threshold: float
    metadata: dict[str, Any]
    main: Scorer
    fallback: Scorer | None = None
    digest: str = ""
    files: dict[str, str] = field(default_factory=dict)
    signature: str = "unsigned"

    def scorer(self, name: str) -> Scorer:
        """Return the ``"main"`` or ``"fallback"`` scorer.

        Raises
        ------
        KeyError
            Unknown name, or ``"fallback"`` when the model was trained with ``--no-fallback``.
        """
        if name == "main":
            return self.main
        if name == "fallback":
            if self.fallback is None:
                raise KeyError(
                    f"model {self.version} has no fallback scorer (trained with --no-fallback); "
                    "re-train without --no-fallback to get one"
                )
            return self.fallback
        raise KeyError(f"unknown scorer {name!r}; choose 'main' or 'fallback'")

    @property
    def scorers(self) -> dict[str, Scorer]:
        """Every scorer present, by name."""
        out = {"main": self.main}
        if self.fallback is not None:
            out["fallback"] = self.fallback
        return out

    @property
    def evaluation(self) -> dict[str, Any] | None:
        """Content of ``evaluation.json`` when the directory has one (verified at load)."""
        p = self.path / "evaluation.json"
        if "evaluation.json" not in self.files:
            return None
        data: dict[str, Any] = json.loads(p.read_text(encoding="utf-8"))
        return data


def _scorer_entry(scorer: Scorer, file: str) -> dict[str, Any]:
    return {
        "kind": scorer.kind,
        "file": file,
        "feature_names": list(scorer.feature_names),
        "categorical_features": list(scorer.transform.categorical_features),
        "transform": scorer.transform.options.to_dict(),
        "params": jsonable(scorer.params),
    }


def check_model_target(model_dir: Path) -> None:
    """Refuse a target path that exists and is not a tabguard model directory (DataError)."""
    if model_dir.exists() and not model_dir.is_dir():
        raise DataError(f"{model_dir}: exists and is a file; --out must be a directory path")
    if model_dir.is_dir() and any(model_dir.iterdir()) and not (model_dir / MANIFEST).is_file():
        raise DataError(
            f"{model_dir}: exists, is not empty and is not a tabguard model directory; "
            "choose a new or empty directory (tabguard only replaces its own model directories)"
        )


def save_model(
    model_dir: str | Path,
    *,
    main: Scorer,
    fallback: Scorer | None = None,
    contract: Contract,
    metadata: Mapping[str, Any] | None = None,
    version: str | None = None,
    threshold: float | None = None,
    extra_files: Mapping[str, str | bytes] | None = None,
    signing_key: SigningKey | None = None,
) -> Path:
    """Write a model directory with its SHA-256 manifest (signed with ``signing_key``).

    The directory is built beside the target and moved into place, so readers never see a
    half-written model; an existing tabguard model directory at the same path is replaced.

    Parameters
    ----------
    model_dir : str or Path
    main : Scorer
    fallback : Scorer, optional
    contract : Contract
    metadata : mapping, optional
        Extra content of ``model.json`` (params, metrics, hashes, MLflow run id...).
    version : str, optional
        Defaults to ``metadata["version"]``, else ``"<contract name>/unregistered"``.
    threshold : float, optional
        Defaults to ``metadata["threshold"]``, else the contract's decision threshold.
    extra_files : mapping, optional
        ``{file name: content}`` written and hashed too (``evaluation.json``, ``report.html``).
    signing_key : SigningKey, optional
        Sign the manifest (``manifest.sig``, see ``tabguard.training._signing``).

    Returns
    -------
    Path
        The model directory.
    """
    target = Path(model_dir)
    check_model_target(target)
    meta = dict(metadata or {})
    version = version or str(meta.get("version") or f"{contract.name}/unregistered")
    thr = float(
        threshold if threshold is not None else meta.get("threshold", contract.decision.threshold)
    )
    if not 0.0 <= thr <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1]; got {thr}")
    for s, expected in ((main, "main"), (fallback, "fallback")):
        if s is not None and s.name != expected:
            raise ValueError(f"the {expected} scorer must be named {expected!r}; got {s.name!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        files: list[str] = [MODEL_JSON, CONTRACT_YAML]
        save_contract(contract, tmp / CONTRACT_YAML)
        scorers: dict[str, Any] = {}
        for s in (main, fallback):
            if s is None:
                continue
            codec = CODECS[s.kind]
            fname = f"{s.name}{codec.suffix}"
            codec.save(s.native, tmp / fname)
            files.append(fname)
            scorers[s.name] = _scorer_entry(s, fname)
        for fname, content in (extra_files or {}).items():
            if "/" in fname or fname in (MANIFEST, MODEL_JSON, CONTRACT_YAML) or fname in files:
                raise ValueError(f"extra file name {fname!r} is reserved or not a plain name")
            p = tmp / fname
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content, encoding="utf-8")
            files.append(fname)
        model_json = {
            **jsonable(meta),
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "name": contract.name,
            "version": version,
            "threshold": thr,
            "created": meta.get("created") or utc_now(),
            "tabguard_version": meta.get("tabguard_version") or __version__,
            "contract_sha256": contract_hash(contract),
            "scorers": scorers,
        }
        (tmp / MODEL_JSON).write_text(json.dumps(model_json, indent=2) + "\n", encoding="utf-8")
        write_manifest(tmp, files, extra={"model_version": version})
        if signing_key is not None:
            sign_manifest(tmp, signing_key)
        # mkdtemp creates 0700; a model directory is read by other users (the scoring service).
        tmp.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _load_scorer(root: Path, name: str, entry: Any, contract: Contract, files: set[str]) -> Scorer:
    where = f"{root / MODEL_JSON}: scorers.{name}"
    if not isinstance(entry, dict):
        raise ArtifactIntegrityError(f"{where} must be an object; the model was refused")
    kind, fname = entry.get("kind"), entry.get("file")
    if kind not in CODECS:
        raise ArtifactIntegrityError(
            f"{where}.kind: unknown model kind {kind!r} (known: {sorted(CODECS)}); "
            "the model was refused"
        )
    if not isinstance(fname, str) or fname not in files:
        raise ArtifactIntegrityError(
            f"{where}.file: {fname!r} is not a file listed in manifest.json; the model was refused"
        )
    try:
        options = TransformOptions.from_dict(entry.get("transform") or {})
        transform = FeatureTransform(contract, options)
    except ContractError as exc:
        raise ArtifactIntegrityError(
            f"{where}.transform does not fit contract.yaml ({exc}); the model was refused"
        ) from None
    stored = entry.get("feature_names")
    if stored is not None and list(stored) != transform.feature_names:
        raise ArtifactIntegrityError(
            f"{where}.feature_names {stored} differ from the contract transform's "
            f"{transform.feature_names}; the model was refused"
        )
    native = CODECS[kind].load(root / fname, kind)
    n_native = _native_n_features(native)
    if n_native is not None and n_native != len(transform.feature_names):
        raise ArtifactIntegrityError(
            f"{root / fname}: the model expects {n_native} features but the transform gives "
            f"{len(transform.feature_names)}; the model was refused"
        )
    return Scorer(name, kind, native, transform, params=entry.get("params") or {})


def _native_n_features(native: Any) -> int | None:
    if hasattr(native, "num_feature"):
        return int(native.num_feature())
    n = getattr(native, "n_features_in_", None)
    return int(n) if n is not None else None


def load_model(
    model_dir: str | Path,
    *,
    expected_digest: str | None = None,
    signing_key: SigningKey | str | None = FROM_ENVIRONMENT,
) -> ModelBundle:
    """Load a model directory after verifying the SHA-256 of every file (and its signature).

    Parameters
    ----------
    model_dir : str or Path
    expected_digest : str, optional
        SHA-256 of ``manifest.json`` pinned elsewhere; refuses a directory whose manifest was
        rewritten along with the files.
    signing_key : SigningKey or None, optional
        The manifest must carry this key's signature. Default: the key configured in the
        environment (``TABGUARD_MODEL_SIGNING_KEY_FILE`` / ``TABGUARD_MODEL_SIGNING_KEY``),
        if any; ``None`` checks the hashes only.

    Returns
    -------
    ModelBundle

    Raises
    ------
    ArtifactIntegrityError
        A missing, modified or unlisted loadable file, an unsafe type in a skops file, or an
        inconsistent ``model.json``. The message names the file and both hashes.

    Examples
    --------
    >>> bundle = load_model("models/credit")  # doctest: +SKIP
    >>> bundle.main.positive_proba(df)  # doctest: +SKIP
    """
    root = Path(model_dir)
    verified = verify_manifest(root, expected_digest, signing_key=signing_key)
    listed = set(verified.files)
    for required in (MODEL_JSON, CONTRACT_YAML):
        if required not in listed:
            raise ArtifactIntegrityError(
                f"{root / required}: not listed in manifest.json; a model directory needs "
                f"{MODEL_JSON} and {CONTRACT_YAML}, the model was refused"
            )
    try:
        meta = json.loads((root / MODEL_JSON).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactIntegrityError(
            f"{root / MODEL_JSON}: not valid JSON ({exc}); the model was refused"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise ArtifactIntegrityError(
            f"{root / MODEL_JSON}: not a tabguard model.json (format {MODEL_FORMAT!r}); "
            "the model was refused"
        )
    if int(meta.get("format_version", 0)) > MODEL_FORMAT_VERSION:
        raise ArtifactIntegrityError(
            f"{root / MODEL_JSON}: format_version {meta.get('format_version')} is newer than "
            f"this tabguard understands ({MODEL_FORMAT_VERSION}); upgrade tabguard"
        )
    try:
        contract = load_contract(root / CONTRACT_YAML)
    except ContractError as exc:
        raise ArtifactIntegrityError(
            f"{root / CONTRACT_YAML}: invalid contract ({exc}); the model was refused"
        ) from None
    if meta.get("contract_sha256") not in (None, contract_hash(contract)):
        raise ArtifactIntegrityError(
            f"{root / MODEL_JSON}: contract_sha256 {meta.get('contract_sha256')} does not match "
            f"contract.yaml ({contract_hash(contract)}); the model was refused"
        )
    scorers = meta.get("scorers") or {}
    if "main" not in scorers:
        raise ArtifactIntegrityError(
            f"{root / MODEL_JSON}: has no scorers.main entry; the model was refused"
        )
    unknown = sorted(set(scorers) - set(SCORER_NAMES))
    if unknown:
        raise ArtifactIntegrityError(
            f"{root / MODEL_JSON}: unknown scorers {unknown} (known: {list(SCORER_NAMES)}); "
            "the model was refused"
        )
    main = _load_scorer(root, "main", scorers["main"], contract, listed)
    fallback = (
        _load_scorer(root, "fallback", scorers["fallback"], contract, listed)
        if "fallback" in scorers
        else None
    )
    return ModelBundle(
        path=root,
        contract=contract,
        version=str(meta.get("version") or f"{contract.name}/unregistered"),
        threshold=float(meta.get("threshold", contract.decision.threshold)),
        metadata=meta,
        main=main,
        fallback=fallback,
        digest=verified.digest,
        files=dict(verified.files),
        signature=verified.signature,
    )


def manifest_digest(model_dir: str | Path) -> str:
    """SHA-256 of a model directory's ``manifest.json`` (no verification of the files)."""
    return read_manifest(Path(model_dir))[1]
