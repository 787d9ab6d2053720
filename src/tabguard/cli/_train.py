"""``tabguard train``: audited, tracked, robust training into a verified model directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tabguard.cli._app import app, console, err_console, output_directory
from tabguard.errors import DataError

if TYPE_CHECKING:
    from tabguard.training import TrainResult
    from tabguard.training._signing import SigningKey


@app.command("train")
def train_cmd(
    data: Annotated[Path, typer.Argument(help="Training data (CSV or Parquet) with the label.")],
    contract_path: Annotated[Path, typer.Option("--contract", "-c", help="Contract YAML.")],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Model directory to write.", callback=output_directory),
    ],
    model: Annotated[
        str, typer.Option(help="Model family: lightgbm, random_forest or logistic.")
    ] = "lightgbm",
    preset: Annotated[
        str, typer.Option(help="Regularisation preset: default or robust.")
    ] = "default",
    allow_findings: Annotated[
        bool,
        typer.Option(
            "--allow-findings",
            help="Train despite critical data-audit findings (on the clean rows).",
        ),
    ] = False,
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow store (default MLFLOW_TRACKING_URI or .tabguard/mlflow.db)."),
    ] = None,
    tracking: Annotated[
        bool, typer.Option("--tracking/--no-tracking", help="Log the run in MLflow.")
    ] = True,
    name: Annotated[
        str | None, typer.Option(help="Registered model name (default: the contract name).")
    ] = None,
    bins: Annotated[
        str | None,
        typer.Option(help="Coarse bins from the contract: all, none or FEATURE,FEATURE."),
    ] = None,
    noise: Annotated[
        float,
        typer.Option(help="Training-only noise on gameable numeric features (x feature std)."),
    ] = 0.0,
    drop_gameable: Annotated[
        bool,
        typer.Option("--drop-gameable", help="Train the main model without gameable features."),
    ] = False,
    monotone: Annotated[
        bool | None,
        typer.Option(
            "--monotone/--no-monotone", help="Contract monotone constraints (default: preset)."
        ),
    ] = None,
    no_fallback: Annotated[
        bool, typer.Option("--no-fallback", help="Skip the fallback model.")
    ] = False,
    alpha: Annotated[float, typer.Option(help="Conformal miscoverage (0.1 → 90% sets).")] = 0.1,
    seed: Annotated[int, typer.Option(help="Random seed (splits, noise, models).")] = 0,
    jobs: Annotated[int, typer.Option(help="Threads for fitting (1 is reproducible).")] = 1,
    sign: Annotated[
        bool,
        typer.Option(
            "--sign",
            help="Sign the manifest with the model signing key: --signing-key, else the key "
            "file or key the environment names (docs/training.md, signed models).",
        ),
    ] = False,
    signing_key: Annotated[
        Path | None,
        typer.Option(help="File holding the model signing key (kept outside the model)."),
    ] = None,
) -> None:
    """Audit the data, train main and fallback models, evaluate, save and track them.

    Exit status 1 when the data audit has critical findings (see --allow-findings).
    """
    from tabguard.contract import load_contract
    from tabguard.io import read_table
    from tabguard.progress import RichProgress
    from tabguard.training import DataAuditRefusedError, TrainConfig, train

    cfg = TrainConfig(
        model=model,
        preset=preset,
        bins=bins,
        noise=noise,
        drop_gameable=drop_gameable,
        monotone=monotone,
        fallback=not no_fallback,
        allow_findings=allow_findings,
        seed=seed,
        alpha=alpha,
        track=tracking,
        tracking_uri=tracking_uri,
        registry_name=name,
        n_jobs=jobs,
    )
    cfg.validate()  # bad options fail in one line before any file is read
    key = _signing_key(sign, signing_key)
    contract = load_contract(contract_path)
    df = read_table(data, contract=contract)
    if tracking:
        from tabguard.training._tracking import quiet_mlflow

        quiet_mlflow()
    try:
        with RichProgress(transient=True) as progress:
            result = train(
                df, contract, cfg, out=out, progress=progress, data_file=data, signing_key=key
            )
    except DataAuditRefusedError as exc:
        # the message starts "training refused: ..."
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    _summary(result)


def _signing_key(sign: bool, path: Path | None) -> SigningKey | None:
    """The key ``--sign`` uses; a configured key without ``--sign`` is refused before training."""
    from tabguard.training._signing import KEY_ENV, KEY_FILE_ENV, configured_key, key_from_file

    key = key_from_file(path) if path is not None else configured_key()
    if sign and key is None:
        raise DataError(
            f"--sign: no model signing key; pass --signing-key FILE or set {KEY_FILE_ENV} "
            f"(or {KEY_ENV})"
        )
    if not sign and key is not None:
        raise DataError(
            f"a model signing key is configured ({key.source}) and loaders that have it refuse "
            "unsigned models: pass --sign to sign this one, or unset the key"
        )
    return key if sign else None


def _ci(m: dict[str, float]) -> str:
    return f"{m['value']:.4f}  [{m['ci_low']:.4f}, {m['ci_high']:.4f}]"


def _summary(res: TrainResult) -> None:
    ev = res.evaluation
    main = ev["main"]
    fb = ev.get("fallback")
    table = Table(title=f"{res.version} — held-out {main['n']} rows (95% bootstrap CI)")
    table.add_column("metric")
    table.add_column("main", justify="right")
    if fb:
        table.add_column("fallback (no gameable)", justify="right")
    for key, label in (
        ("auc", "AUC"),
        ("log_loss", "log loss"),
        ("brier", "Brier"),
        ("accuracy", f"accuracy @ {ev['threshold']}"),
        ("precision", f"precision @ {ev['threshold']}"),
        ("recall", f"recall @ {ev['threshold']}"),
    ):
        row = [label, _ci(main["metrics"][key])]
        if fb:
            row.append(_ci(fb["metrics"][key]))
        table.add_row(*row)
    console.print(table)
    conf = main["conformal"]
    console.print(
        f"conformal {conf['target_coverage']:.0%} sets: coverage {conf['coverage']:.4f} "
        f"[{conf['coverage_ci'][0]:.4f}, {conf['coverage_ci'][1]:.4f}], "
        f"mean set size {conf['mean_set_size']:.3f}"
    )
    console.print(
        f"train AUC {main['train_auc']:.4f}; calibration ECE {main['calibration']['ece']:.4f}; "
        f"{res.bundle.metadata['data']['clean_rows']} clean rows used"
    )
    for note in res.notes:
        console.print(f"note: {note}")
    console.print(f"model dir   {res.model_dir} (manifest sha256 {res.bundle.digest[:16]}…)")
    console.print(f"report      {res.model_dir / 'report.html'}")
    if res.run_id:
        console.print(f"mlflow run  {res.run_id}")
        console.print(f"store       {res.tracking_uri}")
    console.print(f"version     {res.version}   ({res.seconds:.1f} s)")
