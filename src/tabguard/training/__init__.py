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
from tabguard.training._errors import (
    DataAuditRefusedError,
    TrackingError,
    TrainingConfigError,
    TrainingError,
)
from tabguard.training._manifest import VerifiedManifest, verify_manifest
from tabguard.training._presets import PRESET_NAMES, PRESET_OPTIONS, PRESETS, preset_params
from tabguard.training._scorer import MODEL_KINDS, ModelKind, Scorer
from tabguard.training._train import TrainConfig, TrainResult, train

__all__ = [
    "MODEL_KINDS",
    "PRESETS",
    "PRESET_NAMES",
    "PRESET_OPTIONS",
    "SKOPS_TRUSTED_TYPES",
    "ArtifactIntegrityError",
    "DataAuditRefusedError",
    "ModelBundle",
    "ModelKind",
    "Scorer",
    "TrackingError",
    "TrainConfig",
    "TrainResult",
    "TrainingConfigError",
    "TrainingError",
    "VerifiedManifest",
    "load_model",
    "manifest_digest",
    "preset_params",
    "save_model",
    "train",
    "verify_manifest",
]
