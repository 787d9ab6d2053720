"""``tabguard monitor alerts [ack ID]`` and ``tabguard monitor replay --from T1 --to T2``.

Exit codes: 0 done; 2 bad input (configuration, unknown alert id, a time that does not parse:
one line); 3 internal error.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tabguard.cli._app import console
from tabguard.cli._monitor import ConfigOption, HomeOption, load, monitor_app

if TYPE_CHECKING:
    from tabguard.monitoring import Alert, ReplayResult

alerts_app = typer.Typer(
    help="Alert history: open, acknowledged and resolved alerts; `ack ID` acknowledges one.",
    invoke_without_command=True,
)
monitor_app.add_typer(alerts_app, name="alerts")

_STATES = ("active", "open", "acknowledged", "resolved", "all")


def _when(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M}"


def _print_alert(a: Alert, actions: str | None = None) -> None:
    """Two lines per alert: the facts, then what the rule saw (wraps on narrow terminals)."""
    state = a.state + (f" by {a.acknowledged_by}" if a.acknowledged_by else "")
    head = (
        f"#{a.id} {state:<12} {a.severity:<8} {a.rule}  {a.segment_text}  "
        f"opened {_when(a.opened_at)}"
        + (f", resolved {_when(a.resolved_at)}" if a.resolved_at else "")
        + " UTC"
    )
    console.print(head, markup=False, soft_wrap=True)
    if actions:
        console.print(f"    actions: {actions}", markup=False, soft_wrap=True)
    console.print(f"    {a.message}", markup=False, soft_wrap=True)


@alerts_app.callback()
def alerts_cmd(
    ctx: typer.Context,
    state: Annotated[
        str, typer.Option(help="active (open or acknowledged), open, acknowledged, resolved, all.")
    ] = "active",
    rule: Annotated[str | None, typer.Option(help="Only this rule's alerts.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Newest N alerts.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """List alerts, newest first (default: the active ones)."""
    ctx.obj = {"config": config, "home": home}
    if ctx.invoked_subcommand is not None:
        return
    from tabguard.monitoring import AlertStore, open_monitor_store

    if state not in _STATES:
        raise typer.BadParameter(f"must be one of {', '.join(_STATES)}", param_hint="--state")
    cfg = load(config, home)
    with open_monitor_store(cfg.store_url(), bucket=cfg.bucket) as store:
        alerts = AlertStore.of(store).list(
            state=None if state == "all" else state,  # type: ignore[arg-type]
            rule=rule,
            limit=limit,
        )
    if as_json:
        for a in alerts:
            console.print(json.dumps(a.to_dict()), soft_wrap=True, markup=False, highlight=False)
        return
    if not alerts:
        console.print(f"no {state if state != 'all' else ''} alerts".replace("  ", " "))
        return
    console.print(f"{len(alerts)} {state} alert{'s' if len(alerts) != 1 else ''}, newest first:")
    for a in alerts:
        _print_alert(a)


@alerts_app.command("ack")
def ack_cmd(
    ctx: typer.Context,
    alert_id: Annotated[int, typer.Argument(help="The alert's id (tabguard monitor alerts).")],
    by: Annotated[str, typer.Option(help="Who acknowledges it (kept in its history).")],
    note: Annotated[str | None, typer.Option(help="Why / what is being done.")] = None,
) -> None:
    """Acknowledge an active alert: someone is on it (it still resolves by itself)."""
    from tabguard.monitoring import AlertStore, open_monitor_store

    opts = ctx.obj or {}
    cfg = load(opts.get("config"), opts.get("home"))
    with open_monitor_store(cfg.store_url(), bucket=cfg.bucket) as store:
        alert = AlertStore.of(store).ack(alert_id, by, datetime.now(UTC), note)
    console.print(
        f"alert {alert.id} ({alert.rule} on {alert.segment_text}) acknowledged by "
        f"{alert.acknowledged_by}",
        markup=False,
    )


def _actions(result: ReplayResult, alert_id: int) -> str:
    out = []
    for a in result.actions_of(alert_id):
        if a["action"] == "flag":
            verb = "set" if a.get("applied") else "would set"
            out.append(f"{verb} {a['flag']}={a.get('value')}" + ("" if a["ok"] else " (failed)"))
        elif a["action"] == "webhook":
            out.append("webhook sent" if a["ok"] else f"webhook failed ({a.get('error', '')})")
    return "; ".join(dict.fromkeys(out)) or "log"


@monitor_app.command("replay")
def replay_cmd(
    start: Annotated[str, typer.Option("--from", help="Replay from this time (ISO, UTC).")],
    end: Annotated[str, typer.Option("--to", help="Up to this time (ISO, UTC).")],
    step: Annotated[
        str | None, typer.Option(help="Simulated time between evaluations (default: a bucket).")
    ] = None,
    apply: Annotated[
        bool,
        typer.Option(
            "--apply",
            help="Record the alerts in the history, set the flags and send the webhooks "
            "(default: a dry run that only lists them).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Evaluate the alert rules over stored history, step by step, as if live."""
    from tabguard.monitoring import open_monitor_store, replay
    from tabguard.monitoring._live import alerting_config, open_flag_store, rule_inputs
    from tabguard.timeutil import DURATION_RULE, parse_duration, parse_time

    def _time(text: str, hint: str) -> datetime:
        try:
            return parse_time(text)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=hint) from None

    t1, t2 = _time(start, "--from"), _time(end, "--to")
    if t2 <= t1:
        raise typer.BadParameter("must be after --from", param_hint="--to")
    every = None
    if step is not None:
        try:
            every = parse_duration(step)
        except ValueError:
            raise typer.BadParameter(
                f"{DURATION_RULE}; got {step!r}", param_hint="--step"
            ) from None
    cfg = load(config, home)
    alerting = alerting_config(cfg)
    if not alerting.rules:
        raise typer.BadParameter(
            f"{cfg.path or 'monitor.yaml'} declares no rules", param_hint="--config"
        )
    flags = open_flag_store(cfg)
    try:
        with open_monitor_store(cfg.store_url(), bucket=cfg.bucket) as store:
            result = replay(
                store, alerting, t1, t2, step=every, apply=apply, flag_store=flags,
                **rule_inputs(cfg),
            )  # fmt: skip
    finally:
        if flags is not None:
            flags.close()
    if as_json:
        for a in result.alerts:
            row: dict[str, Any] = {**a.to_dict(), "actions": result.actions_of(a.id)}
            console.print(
                json.dumps(row, default=str), soft_wrap=True, markup=False, highlight=False
            )
        return
    mode = "applied" if apply else "dry run: actions recorded, not applied"
    title = (
        f"replay {t1:%Y-%m-%d %H:%M} → {t2:%Y-%m-%d %H:%M} UTC, {len(result.steps)} evaluations "
        f"({mode}): {len(result.alerts)} alert{'s' if len(result.alerts) != 1 else ''}"
    )
    console.print(title, markup=False, soft_wrap=True)
    for a in sorted(result.alerts, key=lambda x: x.opened_at):
        _print_alert(a, _actions(result, a.id))
