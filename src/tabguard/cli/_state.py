"""``tabguard keys|flags|log``: the service's state, from the command line.

Every command reads ``$TABGUARD_HOME/tabguard.toml`` (default ``./.tabguard``) to find the
stores, so it acts on the same keys, flags and log as a running service.
"""

from __future__ import annotations

import getpass
import json
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tabguard.cli._app import app, console, err_console
from tabguard.errors import BackendUnavailableError
from tabguard.flags._model import FLAG_SPECS
from tabguard.serving._scopes import SCOPES

if TYPE_CHECKING:
    from tabguard.flags import BaseFlagStore
    from tabguard.serving._config import ServingConfig
    from tabguard.serving._keys import MemoryKeyStore, SqlKeyStore
    from tabguard.serving._log import PredictionLog

keys_app = typer.Typer(
    help="API keys of the scoring service (stored hashed).", no_args_is_help=True
)
flags_app = typer.Typer(
    help="Runtime feature flags (picked up by a running service within a second).",
    no_args_is_help=True,
)
log_app = typer.Typer(help="The prediction log.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(flags_app, name="flags")
app.add_typer(log_app, name="log")


# The configuration and the stores are imported by the commands that use them: every command
# of the program imports this module, and the configuration's pydantic models cost about 0.1
# CPU-s (paid before `audit data` starts reading its file).
def _config() -> ServingConfig:
    from tabguard.serving._config import load_config

    return load_config()


def open_keys(cfg: ServingConfig) -> SqlKeyStore | MemoryKeyStore:
    from tabguard.serving._stores import open_keys

    return open_keys(cfg)


def open_flags(cfg: ServingConfig) -> BaseFlagStore:
    from tabguard.serving._stores import open_flags

    return open_flags(cfg)


def open_log(cfg: ServingConfig) -> PredictionLog:
    from tabguard.serving._stores import open_log

    return open_log(cfg)


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return os.environ.get("USER") or f"uid-{os.getuid()}"


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, list):
        return ",".join(value) if value else "none"
    return str(value)


# ---- keys -----------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Client name, e.g. the calling application.")],
    scopes: Annotated[
        str,
        typer.Option(help=f"Comma-separated scopes: {', '.join(SCOPES)}."),
    ] = "decide",
) -> None:
    """Create an API key; the key is printed once, as the last word of the output."""
    with open_keys(_config()) as store:
        key_id, key = store.create(name, scopes)
        client = store.verify(key)
    shown = ",".join(sorted(client.scopes)) if client else scopes
    console.print(
        f"created key {key_id} for client {name!r} (scopes: {shown}); it is shown only now, "
        "store it safely:",
        soft_wrap=True,
        markup=False,
    )
    console.print(key, soft_wrap=True, markup=False)


@keys_app.command("list")
def keys_list(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
) -> None:
    """List API keys (names, ids, scopes; never secrets)."""
    with open_keys(_config()) as store:
        clients = store.list(include_revoked=all_keys)
    if not clients:
        console.print("no API keys (create one with `tabguard keys create NAME`)")
        return
    table = Table("name", "key id", "scopes", "created", "revoked")
    for c in clients:
        table.add_row(
            c.name,
            c.key_id,
            ",".join(sorted(c.scopes)),
            f"{c.created_at:%Y-%m-%d %H:%M}" if c.created_at else "",
            f"{c.revoked_at:%Y-%m-%d %H:%M}" if c.revoked_at else "",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="Client name.")]) -> None:
    """Revoke a client's API key (requests with it get 401 from then on)."""
    with open_keys(_config()) as store:
        store.revoke(name)
    console.print(f"revoked the key of {name!r}", markup=False)


# ---- flags ----------------------------------------------------------------------------------

_FLAG_HELP = "; ".join(f"{s.name} {s.values}" for s in FLAG_SPECS.values())


@flags_app.command("set")
def flags_set(
    name: Annotated[str, typer.Argument(help=f"Flag: {', '.join(FLAG_SPECS)}.")],
    value: Annotated[str, typer.Argument(help=_FLAG_HELP)],
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit trail).")] = None,
    actor: Annotated[
        str | None, typer.Option(help="Who makes the change (default: the OS user).")
    ] = None,
) -> None:
    """Set a flag; a running service applies it within a second."""
    with open_flags(_config()) as store:
        change = store.set(name, value, actor or _default_actor(), reason)
    console.print(
        f"{change.name}: {_show(change.old)} -> {_show(change.new)} "
        f"(by {change.actor}, version {change.version})",
        soft_wrap=True,
        markup=False,
    )


@flags_app.command("get")
def flags_get(
    name: Annotated[str | None, typer.Argument(help="One flag (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the flags in force."""
    with open_flags(_config()) as store:
        if name is not None:
            value = store.get(name)
            console.print(json.dumps(value) if as_json else _show(value), markup=False)
            return
        snap = store.snapshot()
    values = snap.flags.to_dict()
    if as_json:
        console.print(json.dumps({**values, "version": snap.version}), markup=False)
        return
    table = Table("flag", "value", "default", "allowed")
    for spec in FLAG_SPECS.values():
        table.add_row(spec.name, _show(values[spec.name]), _show(spec.default), spec.values)
    console.print(table)
    console.print(f"store version {snap.version}")


@flags_app.command("history")
def flags_history(
    limit: Annotated[int, typer.Option(min=1, help="Most recent changes to show.")] = 20,
    name: Annotated[str | None, typer.Option("--flag", help="Only this flag.")] = None,
) -> None:
    """Show the audit trail of flag changes, newest first."""
    with open_flags(_config()) as store:
        changes = store.history(limit=limit, name=name)
    if not changes:
        console.print("no flag changes yet")
        return
    # One line per change (no table): the trail stays readable in narrow terminals and greppable.
    for c in changes:
        why = f": {c.reason}" if c.reason else ""
        console.print(
            f"v{c.version} {c.changed_at:%Y-%m-%d %H:%M:%S}Z {c.name} {_show(c.old)} -> "
            f"{_show(c.new)} by {c.actor}{why}",
            soft_wrap=True,
            markup=False,
        )


# ---- log ------------------------------------------------------------------------------------


@log_app.command("export")
def log_export(
    out: Annotated[
        Path, typer.Argument(help="CSV file to write, or the archive directory (parquet).")
    ],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="csv: one file, JSON columns as text. parquet: an incremental archive "
            "partitioned by date and hour, with typed columns from the model's contract.",
        ),
    ] = "csv",
    model: Annotated[
        Path | None,
        typer.Option(help="Model directory whose contract types the parquet columns."),
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Only rows at or after this time (UTC).")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(help="Only rows before this time (UTC).")
    ] = None,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="parquet: then delete from the live log the archived rows (verified by row "
            "count and SHA-256) older than --keep.",
        ),
    ] = False,
    keep: Annotated[
        str, typer.Option(help="With --prune: keep this much recent history (e.g. 90d, 12h).")
    ] = "90d",
) -> None:
    """Export the prediction log: to CSV, or appended to a Parquet archive (incremental)."""
    if fmt not in ("csv", "parquet"):
        raise typer.BadParameter(f"{fmt!r} is not one of 'csv', 'parquet'", param_hint="--format")
    if fmt == "csv":
        if model is not None or prune:
            raise typer.BadParameter("--model and --prune go with --format parquet")
        with open_log(_config()) as plog:
            n = plog.export_csv(out, since=since, until=until)
        console.print(f"wrote {n} rows to {out}", soft_wrap=True)
        return
    if model is None:
        raise typer.BadParameter(
            "--format parquet needs the model directory whose contract types the columns",
            param_hint="--model",
        )
    from tabguard.archive import export_parquet, prune_log
    from tabguard.monitoring._config import MonitorConfig
    from tabguard.monitoring._update import plan_for_model
    from tabguard.timeutil import DURATION_RULE, parse_duration

    keep_for = None
    if prune:
        try:
            keep_for = parse_duration(keep)
        except ValueError:
            raise typer.BadParameter(f"{keep!r}: {DURATION_RULE}", param_hint="--keep") from None
    plan = plan_for_model(model, MonitorConfig())
    url = _config().stores.log
    done = export_parquet(url, out, plan, since=since, until=until)
    note = " (finished an interrupted export)" if done.resumed else ""
    console.print(
        f"archived {done.rows} rows in {len(done.parts)} part files to {out}{note}; "
        f"{done.skipped} outside --since/--until; watermark {done.watermark}",
        soft_wrap=True,
        markup=False,
    )
    if keep_for is not None:
        pruned = prune_log(url, out, keep=keep_for)
        console.print(
            f"pruned {pruned.deleted} rows from the live log ({pruned.verified_parts} part "
            f"files verified, {len(pruned.refused_parts)} refused)",
            markup=False,
        )
        for rel in pruned.refused_parts:
            err_console.print(
                f"warning: {out}/{rel} does not match its manifest; its rows were kept",
                markup=False,
            )


@log_app.command("status")
def log_status() -> None:
    """Show rows in the database, records waiting in the spool, and dead-lettered records.

    Replays the spool first when the database answers. Exit 1 when the database is down.
    """
    from tabguard.storage import redact_url

    cfg = _config()
    where = redact_url(cfg.stores.log)
    with open_log(cfg) as plog:
        plog.replay()
        try:
            rows: str = str(plog.count())
        except BackendUnavailableError as exc:
            err_console.print(f"error: {exc}", soft_wrap=True, markup=False)
            rows = "? (database unreachable)"
        spooled = plog.spool.pending_records()
        dead = plog.spool.dead_letter_records()
    console.print(
        f"{rows} rows in {where}; {spooled} records spooled in {cfg.log.spool_dir}; "
        f"{dead} dead-lettered",
        soft_wrap=True,
        markup=False,
    )
    if rows.startswith("?"):
        raise typer.Exit(1)
