"""``tabguard serve MODEL_DIR``: the guarded scoring service under uvicorn."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from tabguard.cli._app import app, console


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration plus tabguard's own logger."""
    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    cfg["loggers"]["tabguard"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return cfg


@app.command("serve")
def serve_cmd(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by `tabguard train`.")],
    host: Annotated[
        str | None, typer.Option(help="Interface to bind (default \\[server] host or 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default \\[server] port or 8000).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes (default \\[server] workers or 1); they share limits, flags, "
            "keys and the log through the configured stores.",
            min=1,
            max=64,
        ),
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            help="Training data (CSV/Parquet) to profile for out-of-distribution probing "
            "detection; stored under TABGUARD_HOME for later starts."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
) -> None:
    """Serve guarded real-time decisions of a model directory (see docs/serving.md)."""
    from tabguard.serving._app import MODEL_ENV, ScoringService, resolve_reference
    from tabguard.serving._config import HOME_ENV, load_config
    from tabguard.serving._metrics import MULTIPROC_ENV
    from tabguard.serving._server import describe, run_workers
    from tabguard.serving._server import serve as run_server
    from tabguard.serving._stores import require_drivers
    from tabguard.training import load_model

    cfg = load_config()  # validated once here; each worker validates the same file at its start
    require_drivers(cfg)  # one line naming the extra, not a traceback in every worker
    server = cfg.server
    # Fail here, with one line, rather than in every worker: verify the model, compile and
    # check the fast path (numba caches the compiled code for the workers), profile the
    # reference data once.
    bundle = load_model(model_dir)
    profile = resolve_reference(bundle, cfg, reference)
    service = ScoringService(bundle, cfg, reference=profile)
    n_workers = workers or server.workers
    bind_host, bind_port = host or server.host, port or server.port
    for fast in (service.models.main, service.models.fallback):
        if fast is not None:
            how = fast.path if fast.reason is None else f"{fast.path} ({fast.reason})"
            console.print(f"scorer {fast.name}: {how}", soft_wrap=True, markup=False)
    console.print(f"model signature: {bundle.signature}", soft_wrap=True, markup=False)
    if cfg.environment:
        console.print(
            "settings from the environment: "
            + ", ".join(f"{var} ({key})" for key, var in sorted(cfg.environment.items())),
            soft_wrap=True,
            markup=False,
        )
    console.print(
        f"serving {bundle.version} on http://{bind_host}:{bind_port} with {n_workers} worker(s); "
        f"state in {cfg.home}; docs at http://{bind_host}:{bind_port}/docs",
        soft_wrap=True,
        markup=False,
    )
    os.environ[MODEL_ENV] = str(model_dir.resolve())
    os.environ[HOME_ENV] = str(cfg.home.resolve())
    metrics_dir: str | None = None
    if n_workers > 1 and not os.environ.get(MULTIPROC_ENV):
        metrics_dir = tempfile.mkdtemp(prefix="tabguard-metrics-")
        os.environ[MULTIPROC_ENV] = metrics_dir
    options: dict[str, Any] = {
        # httptools on uvloop, with the head-size limit and request timeout of [server].
        "request_timeout": server.request_timeout,
        "max_head_bytes": server.max_head_bytes,
        "host": bind_host,
        "port": bind_port,
        "log_config": _log_config(log_level),
        "log_level": log_level,
        "access_log": False,
        # The source address of failed-authentication limits comes from [server]
        # trusted_proxies, never from a header uvicorn would believe from 127.0.0.1.
        "proxy_headers": False,
    }
    console.print(
        describe(**options),
        soft_wrap=True,
        markup=False,
    )
    try:
        if n_workers == 1:
            from tabguard.serving._app import create_app

            run_server(create_app(service=service), **options)
        else:
            # Not uvicorn.run: its multi-worker listener leaves Nagle on (40 ms per response).
            run_workers(
                "tabguard.serving._app:app_from_env", workers=n_workers, factory=True, **options
            )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
