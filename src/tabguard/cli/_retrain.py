"""``tabguard retrain``: the next model from the log's matured outcomes and exploit attempts.

Exit status (cron-friendly): 0 the challenger is ready (promote it with ``tabguard models
promote``); 1 a gate blocked it (the blocking finding is printed, the report is in
``NEW_DIR.blocked/``); 2 bad input (refused outcomes, no matured outcome, missing base data:
one line).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from tabguard.cli._app import app, console, err_console, output_directory
from tabguard.errors import DataError

if TYPE_CHECKING:
    from tabguard.retraining import RetrainResult


def _as_of(value: str | None) -> datetime | None:
    if value is None:
        return None
    from tabguard.timeutil import parse_time

    try:
        return parse_time(value)
    except ValueError:
        raise DataError(
            f"--as-of {value!r}: not a time; give ISO 8601, e.g. 2026-03-01T00:00:00Z"
        ) from None


@app.command("retrain")
def retrain_cmd(
    model_dir: Annotated[Path, typer.Argument(help="The current (champion) model directory.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="The challenger's model directory.", callback=output_directory
        ),
    ],
    data: Annotated[
        Path | None,
        typer.Option(help="The champion's training data (default: the file its manifest names)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="monitor.yaml: the log, outcomes, alerts (default: the one in $TABGUARD_HOME).",
            show_default=False,
        ),
    ] = None,
    home: Annotated[
        Path | None, typer.Option(help="TABGUARD_HOME (default $TABGUARD_HOME or ./.tabguard).")
    ] = None,
    outcomes: Annotated[
        Path | None,
        typer.Option(help="Import this outcomes file first (as `tabguard outcomes import`)."),
    ] = None,
    redteam: Annotated[
        Path | None,
        typer.Option(help="Adversarial inputs found by the red team, with the label column."),
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="Outcomes matured at this time (default now, ISO 8601).")
    ] = None,
    log: Annotated[
        bool,
        typer.Option(
            "--log/--no-log", help="Read the prediction log (--no-log: base data + --redteam)."
        ),
    ] = True,
    holdout: Annotated[
        float | None, typer.Option(help="Share of recent matured requests held out (0.2).")
    ] = None,
    exploit_weight: Annotated[
        float | None, typer.Option(help="Training weight of an exploit attempt (20).")
    ] = None,
    strict_model_audit: Annotated[
        bool,
        typer.Option(
            "--strict-model-audit", help="Block on inherited critical model findings too."
        ),
    ] = False,
    options: Annotated[
        Path | None,
        typer.Option(help="YAML/JSON file of retrain options (docs/retraining.md, Options)."),
    ] = None,
    tracking: Annotated[
        bool, typer.Option("--tracking/--no-tracking", help="Log the run in MLflow.")
    ] = True,
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow store (default MLFLOW_TRACKING_URI or .tabguard/mlflow.db)."),
    ] = None,
    sign: Annotated[
        bool, typer.Option("--sign", help="Sign the new manifest (as tabguard train).")
    ] = False,
    signing_key: Annotated[
        Path | None, typer.Option(help="File holding the model signing key.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON (retrain.json).")
    ] = False,
) -> None:
    """Retrain on matured requests and exploit attempts, behind the data and model audits.

    Exit status 0: ready (promote with `tabguard models promote NEW_DIR`); 1: blocked by a gate
    (which finding is printed); 2: bad input.
    """
    from tabguard.cli._train import _signing_key
    from tabguard.progress import RichProgress
    from tabguard.retraining import RetrainBlockedError, retrain

    given: dict[str, Any] = _read_options(options)
    if holdout is not None:
        given["holdout"] = holdout
    if exploit_weight is not None:
        given["exploit_weight"] = exploit_weight
    if strict_model_audit:
        given["strict_model_audit"] = True
    from tabguard.checks._options import parse_options
    from tabguard.retraining import RetrainOptions

    opts = parse_options(RetrainOptions, given)  # bad options: one line before any work
    when = _as_of(as_of)
    key = _signing_key(sign, signing_key)
    monitor = None
    if log or outcomes is not None:
        from tabguard.monitoring import load_monitor_config

        monitor = load_monitor_config(config, home=home)
    if tracking:
        from tabguard.training._tracking import quiet_mlflow

        quiet_mlflow()
    try:
        with RichProgress(transient=True) as progress:
            result = retrain(
                model_dir,
                out,
                data=data,
                monitor=monitor,
                outcomes=outcomes,
                redteam=redteam,
                as_of=when,
                options=opts,
                track=tracking,
                tracking_uri=tracking_uri,
                signing_key=key,
                progress=progress,
            )
    except RetrainBlockedError as exc:
        err_console.print(f"[bold red]blocked:[/] {escape(str(exc))}", soft_wrap=True)
        for line in exc.lines[1:]:
            err_console.print(f"  also: {escape(line)}", soft_wrap=True)
        raise typer.Exit(1) from None
    if as_json:
        console.print_json(json.dumps(result.summary, default=str))
        return
    _summary(result)


def _read_options(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"--options {path}: cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"--options {path}: must be a mapping of option names to values")
    return data


def _summary(result: RetrainResult) -> None:
    s = result.summary
    c = s["counts"]
    console.print(
        f"learnt from {c.get('base', 0):,} base rows, {c.get('logged', 0):,} matured requests, "
        f"{c.get('exploit', 0):,} exploit attempts (probing {c.get('exploit_probing', 0):,}, "
        f"alert windows {c.get('exploit_alert', 0):,}, red team {c.get('redteam', 0):,}); "
        f"holdout {c.get('holdout', 0):,}",
        markup=False,
        soft_wrap=True,
    )
    for gate in s["gates"]:
        extra = ""
        if gate["gate"] == "data":
            extra = f": {gate['detail']['quarantined']:,} rows quarantined"
            for item in gate["resolved"]:
                by = ", ".join(f"{k} {v}" for k, v in item["rows_by_source"].items())
                extra += f"; [{item['check']}] {item['rows']} rows ({by})"
        elif gate["detail"].get("skipped"):
            extra = f": skipped ({gate['detail']['skipped']})"
        elif gate["resolved"]:
            extra = f": {len(gate['resolved'])} inherited finding(s) reported"
        console.print(f"{gate['gate']} gate passed{extra}", markup=False, soft_wrap=True)
    comp = s.get("comparison") or {}
    hold = comp.get("holdout") or {}
    if hold.get("rows"):
        a, b = hold["champion"]["auc"], hold["challenger"]["auc"]
        console.print(
            f"holdout AUC champion {a['value']:.4f} [{a['ci_low']:.4f}, {a['ci_high']:.4f}] → "
            f"challenger {b['value']:.4f} [{b['ci_low']:.4f}, {b['ci_high']:.4f}]",
            markup=False,
        )
    ex = (comp.get("exploits") or {}).get("all") or {}
    if ex.get("n"):
        console.print(
            f"known exploits ({ex['n']:,}): attack success {ex['before']:.1%} → {ex['after']:.1%}",
            markup=False,
        )
    console.print(f"model dir   {result.model_dir} (manifest sha256 {result.digest[:16]}…)")
    console.print(f"report      {result.model_dir / 'retrain.html'}")
    console.print(f"version     {result.version}")
    console.print(f"next        tabguard models promote {result.model_dir} --stage shadow")
