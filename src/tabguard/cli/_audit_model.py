"""``tabguard audit model``: the model security audit (M1-M4)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tabguard.cli._app import QUIET_HELP, audit_app, check_names, console, output_directory

_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


@audit_app.command("model")
def audit_model_cmd(
    model: Annotated[
        Path,
        typer.Argument(
            help="A tabguard model directory, or a LightGBM text / XGBoost JSON / skops model "
            "trained on the contract's raw columns (then --contract is required)."
        ),
    ],
    data: Annotated[
        Path, typer.Option("--data", "-d", help="Clean reference data with labels (CSV/Parquet).")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output directory.", callback=output_directory)
    ],
    contract_path: Annotated[
        Path | None,
        typer.Option("--contract", "-c", help="Contract YAML (required for model files)."),
    ] = None,
    members: Annotated[
        Path | None,
        typer.Option(help="The model's training rows, for membership inference."),
    ] = None,
    scorer: Annotated[
        str, typer.Option(help="'main' or 'fallback' model of a tabguard directory.")
    ] = "main",
    threshold: Annotated[
        float | None, typer.Option(help="Decision threshold (default: the model's).")
    ] = None,
    checks: Annotated[
        str | None, typer.Option(help="Comma-separated checks to run (default: all).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of samples and attacks.")] = 0,
    jobs: Annotated[
        int, typer.Option(help="Threads of the model libraries (1 is steady on busy hosts).")
    ] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
) -> None:
    """Audit a model: importance and partial dependence, unacceptable cases, backdoor probe,
    white-hat attacks (gameability, extraction, membership), disparate impact.

    Writes DIR/findings.json and DIR/report.html. Exit status: 0 without critical findings,
    1 with one (a backdoor, a failed unacceptable case, a protected input), 2 for bad input.
    """
    from tabguard.io import read_table
    from tabguard.model_audit import REGISTRY, audit_model, load_audit_model, write_model_audit
    from tabguard.progress import RichProgress
    from tabguard.reports import SEVERITY_ORDER

    names = check_names(checks, REGISTRY)  # before the data is read
    m = load_audit_model(model, contract=contract_path, threshold=threshold, scorer=scorer)
    with RichProgress(disable=quiet) as progress:
        with progress.stage(f"reading {data.name}") as st:
            # text codes stay text ('01' is not the number 1)
            df = read_table(data, progress=st.advance, contract=m.contract)
        train_rows = read_table(members, contract=m.contract) if members is not None else None
        result = audit_model(
            m,
            df,
            members=train_rows,
            checks=names,
            random_state=seed,
            progress=progress,
            source=str(data),
            n_jobs=jobs,
        )
        paths = write_model_audit(result, out)
    rep = result.report
    shown = [f for f in rep.sorted_findings() if SEVERITY_ORDER[f.severity] <= 1 and not quiet]
    shown = shown[:12]
    if shown:
        table = Table("severity", "check", "finding", expand=True)
        for f in shown:
            table.add_row(f"[{_STYLE[f.severity]}]{f.severity}[/]", f.check, f.message)
        console.print(table)
    c = rep.counts()
    console.print(
        f"{m.name}: {rep.rows} reference rows, approval rate "
        f"{rep.summary.get('approval_rate', 0):.1%}; findings: [bold red]{c['critical']} "
        f"critical[/], [yellow]{c['warning']} warning[/], {c['info']} info "
        f"({rep.meta.get('elapsed_seconds')} s)"
    )
    console.print(f"report: {paths['report']}  findings: {paths['findings']}", soft_wrap=True)
    raise typer.Exit(result.exit_code())
