"""Load models trained outside tabguard on raw columns: LightGBM text, XGBoost JSON, skops.

The model's own feature names map contract columns to its inputs. Numeric and numeric-coded
category columns are passed as their raw values; string categories are coded with the
category list the model stored at training time (LightGBM's ``pandas_categorical``, the
categories XGBoost ≥ 3 saves, or a scikit-learn pipeline's encoders, which receive strings).
A string category without a stored list cannot be coded reliably and is refused.

skops files are opened with an explicit allowlist of types (:data:`SKOPS_TRUSTED_TYPES`):
the file's untrusted types are read from its JSON schema first, and anything outside the list
is refused before an object is created. Nothing here ever unpickles.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabguard.contract import Contract
from tabguard.errors import ArtifactIntegrityError, ContractError, MissingDependencyError
from tabguard.model_audit._model import AuditedModel, decode_raw, encode_raw, same_label

# Types skops does not trust by default that a scikit-learn classifier file may hold.
# skops already trusts scikit-learn estimators and numpy/builtin containers it knows how to
# rebuild without pickle; these are the remaining, inert, data-only types.
SKOPS_TRUSTED_TYPES = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.link.LogitLink",
        "numpy.dtype",
        "numpy.float64",
        "numpy.float32",
        "numpy.int64",
        "numpy.int32",
        "numpy.bool_",
        "collections.OrderedDict",
        "builtins.slice",
    }
)


class ThirdPartyModel:
    """A raw-column model from another library, as a :class:`MatrixModel`.

    Parameters
    ----------
    native : object
        ``lightgbm.Booster``, ``xgboost.Booster`` or a fitted scikit-learn classifier.
    library : {"lightgbm", "xgboost", "sklearn"}
    feature_names : list of str
        The model's inputs in order (contract feature names).
    codes : dict
        Feature → stored category list; the matrix holds positions in these lists.
    contract : Contract
    positive_index : int
        Column of ``predict_proba`` holding the positive class (scikit-learn).
    string_input : bool
        scikit-learn pipelines that encode categories themselves receive raw strings.
    """

    def __init__(
        self,
        native: Any,
        library: str,
        feature_names: list[str],
        codes: dict[str, list[Any]],
        contract: Contract,
        *,
        positive_index: int = 1,
        string_input: bool = False,
        xgb_types: list[str] | None = None,
    ) -> None:
        self.native = native if not string_input else None
        self.estimator = native
        self.library = library
        self.feature_names = feature_names
        self.contract = contract
        self._codes = codes
        self._positive_index = positive_index
        self._string_input = string_input
        self._xgb_types = xgb_types
        # (tree estimator, matrix column of each of its inputs) for pipelines whose
        # preprocessing copies columns unchanged; read by AuditedModel.trees.
        self.tree_source: tuple[Any, list[int]] | None = (
            _pipeline_trees(native, feature_names) if library == "sklearn" else None
        )

    def encode(self, df_raw: pd.DataFrame) -> np.ndarray:
        """Raw values; categories as positions in the model's stored lists."""
        return encode_raw(df_raw, self.feature_names, self._codes)

    def categories(self, feature: str) -> list[Any] | None:
        """The model's stored category list of a categorical input."""
        return self._codes.get(feature)

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """P(positive) from the native model."""
        X = np.ascontiguousarray(X, dtype=float)
        if self.library == "lightgbm":
            kw = {"num_threads": 1} if len(X) < 512 else {}
            return np.asarray(self.estimator.predict(X, **kw), dtype=float)
        if self.library == "xgboost":
            import xgboost as xgb

            dm = xgb.DMatrix(
                X,
                feature_names=self.feature_names,
                feature_types=self._xgb_types,
                enable_categorical=bool(self._codes),
            )
            return np.asarray(self.estimator.predict(dm), dtype=float)
        if self._string_input:
            frame = decode_raw(X, self.feature_names, self._codes, self.contract)
        else:
            frame = pd.DataFrame(X, columns=self.feature_names)
        proba = self.estimator.predict_proba(frame)
        return np.asarray(proba[:, self._positive_index], dtype=float)


def _pipeline_trees(est: Any, names: list[str]) -> tuple[Any, list[int]] | None:
    """For ``Pipeline([ColumnTransformer, trees])``: the trees and their input columns.

    Only passthrough columns map to matrix columns (their values are unchanged); encoded or
    scaled columns map to -1. Returns None for anything else.
    """
    steps = getattr(est, "steps", None)
    if not steps or len(steps) != 2:
        return None
    pre, final = steps[0][1], steps[1][1]
    if not (hasattr(final, "estimators_") or hasattr(final, "tree_")):
        return None
    transformers = getattr(pre, "transformers_", None)
    if transformers is None:
        return None
    pos = {n: i for i, n in enumerate(names)}
    out: list[int] = []
    for _name, trans, cols in transformers:
        if trans == "drop":
            continue
        col_names = [names[c] if isinstance(c, int | np.integer) else str(c) for c in cols]
        identity = trans == "passthrough" or (
            type(trans).__name__ == "FunctionTransformer" and getattr(trans, "func", 0) is None
        )
        if identity:  # newer scikit-learn wraps remainder="passthrough" this way
            out.extend(pos.get(c, -1) for c in col_names)
            continue
        try:
            width = len(trans.get_feature_names_out(col_names))
        except (AttributeError, ValueError, TypeError):
            return None
        out.extend([-1] * width)
    n_in = getattr(final, "n_features_in_", None)
    if n_in is not None and n_in != len(out):
        return None
    return final, out


# --------------------------------------------------------------------------------------------
# Detection and loading
# --------------------------------------------------------------------------------------------
def sniff_model_file(path: Path) -> str:
    """Return ``lightgbm``, ``xgboost``, ``skops`` or ``tabguard`` (a model directory).

    Raises
    ------
    ArtifactIntegrityError
        Not a file format the audit reads (the message lists the formats).
    """
    if path.is_dir():
        if (path / "manifest.json").is_file():
            return "tabguard"
        raise ArtifactIntegrityError(
            f"{path}: is a directory without manifest.json, not a tabguard model directory; "
            "pass a model directory written by `tabguard train` or a model file"
        )
    if not path.is_file():
        raise ArtifactIntegrityError(f"{path}: model file not found; check the path")
    with path.open("rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"PK\x03\x04"):
        return "skops"
    text = head.lstrip()
    if text.startswith(b"tree\n") or text.startswith(b"tree\r\n"):
        return "lightgbm"
    if text.startswith(b"{") and b'"learner"' in head:
        return "xgboost"
    if head.startswith(b"\x80") or path.suffix.lower() in (".pkl", ".pickle", ".joblib"):
        raise ArtifactIntegrityError(
            f"{path}: looks like a pickle/joblib file; tabguard never loads pickles. "
            "Export the model as LightGBM text (Booster.save_model), XGBoost JSON "
            "(save_model('m.json')) or skops (skops.io.dump)"
        )
    raise ArtifactIntegrityError(
        f"{path}: unrecognised model file; expected a LightGBM text model, an XGBoost JSON "
        "model or a skops file (or a tabguard model directory)"
    )


def load_third_party(
    path: str | Path, contract: Contract, *, threshold: float | None = None
) -> AuditedModel:
    """Load a third-party model file trained on the contract's raw columns.

    Parameters
    ----------
    path : str or Path
        LightGBM text model, XGBoost JSON model, or skops file of a scikit-learn classifier.
    contract : Contract
        Names and types of the raw columns.
    threshold : float, optional
        Decision threshold (default: the contract's).

    Returns
    -------
    AuditedModel

    Raises
    ------
    ArtifactIntegrityError
        Unreadable or unsafe file, unsupported objective, unknown skops types.
    ContractError
        The model's inputs do not match the contract (unknown names, string categories
        without a stored category list).
    """
    p = Path(path)
    kind = sniff_model_file(p)
    if kind == "lightgbm":
        model = _load_lightgbm(p, contract)
    elif kind == "xgboost":
        model = _load_xgboost(p, contract)
    elif kind == "skops":
        model = _load_skops(p, contract)
    else:
        raise ArtifactIntegrityError(
            f"{p}: is a tabguard model directory; load it with tabguard.training.load_model"
        )
    return AuditedModel(model, contract, threshold, name=p.name, source=f"{kind}:{p}")


def _check_names(path: Path, names: list[str], contract: Contract) -> None:
    unknown = [n for n in names if n not in contract.features]
    if unknown:
        raise ContractError(
            f"{path.name} inputs",
            "every model input must be a contract feature (matched by name)",
            unknown[:6],
            f"rename the model's features or add them to contract '{contract.name}'",
        )


def _string_categories(contract: Contract, name: str) -> bool:
    spec = contract.features[name]
    return spec.type == "category" and any(isinstance(c, str) for c in spec.categories or [])


def _missing_codes(path: Path, names: list[str], codes: dict[str, list[Any]], c: Contract) -> None:
    for n in names:
        if _string_categories(c, n) and n not in codes:
            raise ContractError(
                f"features.{n}",
                "string categories need the category list the model was trained with",
                c.features[n].categories,
                f"{path.name} stores none for {n!r}; train on a pandas 'category' column "
                "(LightGBM, XGBoost enable_categorical) or use a scikit-learn pipeline that "
                "encodes the strings",
            )


def _load_lightgbm(path: Path, contract: Contract) -> ThirdPartyModel:
    import lightgbm as lgb

    try:
        booster = lgb.Booster(model_file=str(path))
    except (lgb.basic.LightGBMError, ValueError, UnicodeDecodeError) as exc:
        raise ArtifactIntegrityError(
            f"{path}: not a valid LightGBM text model ({str(exc).strip()[:200]})"
        ) from None
    objective = str(booster.dump_model().get("objective", ""))
    if not objective.startswith(("binary", "cross_entropy")):
        raise ArtifactIntegrityError(
            f"{path}: LightGBM objective {objective!r} is not a binary classifier; the audit "
            "needs P(positive label)"
        )
    names = list(booster.feature_name())
    _check_names(path, names, contract)
    cat_idx = booster.params.get("categorical_feature") or []
    if isinstance(cat_idx, str):
        cat_idx = [int(i) for i in cat_idx.split(",") if i.strip()]
    stored = list(booster.pandas_categorical or [])
    codes: dict[str, list[Any]] = {}
    if stored:
        for j, cats in zip(sorted(int(i) for i in cat_idx), stored, strict=False):
            codes[names[j]] = list(cats)
    _missing_codes(path, names, codes, contract)
    return ThirdPartyModel(booster, "lightgbm", names, codes, contract)


def _load_xgboost(path: Path, contract: Contract) -> ThirdPartyModel:
    try:
        import xgboost as xgb
    except ImportError:
        raise MissingDependencyError("xgboost-cpu", "xgboost", "auditing XGBoost models") from None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        objective = raw["learner"]["objective"]["name"]
        booster = xgb.Booster(model_file=str(path))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise ArtifactIntegrityError(
            f"{path}: not a valid XGBoost JSON model ({type(exc).__name__}: {exc})"
        ) from None
    except xgb.core.XGBoostError as exc:
        raise ArtifactIntegrityError(
            f"{path}: XGBoost cannot read this model ({str(exc).splitlines()[0][:200]})"
        ) from None
    if objective not in ("binary:logistic", "reg:logistic"):
        raise ArtifactIntegrityError(
            f"{path}: XGBoost objective {objective!r} is not a probability of a binary label; "
            "train with objective='binary:logistic'"
        )
    names = list(booster.feature_names or [])
    if not names:
        raise ContractError(
            f"{path.name} inputs",
            "the model must store its feature names to map contract columns",
            None,
            "train on a pandas DataFrame (or set Booster.feature_names) and save again",
        )
    _check_names(path, names, contract)
    types = list(booster.feature_types or ["float"] * len(names))
    codes: dict[str, list[Any]] = {}
    if "c" in types:
        try:
            cats = booster.get_categories(export_to_arrow=True).to_arrow()
        except (AttributeError, TypeError, xgb.core.XGBoostError):
            cats = []
        for n, arr in cats:
            if arr is not None:
                codes[n] = list(arr.to_pylist())
    _missing_codes(path, names, codes, contract)
    return ThirdPartyModel(booster, "xgboost", names, codes, contract, xgb_types=types)


def _load_skops(path: Path, contract: Contract) -> ThirdPartyModel:
    import skops.io as sio

    try:
        with zipfile.ZipFile(path) as zf:
            if "schema.json" not in zf.namelist():
                raise ArtifactIntegrityError(f"{path}: ZIP file without schema.json, not skops")
        untrusted = list(sio.get_untrusted_types(file=path))
    except (zipfile.BadZipFile, json.JSONDecodeError, KeyError, ValueError, OSError) as exc:
        raise ArtifactIntegrityError(
            f"{path}: not a valid skops file ({type(exc).__name__}: {exc})"
        ) from None
    unsafe = sorted(set(untrusted) - SKOPS_TRUSTED_TYPES)
    if unsafe:
        raise ArtifactIntegrityError(
            f"{path}: skops file holds types outside the audit's trusted list: {unsafe}; "
            "refused (only scikit-learn classifiers and their data types are loaded)"
        )
    try:
        est = sio.load(path, trusted=sorted(set(untrusted)))
    except Exception as exc:  # skops raises many types; all mean "unusable file"
        raise ArtifactIntegrityError(
            f"{path}: skops could not load the model ({type(exc).__name__}: {exc})"
        ) from None
    if not hasattr(est, "predict_proba") or not hasattr(est, "classes_"):
        raise ArtifactIntegrityError(
            f"{path}: holds a {type(est).__name__}, not a fitted classifier with predict_proba"
        )
    return sklearn_model(est, contract, path.name)


def sklearn_model(est: Any, contract: Contract, name: str) -> ThirdPartyModel:
    """Adapt a fitted scikit-learn classifier or pipeline trained on the contract's raw
    columns (its ``feature_names_in_``); ``name`` is shown in errors.

    Raises
    ------
    ContractError
        The estimator does not know its feature names, they are not contract features, or its
        classes lack the contract's positive label.
    """
    names_in = getattr(est, "feature_names_in_", None)
    if names_in is None:
        raise ContractError(
            f"{name} inputs",
            "the estimator must know its feature names (feature_names_in_)",
            None,
            "fit it on a pandas DataFrame whose columns are the contract's feature names",
        )
    names = [str(n) for n in names_in]
    _check_names(Path(name), names, contract)
    classes = list(est.classes_)
    pos = contract.label.positive
    match = [i for i, c in enumerate(classes) if same_label(c, pos)]
    if not match:
        raise ContractError(
            "label.positive",
            f"must be one of the model's classes {classes}",
            pos,
            "fix the contract's label.positive or the model",
        )
    string_cols = [n for n in names if _string_categories(contract, n)]
    codes = {n: list(contract.features[n].categories or []) for n in string_cols}
    return ThirdPartyModel(
        est, "sklearn", names, codes, contract, positive_index=match[0], string_input=bool(codes)
    )
