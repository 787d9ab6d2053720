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

from tabguard.cli._app import HomeOption, SparkMasterOption, app, console, err_console

if TYPE_CHECKING:
    from tabguard.monitoring import MonitorConfig
    from tabguard.monitoring._update import UpdateResult

monitor_app = typer.Typer(
    help="Production monitoring: buckets from the prediction log, windows, drift, alerts.",
    no_args_is_help=True,
)
app.add_typer(monitor_app, name="monitor")
outcomes_app = typer.Typer(
    help="Outcomes that arrive late (defaults, chargebacks), matched to logged decisions.",
    no_args_is_help=True,
)
app.add_typer(outcomes_app, name="outcomes")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="monitor.yaml (default $TABGUARD_HOME/monitor.yaml).", show_default=False
    ),
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
    if result.json_rows:
        text += f"; {result.json_rows:,} rows read from their JSON (no numbers vector)"
    if result.slow_rows:
        text += f"; {result.slow_rows:,} rows needed the row-by-row JSON parser"
    if result.skipped:
        text += f"; {result.skipped:,} unusable rows skipped (see the log messages)"
    if result.waiting:
        text += (
            f"; {result.waiting:,} committed rows wait for an older open transaction of the "
            "log's database"
        )
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
    engine: Annotated[
        str,
        typer.Option(
            help="python: read the live log in this process; spark: read a Parquet archive "
            "(`tabguard log export --format parquet`) with Apache Spark (needs --source).",
        ),
    ] = "python",
    source: Annotated[
        Path | None,
        typer.Option(help="The Parquet log archive read by --engine spark.", show_default=False),
    ] = None,
    spark_master: SparkMasterOption = None,
) -> None:
    """Fold the prediction-log rows committed since the last update into the store."""
    from tabguard.monitoring import open_monitor_store
    from tabguard.monitoring._update import update
    from tabguard.storage import redact_url

    if engine not in ("python", "spark"):
        raise typer.BadParameter(f"must be python or spark; got {engine!r}", param_hint="--engine")
    if engine == "spark" and source is None:
        raise typer.BadParameter(
            "--engine spark reads a Parquet archive: pass --source ARCHIVE_DIR (written by "
            "`tabguard log export --format parquet`)",
            param_hint="--source",
        )
    if engine == "python" and (source is not None or spark_master is not None):
        raise typer.BadParameter(
            "--source and --spark-master go with --engine spark", param_hint="--engine"
        )
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg = load(config, home)
    url = cfg.store_url()
    with open_monitor_store(url, bucket=cfg.bucket) as store:
        if engine == "spark":
            from tabguard.spark import update_from_archive

            assert source is not None  # checked above
            result = update_from_archive(cfg, source, store=store, master=spark_master, reset=reset)
        else:
            # The store is emptied under the updater lock, beside the update's start.
            result = update(cfg, store=store, reset=reset)
    console.print(_describe(result, redact_url(url)), soft_wrap=True, markup=False)
    if cfg.model is None and result.rows:
        console.print(
            "note: no model in monitor.yaml, so raw attributes and model features were not "
            "profiled (decisions, guards, probing, score and latency were); set `model: "
            "MODEL_DIR`",
            soft_wrap=True,
            markup=False,
        )
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
        for event in getattr(result.evaluation, "events", None) or []:
            a = event.alert
            console.print(
                f"alert #{a.id} {event.kind}: [{a.rule}] {a.segment_text}: {a.message}",
                soft_wrap=True,
                markup=False,
            )

    def fail(exc: BaseException) -> None:
        err_console.print(f"monitor: turn failed, retrying in {every}: {exc}", soft_wrap=True)

    console.print(f"monitor: updating {url} every {every} (Ctrl-C stops)", markup=False)
    try:
        failures = run_forever(cfg, period, iterations=iterations, on_result=report, on_error=fail)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    if iterations is not None and failures == iterations:
        raise typer.Exit(2)


def parse_segment(text: str | None) -> tuple[str, str]:
    """``channel=online`` → ``("channel", "online")``; ``a=1,b=2`` → ``("a*b", "1*2")``."""
    if text is None or text.strip() in ("", "all"):
        return ("all", "all")
    parts = []
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(
                f"must be KEY=VALUE (e.g. channel=online, or channel=online,EDUCATION=2); "
                f"got {text!r}",
                param_hint="--segment",
            )
        parts.append((key.strip(), value.strip()))
    return ("*".join(k for k, _ in parts), "*".join(v for _, v in parts))


def _fmt(value: float, metric: str) -> str:
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if metric.endswith(" rate"):
        return f"{value:.2%}"
    if metric == "requests":
        return f"{value:,.0f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


@monitor_app.command("show")
def show_cmd(
    window: Annotated[str, typer.Option(help="Window length, e.g. 6h, 1d.")] = "6h",
    compare: Annotated[
        str, typer.Option(help="How far back the baseline window is, e.g. 1w.")
    ] = "1w",
    segment: Annotated[
        str | None, typer.Option(help="One segment: KEY=VALUE (default: all requests).")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            help="Window end (ISO time, UTC); default the end of the last complete bucket."
        ),
    ] = None,
    columns: Annotated[
        str | None, typer.Option(help="Only these raw attributes / features (comma-separated).")
    ] = None,
    top: Annotated[
        int, typer.Option(help="Attribute/feature rows shown, largest changes first (0: all).")
    ] = 15,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Print a window next to the same window earlier (decisions, guards, percentiles…)."""
    import json
    import math

    from rich.table import Table

    from tabguard.monitoring import Window, open_monitor_store
    from tabguard.monitoring._compare import compare_windows
    from tabguard.monitoring._drift import load_reference
    from tabguard.timeutil import DURATION_RULE, floor_time, parse_duration, parse_time

    def duration(name: str, text: str) -> object:
        try:
            value = parse_duration(text)
        except ValueError:
            raise typer.BadParameter(f"{DURATION_RULE}; got {text!r}", param_hint=name) from None
        if value.total_seconds() <= 0:
            raise typer.BadParameter("must be positive", param_hint=name)
        return value

    length = duration("--window", window)
    back = duration("--compare", compare)
    seg = parse_segment(segment)
    cfg = load(config, home)
    with open_monitor_store(cfg.store_url(), bucket=cfg.bucket) as store:
        if at is not None:
            try:
                end = floor_time(parse_time(at), store.bucket)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--at") from None
        else:
            latest = store.latest()
            if latest is None:
                console.print("the store is empty: run `tabguard monitor update` first")
                raise typer.Exit(1)
            end = latest
        for name, value in (("--window", length), ("--compare", back)):
            if value % store.bucket:  # type: ignore[operator]
                raise typer.BadParameter(
                    f"must be a multiple of the store's bucket ({store.bucket})", param_hint=name
                )
        current = Window(end - length, end)  # type: ignore[operator]
        baseline = Window(current.start - back, current.end - back)  # type: ignore[operator]
        wanted = [c.strip() for c in columns.split(",")] if columns else None
        result = compare_windows(
            store,
            current,
            baseline,
            segment=seg,
            columns=wanted,
            reference=load_reference(cfg),
            min_rows=cfg.drift.min_rows,
        )
    table = result.table
    if top and not wanted:
        numeric = table["section"].isin(["raw", "feature", "drift"])
        ranked = (
            table[numeric]
            .assign(size=table["change"].abs())
            .sort_values("size", ascending=False, na_position="last")
        )
        table = table[~numeric | table.index.isin(ranked.index[:top])]
    if as_json:
        console.print_json(json.dumps(table.to_dict("records"), default=str, allow_nan=True))
        return
    title = (
        f"{seg[0]}={seg[1]}: [{current.start:%Y-%m-%d %H:%M}, {current.end:%Y-%m-%d %H:%M}) "
        f"vs {compare} earlier (UTC)"
    )
    out = Table(title=title, title_justify="left")
    for name in ("section", "metric", "now", f"{compare} earlier", "change", "n now", "n before"):
        out.add_column(name, justify="right" if name not in ("section", "metric") else "left")
    for row in table.to_dict("records"):
        change = "-" if math.isnan(row["change"]) else f"{row['change']:+.1%}"
        out.add_row(
            str(row["section"]),
            str(row["metric"]),
            _fmt(row["now"], str(row["metric"])),
            _fmt(row["before"], str(row["metric"])),
            change,
            f"{row['n_now']:,}",
            f"{row['n_before']:,}",
        )
    console.print(out)


@monitor_app.command("reference")
def reference_cmd(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by `tabguard train`.")],
    data: Annotated[Path, typer.Option(help="The model's training data (CSV or Parquet).")],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where to write it (default: reference/<model>.drift.json in $TABGUARD_HOME)."
        ),
    ] = None,
    bins: Annotated[int, typer.Option(min=2, max=100, help="Quantile bins per number.")] = 10,
    home: HomeOption = None,
) -> None:
    """Write the drift reference of a model trained before `tabguard train` wrote one."""
    from tabguard.io import read_table
    from tabguard.monitoring._drift import DriftReference
    from tabguard.serving import tabguard_home
    from tabguard.training import load_model

    bundle = load_model(model_dir)
    frame = read_table(data, contract=bundle.contract)
    reference = DriftReference.from_frame(
        frame, bundle.contract, bundle.main.transform, bins=bins, source={"file": str(data)}
    )
    target = out or tabguard_home(home) / "reference" / f"{bundle.digest[:16]}.drift.json"
    reference.save(target)
    console.print(
        f"drift reference of {bundle.version} ({len(reference.columns)} columns, "
        f"{reference.source['rows']:,} rows) written to {target}; set `drift: {{reference: "
        f"{target}}}` in monitor.yaml",
        soft_wrap=True,
        markup=False,
    )


@outcomes_app.command("import")
def outcomes_import_cmd(
    file: Annotated[
        Path,
        typer.Argument(help="CSV or Parquet: decision_id or subject_id, label, observed_at."),
    ],
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Store late labels with their decisions; exit 1 when rows were refused (named)."""
    from tabguard.monitoring._outcomes import describe, import_outcomes, label_mapper, read_outcomes

    cfg = load(config, home)
    frame = read_outcomes(file)
    contract = None
    if cfg.model is not None:
        from tabguard.contract import load_contract

        contract = load_contract(Path(cfg.model) / "contract.yaml")
    report = import_outcomes(frame, cfg, contract=contract, source=str(file))
    for line in describe(report, label_mapper(contract)[1]):
        console.print(line, soft_wrap=True, markup=False)
    if report.refused:
        raise typer.Exit(1)
