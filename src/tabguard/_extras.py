"""Optional dependencies: which ``pip install 'tabguard[EXTRA]'`` brings which package.

The core install is the scoring service and the commands around it (serve, keys, flags, log,
monitor, contract, redteam). The audits and training need extras; a command that meets a
missing one stops with one line naming the extra (:func:`missing_dependency`).
"""

from __future__ import annotations

from tabguard.errors import MissingDependencyError

#: Importable top-level module -> (the package to install, the extra that installs it).
OPTIONAL_MODULES: dict[str, tuple[str, str]] = {
    "cleanlab": ("cleanlab", "bench"),
    "shap": ("shap", "audit"),
    "fairlearn": ("fairlearn", "audit"),
    "matplotlib": ("matplotlib", "audit"),
    "jinja2": ("jinja2", "audit"),
    "mapie": ("mapie", "train"),
    "mlflow": ("mlflow", "train"),
    "psycopg": ("psycopg", "postgres"),
    "redis": ("redis", "redis"),
    "xgboost": ("xgboost-cpu", "xgboost"),
    "art": ("adversarial-robustness-toolbox", "bench"),
    "pyspark": ("pyspark", "spark"),
    "py4j": ("pyspark", "spark"),
}


#: Extras that include others: ``train`` brings ``audit`` (training runs the data audit).
_INCLUDES = {"train": {"audit", "train"}}


def missing_dependency(
    exc: ImportError, purpose: str, extra: str | None = None
) -> MissingDependencyError | None:
    """The one-line error for an optional package that is not installed, or ``None``.

    Parameters
    ----------
    exc : ImportError
        What the import raised.
    purpose : str
        What needed it, e.g. ``"tabguard audit data"``.
    extra : str, optional
        The extra the caller needs as a whole (``"train"`` for ``tabguard train``), named
        instead of the package's own when it includes it, so one install is enough.

    Returns
    -------
    MissingDependencyError or None
        ``None`` when the missing module is not an optional one (a broken install or a bug).
    """
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if name not in OPTIONAL_MODULES:
        return None
    package, own = OPTIONAL_MODULES[name]
    if extra is not None and own in _INCLUDES.get(extra, {extra}):
        own = extra
    return MissingDependencyError(package, own, purpose)
