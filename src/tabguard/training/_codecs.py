"""Writing and reading estimators without pickle.

- LightGBM boosters are saved as LightGBM's own text model (``Booster.model_to_string``).
- scikit-learn estimators (random forest, logistic-regression pipelines) are saved with skops.
  Loading reads the skops file's ``schema.json`` first (plain JSON inside the ZIP) and refuses
  any type outside :data:`SKOPS_TRUSTED_TYPES`; skops then loads with exactly the types found,
  never ``trusted=True``. The manifest hash has been verified before either step.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Protocol

from tabguard.errors import ArtifactIntegrityError

# Every type a tabguard-trained sklearn model may contain. A file naming anything else (e.g.
# builtins.eval, os.system, a custom class) is refused before skops instantiates anything.
SKOPS_TRUSTED_TYPES = frozenset(
    {
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "builtins.slice",
        "builtins.NoneType",
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.float64",
        "numpy.float32",
        "numpy.int64",
        "numpy.int32",
        "numpy.int8",
        "numpy.bool_",
        "numpy.bool",
        "sklearn.pipeline.Pipeline",
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._tree.Tree",
    }
)

# The top-level object a file of each kind must hold.
_TOP_LEVEL = {
    "random_forest": {"sklearn.ensemble._forest.RandomForestClassifier"},
    "logistic": {
        "sklearn.pipeline.Pipeline",
        "sklearn.linear_model._logistic.LogisticRegression",
    },
}


class Codec(Protocol):
    """Saves and loads one kind of estimator."""

    suffix: str

    def save(self, native: Any, path: Path) -> None:
        """Write ``native`` to ``path``."""

    def load(self, path: Path, kind: str) -> Any:
        """Read the estimator at ``path`` (its hash is already verified)."""


class LightGBMCodec:
    """LightGBM's native text format."""

    suffix = ".lgb.txt"

    def save(self, native: Any, path: Path) -> None:
        """Write the booster as text."""
        path.write_text(native.model_to_string(), encoding="utf-8")

    def load(self, path: Path, kind: str) -> Any:
        """Parse the text model."""
        import lightgbm as lgb

        try:
            return lgb.Booster(model_str=path.read_text(encoding="utf-8"))
        except (lgb.basic.LightGBMError, UnicodeDecodeError, ValueError) as exc:
            raise ArtifactIntegrityError(
                f"{path}: not a valid LightGBM text model ({exc}); the model was refused"
            ) from None


def _schema_types(path: Path) -> tuple[str, set[str]]:
    """Top-level type and every type named in a skops file, read from its JSON schema."""
    try:
        with zipfile.ZipFile(path) as zf:
            schema = json.loads(zf.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactIntegrityError(
            f"{path}: not a valid skops file ({type(exc).__name__}: {exc}); the model was refused"
        ) from None
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "__class__" in node and "__module__" in node:
                found.add(f"{node['__module__']}.{node['__class__']}")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    top = f"{schema.get('__module__')}.{schema.get('__class__')}"
    return top, found


class SkopsCodec:
    """skops (a ZIP of JSON + ``.npy`` arrays, no pickle) with an explicit type allowlist."""

    suffix = ".skops"

    def save(self, native: Any, path: Path) -> None:
        """Write the estimator with skops."""
        import skops.io as sio

        sio.dump(native, path)

    def load(self, path: Path, kind: str) -> Any:
        """Load after checking every type the file names against the allowlist."""
        top, found = _schema_types(path)
        unsafe = sorted(found - SKOPS_TRUSTED_TYPES)
        if unsafe:
            raise ArtifactIntegrityError(
                f"{path}: skops file names types outside tabguard's trusted list: {unsafe}; "
                "the model was refused (only tabguard-trained sklearn models are loaded)"
            )
        if top not in _TOP_LEVEL.get(kind, set()):
            raise ArtifactIntegrityError(
                f"{path}: holds a {top}, expected one of {sorted(_TOP_LEVEL.get(kind, set()))} "
                f"for a {kind!r} scorer; the model was refused"
            )
        import skops.io as sio

        try:
            return sio.load(path, trusted=sorted(found))
        except Exception as exc:  # skops raises many types; all mean "unusable file"
            raise ArtifactIntegrityError(
                f"{path}: skops could not load the model ({type(exc).__name__}: {exc}); "
                "the model was refused"
            ) from None


CODECS: dict[str, Codec] = {
    "lightgbm": LightGBMCodec(),
    "random_forest": SkopsCodec(),
    "logistic": SkopsCodec(),
}
