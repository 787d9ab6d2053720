"""MLflow tracking and model registry (the only module that imports MLflow).

Default store: ``sqlite:///$TABGUARD_HOME/mlflow.db`` with artifacts in
``$TABGUARD_HOME/mlartifacts`` (``TABGUARD_HOME`` defaults to ``./.tabguard``);
``MLFLOW_TRACKING_URI`` or an explicit URI (a server such as ``http://mlflow:5000``) wins.
Every MLflow failure becomes a :class:`~tabguard.training.TrackingError` that names the store,
the step that failed and what to do. Loading a model never imports this module.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tabguard._home import tabguard_home
from tabguard.training._errors import TrackingError

_BATCH = 100  # MLflow's limit of params per log_batch call


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else a SQLite store under :func:`tabguard_home`."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(tabguard_home() / 'mlflow.db').resolve()}"


def quiet_mlflow() -> None:
    """Silence MLflow's INFO logs (database migrations) and warnings (for the CLI)."""
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    import mlflow  # noqa: F401 - MLflow configures its loggers on import; override afterwards

    for name in ("mlflow", "alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"mlflow(\..*)?")
    warnings.filterwarnings("ignore", message=r".*[Mm][Ll]flow.*")


def _artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps artifacts: beside a local SQLite/file store."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        db = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
        if db is None or str(db) in ("", ":memory:"):
            return None
        # sqlite:////abs/path keeps its leading slash after removeprefix("sqlite:///").
        return (db.parent / "mlartifacts").resolve().as_uri()
    if parsed.scheme in ("", "file"):
        return None  # a FileStore keeps artifacts inside its own directory
    return None  # a tracking server decides


class Tracker:
    """One MLflow run of ``tabguard train`` and the registered model version it produces.

    Parameters
    ----------
    tracking_uri : str, optional
        Defaults to :func:`default_tracking_uri`.
    experiment : str
        Experiment name (created when absent).
    registry_name : str
        Registered model name (the contract name unless given).
    """

    def __init__(
        self, tracking_uri: str | None, experiment: str, registry_name: str, *, quiet: bool = True
    ) -> None:
        if quiet:
            quiet_mlflow()
        self.uri = tracking_uri or default_tracking_uri()
        self.experiment = experiment
        self.registry_name = registry_name
        self.run_id: str | None = None
        self.artifact_uri: str | None = None
        self.version: str | None = None
        self.experiment_id: str | None = None
        with self._step("connecting to the store"):
            from mlflow.tracking import MlflowClient

            if self.uri.startswith("sqlite:///"):
                Path(self.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def _step(self, what: str) -> _Step:
        return _Step(self, what)

    def connect(self) -> str:
        """Reach the store and create the experiment if needed (fail fast, before training)."""
        if self.experiment_id is not None:
            return self.experiment_id
        with _fail_fast_http(), self._step("connecting to the store"):
            exp = self._client.get_experiment_by_name(self.experiment)
            if exp is None:
                loc = _artifact_location(self.uri)
                self.experiment_id = self._client.create_experiment(
                    self.experiment, artifact_location=loc
                )
            else:
                self.experiment_id = exp.experiment_id
        return str(self.experiment_id)

    def start(self, run_name: str, tags: Mapping[str, str]) -> str:
        """Start a run (connecting first if needed); return its id."""
        self.connect()
        with self._step("starting a run"):
            run = self._client.create_run(
                str(self.experiment_id),
                run_name=run_name,
                tags={k: str(v) for k, v in tags.items()},
            )
        self.run_id = run.info.run_id
        self.artifact_uri = run.info.artifact_uri
        return self.run_id

    def reserve_version(self, artifact_path: str = "model") -> str:
        """Register the next model version, pointing at where the run's artifacts will be.

        The version number is needed inside ``model.json`` before the directory is written
        and uploaded, so the version is created first with its final source URI.
        """
        from mlflow.exceptions import MlflowException

        with self._step(f"registering model {self.registry_name!r}"):
            try:
                self._client.get_registered_model(self.registry_name)
            except MlflowException:
                self._client.create_registered_model(
                    self.registry_name, description="Trained by tabguard train"
                )
            mv = self._client.create_model_version(
                self.registry_name,
                source=f"{self.artifact_uri}/{artifact_path}",
                run_id=self.run_id,
            )
        self.version = str(mv.version)
        return self.version

    def log(
        self,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        tags: Mapping[str, Any],
    ) -> None:
        """Log parameters, metrics and tags of the run."""
        from mlflow.entities import Metric, Param, RunTag

        run_id = self._require_run()
        with self._step("logging params, metrics and tags"):
            items = [Param(k, str(v)[:6000]) for k, v in params.items()]
            for i in range(0, len(items), _BATCH):
                self._client.log_batch(run_id, params=items[i : i + _BATCH])
            import time

            now = int(time.time() * 1000)
            ms = [Metric(k, float(v), now, 0) for k, v in metrics.items() if _finite(v)]
            for i in range(0, len(ms), _BATCH):
                self._client.log_batch(run_id, metrics=ms[i : i + _BATCH])
            ts = [RunTag(k, str(v)) for k, v in tags.items() if v is not None]
            if ts:
                self._client.log_batch(run_id, tags=ts)

    def log_model_dir(self, model_dir: Path, artifact_path: str = "model") -> None:
        """Upload the model directory as the run's ``model`` artifacts."""
        run_id = self._require_run()
        with self._step(f"uploading {model_dir} as artifacts"):
            self._client.log_artifacts(run_id, str(model_dir), artifact_path)

    def tag_version(self, tags: Mapping[str, Any]) -> None:
        """Tag the registered version (e.g. the manifest digest to pin at deploy time)."""
        if self.version is None:
            return
        with self._step(f"tagging {self.registry_name} version {self.version}"):
            for k, v in tags.items():
                self._client.set_model_version_tag(self.registry_name, self.version, k, str(v))

    def finish(self, ok: bool = True) -> None:
        """Close the run (``FINISHED`` or ``FAILED``)."""
        if self.run_id is None:
            return
        with self._step("closing the run"):
            self._client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED")

    def abort(self) -> None:
        """Best effort after a failure: mark the run failed and drop the reserved version."""
        try:
            if self.version is not None:
                self._client.delete_model_version(self.registry_name, self.version)
            if self.run_id is not None:
                self._client.set_terminated(self.run_id, "FAILED")
        except Exception:  # noqa: S110 - the original error is the one to report
            pass

    def _require_run(self) -> str:
        if self.run_id is None:
            raise RuntimeError("Tracker.start() must be called first")
        return self.run_id

    def run_url(self) -> str | None:
        """Link to the run in a tracking server's UI (None for local stores)."""
        if self.uri.startswith(("http://", "https://")) and self.run_id:
            return f"{self.uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"
        return None


@contextmanager
def _fail_fast_http() -> Iterator[None]:
    """Few retries and a short timeout for the first contact with a tracking server.

    MLflow's defaults (7 retries, exponential backoff, 120 s timeout) make an unreachable
    server fail after ~4 minutes (measured); the user's own settings are kept when present.
    """
    fast = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    }
    added = [k for k in fast if k not in os.environ]
    for k in added:
        os.environ[k] = fast[k]
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def _clip(text: str, n: int = 240) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _finite(v: Any) -> bool:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return False
    return f == f and f not in (float("inf"), float("-inf"))


class _Step:
    """Maps any exception inside a tracking step to a :class:`TrackingError`."""

    def __init__(self, tracker: Tracker, what: str) -> None:
        self.tracker, self.what = tracker, what

    def __enter__(self) -> _Step:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, TrackingError | KeyboardInterrupt):
            return
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrackingError(
            f"MLflow tracking failed while {self.what} (store {self.tracker.uri}): "
            f"{type(exc).__name__}: {_clip(detail)}. The run is not tracked; check the store or "
            "pass --tracking-uri (or set MLFLOW_TRACKING_URI)"
        ) from exc
