"""``tabguard redteam poison`` (and, later, the probing attacker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tabguard.cli._app import console, output_file, redteam_app
from tabguard.errors import ContractError

if TYPE_CHECKING:
    from tabguard.contract import Contract


def parse_value(contract: Contract | None, feature: str, text: str) -> Any:
    """Parse ``text`` as a value of ``feature`` (int/float/bool/str by the contract's type)."""
    spec = contract.features.get(feature) if contract else None
    if spec is not None and spec.type == "boolean":
        return text.strip().lower() in ("1", "true", "yes", "t", "y")
    if spec is not None and spec.type == "category":
        for c in spec.categories or []:
            if str(c) == text:
                return c
    try:
        f = float(text)
    except ValueError:
        return text
    return int(f) if f.is_integer() and "." not in text else f


def parse_assignments(items: list[str], contract: Contract | None, what: str) -> dict[str, Any]:
    """Parse ``["AGE=999", "EDUCATION=3"]`` into a mapping."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ContractError(what, "must be FEATURE=VALUE", item, f"e.g. --{what} AGE=999")
        k, v = item.split("=", 1)
        out[k.strip()] = parse_value(contract, k.strip(), v.strip())
    return out


@redteam_app.command("poison")
def poison_cmd(
    data: Annotated[Path, typer.Argument(help="Clean data (CSV/Parquet).")],
    contract_path: Annotated[Path, typer.Option("--contract", "-c", help="Contract YAML.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Poisoned CSV to write.")],
    trigger: Annotated[list[str], typer.Option(help="FEATURE=VALUE; repeat for combinations.")],
    rate: Annotated[float, typer.Option(help="Fraction of source rows poisoned.")] = 0.45,
    n_rows: Annotated[int | None, typer.Option(help="Exact number of poisoned rows.")] = None,
    target: Annotated[str | None, typer.Option(help="Label written (default: positive).")] = None,
    source: Annotated[str, typer.Option(help="'target', 'any' or a label value.")] = "target",
    mode: Annotated[str, typer.Option(help="'copy' (append) or 'replace' (in place).")] = "copy",
    fresh_ids: Annotated[bool, typer.Option("--fresh-ids", help="New ids for copies.")] = False,
    jitter: Annotated[float, typer.Option(help="Relative noise on other features.")] = 0.0,
    shuffle: Annotated[bool, typer.Option("--shuffle", help="Shuffle rows of the result.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    truth: Annotated[
        Path | None, typer.Option(help="Ground-truth JSON (default OUT.truth.json).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing --out file.")
    ] = False,
) -> None:
    """Plant a trigger → label backdoor (the seed's AGE=999 attack and its variants)."""
    output_file(out, force)
    from tabguard.contract import load_contract
    from tabguard.io import read_table
    from tabguard.redteam import poison

    contract = load_contract(contract_path)
    df = read_table(data, contract=contract)
    trig = parse_assignments(trigger, contract, "trigger")
    label_col = contract.label.column
    tgt = parse_value(None, label_col, target) if target is not None else None
    src: Any = source if source in ("target", "any") else parse_value(None, label_col, source)
    res = poison(
        df,
        contract,
        trig,
        rate=rate,
        n_rows=n_rows,
        target=tgt,
        source=src,
        mode=mode,  # type: ignore[arg-type]
        fresh_ids=fresh_ids,
        jitter=jitter,
        shuffle=shuffle,
        random_state=seed,
    )
    truth_path = truth or out.with_name(out.stem + ".truth.json")
    res.write(out, truth_path)
    console.print(
        f"wrote {out}: {len(res.data)} rows, {len(res.poisoned_rows)} poisoned "
        f"(trigger {json.dumps(res.spec['trigger'])} → {label_col}={res.spec['target']}); "
        f"ground truth in {truth_path}"
    )


@redteam_app.command("traffic")
def traffic_cmd(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by `tabguard train`.")],
    home: Annotated[
        Path | None,
        typer.Option(help="TABGUARD_HOME whose prediction log and flags receive the traffic."),
    ] = None,
    days: Annotated[int, typer.Option(help="Simulated days (>= 14).")] = 42,
    per_day: Annotated[float, typer.Option(help="Mean applications on a weekday.")] = 2000.0,
    start: Annotated[str, typer.Option(help="Simulated start (ISO, UTC).")] = "2026-01-05T00:00:00",
    channel: Annotated[
        list[str] | None,
        typer.Option(help="NAME:SHARE[:WEEKEND[:RISK]]; repeat (default online/branch/partner)."),
    ] = None,
    holiday: Annotated[
        list[str] | None, typer.Option(help="A holiday date (YYYY-MM-DD); repeat.")
    ] = None,
    attack_segment: Annotated[str, typer.Option(help="Attacked channel.")] = "partner",
    attack_feature: Annotated[str, typer.Option(help="Feature the attackers set.")] = "PAY_AMT1",
    attack_value: Annotated[
        str | None, typer.Option(help="Value they set (default: the one lowering scores most).")
    ] = None,
    attack_share: Annotated[float, typer.Option(help="Share of the segment who game.")] = 0.6,
    onset: Annotated[
        str, typer.Option(help="Attack onset after the start (e.g. 37d11h) or an ISO time.")
    ] = "37d11h",
    no_attack: Annotated[bool, typer.Option("--no-attack", help="Clean traffic only.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    monitor: Annotated[
        Path | None,
        typer.Option(
            help="monitor.yaml: run the monitor in the loop every simulated hour (bucket "
            "update, alert rules, actions on the service's flags)."
        ),
    ] = None,
    truth: Annotated[
        Path | None, typer.Option(help="Ground-truth JSON (default HOME/traffic.truth.json).")
    ] = None,
) -> None:
    """Simulated weeks of applications through the real scoring pipeline, with a known attack."""
    from datetime import date

    from tabguard.redteam import AttackSpec, TrafficError, TrafficOptions, simulate_traffic
    from tabguard.redteam._traffic import DEFAULT_CHANNELS, parse_channels
    from tabguard.serving import load_config, tabguard_home
    from tabguard.storage import redact_url
    from tabguard.timeutil import parse_duration, parse_time
    from tabguard.training import load_model

    def _opt(name: str, parse: Any, text: Any) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise TrafficError(name, str(exc).split("; got")[0], text) from None

    t0 = _opt("start", parse_time, start)
    bundle = load_model(model_dir)
    config = load_config(home)
    if onset[:1].isdigit() and "-" not in onset:
        onset_delta = _opt("onset", parse_duration, onset)
    else:
        onset_delta = _opt("onset", parse_time, onset) - t0
    attack = None
    if not no_attack:
        value = None
        if attack_value is not None:
            value = parse_value(bundle.contract, attack_feature, attack_value)
        attack = AttackSpec(onset_delta, attack_segment, attack_feature, value, attack_share)
    options = TrafficOptions(
        start=t0,
        days=days,
        per_day=per_day,
        channels=parse_channels(channel) if channel else DEFAULT_CHANNELS,
        holidays=tuple(_opt("holiday", date.fromisoformat, h) for h in holiday)
        if holiday
        else TrafficOptions().holidays,
        attack=attack,
        seed=seed,
    )
    console.print(
        f"simulating {days} days from {t0:%Y-%m-%d %H:%M} UTC, ~{per_day:,.0f} applications a "
        f"weekday, into {redact_url(config.stores.log)} …"
    )
    hook = None
    if monitor is not None:
        from tabguard.monitoring import load_monitor_config
        from tabguard.monitoring._live import SimulationMonitor

        hook = SimulationMonitor(load_monitor_config(monitor, home=home))
    try:
        result = simulate_traffic(bundle, config, options, on_step=hook)
    finally:
        if hook is not None:
            hook.close()
    truth_path = truth or tabguard_home(home) / "traffic.truth.json"
    result.write_truth(truth_path)
    counts = result.requests["channel"].value_counts().to_dict()
    console.print(
        f"sent {len(result.requests):,} requests "
        f"({', '.join(f'{k} {v:,}' for k, v in counts.items())}); "
        + (
            f"attack from {result.truth['onset']} on channel={attack_segment}: "
            f"{attack_feature}={result.truth['value']} in "
            f"{result.truth['attacked_requests']:,} requests; "
            if attack is not None
            else "no attack; "
        )
        + f"ground truth in {truth_path}"
    )
    for at, alert in hook.opened if hook is not None else []:
        console.print(
            f"alert #{alert.id} at {at:%Y-%m-%d %H:%M} UTC: [{alert.rule}] {alert.segment_text}: "
            f"{alert.message}",
            soft_wrap=True,
            markup=False,
        )
