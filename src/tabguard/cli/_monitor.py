"""``tabguard monitor update|run|show``: the prediction log summarised into buckets.

Exit codes (cron-friendly): 0 done (also when another updater holds the lock: nothing to do);
1 done, but log rows were skipped as unusable (the message names them); 2 bad input (config,
unreachable database: one line); 3 internal error.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tabguard.cli._app import app, console, err_console

if TYPE_CHECKING:
    from tabguard.monitoring import MonitorConfig
    from tabguard.monitoring._update import UpdateResult

monitor_app = typer.Typer(
    help="Production monitoring: buckets from the prediction log, windows, drift, alerts.",
    no_args_is_help=True,
)
app.add_typer(monitor_app, name="monitor")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="monitor.yaml (default $TABGUARD_HOME/monitor.yaml).", show_default=False
    ),
]
HomeOption = Annotated[
    Path | None,
    typer.Option(help="TABGUARD_HOME (default $TABGUARD_HOME or ./.tabguard).", show_default=False),
]


def load(config: Path | None, home: Path | None) -> MonitorConfig:
    """The monitor configuration of the command line's options."""
    from tabguard.monitoring import load_monitor_config

    return load_monitor_config(config, home=home)


def _describe(result: UpdateResult, store: str) -> str:
    if result.busy:
        return f"another updater holds {store}; nothing to do"
    rate = result.rows / result.seconds if result.seconds > 0 else 0.0
    text = (
        f"read {result.rows:,} log rows in {result.seconds:.2f} s ({rate:,.0f} rows/s, "
        f"{result.batches} batch{'es' if result.batches != 1 else ''}) into {store}"
    )
    if result.late_rows:
        text += f"; {result.late_rows:,} late rows folded into earlier buckets"
    if result.slow_rows:
        text += f"; {result.slow_rows:,} rows needed the row-by-row JSON parser"
    if result.skipped:
        text += f"; {result.skipped:,} unusable rows skipped (see the log messages)"
    if result.latest is not None:
        text += f"; complete until {result.latest:%Y-%m-%d %H:%M} UTC"
    return text


@monitor_app.command("update")
def update_cmd(
    config: ConfigOption = None,
    home: HomeOption = None,
    reset: Annotated[
        bool,
        typer.Option("--reset", help="Empty the store first and rebuild it from the whole log."),
    ] = False,
) -> None:
    """Fold the prediction-log rows committed since the last update into the store."""
    from tabguard.monitoring import open_monitor_store
    from tabguard.monitoring._update import update
    from tabguard.storage import redact_url

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg = load(config, home)
    url = cfg.store_url()
    with open_monitor_store(url, bucket=cfg.bucket) as store:
        if reset:
            with store.updater_lock():
                store.reset()
        result = update(cfg, store=store)
    console.print(_describe(result, redact_url(url)), soft_wrap=True, markup=False)
    if result.skipped:
        raise typer.Exit(1)


@monitor_app.command("run")
def run_cmd(
    every: Annotated[str, typer.Option(help="Period between turns, e.g. 60s, 5m.")] = "60s",
    config: ConfigOption = None,
    home: HomeOption = None,
    iterations: Annotated[
        int | None, typer.Option(help="Stop after this many turns (default: run until stopped).")
    ] = None,
) -> None:
    """Update the store and evaluate the alert rules every period (a failed turn is retried)."""
    from tabguard.monitoring._loop import RunResult, run_forever
    from tabguard.storage import redact_url
    from tabguard.timeutil import DURATION_RULE, parse_duration

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        period = parse_duration(every)
    except ValueError:
        raise typer.BadParameter(f"{DURATION_RULE}; got {every!r}", param_hint="--every") from None
    if period.total_seconds() <= 0:
        raise typer.BadParameter("must be positive", param_hint="--every")
    cfg = load(config, home)
    url = redact_url(cfg.store_url())

    def report(result: RunResult) -> None:
        console.print(_describe(result.update, url), soft_wrap=True, markup=False)

    def fail(exc: BaseException) -> None:
        err_console.print(f"monitor: turn failed, retrying in {every}: {exc}", soft_wrap=True)

    console.print(f"monitor: updating {url} every {every} (Ctrl-C stops)", markup=False)
    try:
        failures = run_forever(cfg, period, iterations=iterations, on_result=report, on_error=fail)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    if iterations is not None and failures == iterations:
        raise typer.Exit(2)
