"""Reproducible, robust training (requirements T1-T3) and the model directory format.

A model directory holds the main model, an optional fallback model trained without gameable
features, the contract, the transform options and a SHA-256 manifest; nothing is a pickle.
:func:`load_model` verifies every hash before it parses any file.

Loading a model never imports MLflow or MAPIE (serving stays light); only training does.

Examples
--------
>>> from tabguard.training import load_model
>>> bundle = load_model("models/credit")  # doctest: +SKIP
>>> bundle.main.score_record({"LIMIT_BAL": 20000, "AGE": 24, ...})  # doctest: +SKIP
(0.61, [])
"""

from tabguard.errors import ArtifactIntegrityError
from tabguard.training._bundle import ModelBundle, load_model, manifest_digest, save_model
from tabguard.training._codecs import SKOPS_TRUSTED_TYPES
from tabguard.training._manifest import VerifiedManifest, verify_manifest
from tabguard.training._scorer import MODEL_KINDS, ModelKind, Scorer

__all__ = [
    "MODEL_KINDS",
    "SKOPS_TRUSTED_TYPES",
    "ArtifactIntegrityError",
    "ModelBundle",
    "ModelKind",
    "Scorer",
    "VerifiedManifest",
    "load_model",
    "manifest_digest",
    "save_model",
    "verify_manifest",
]
