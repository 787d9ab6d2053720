"""``tabguard contract infer|check``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tabguard.cli._app import console, contract_app, output_file


@contract_app.command("infer")
def infer(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file to draft the contract from.")],
    label: Annotated[str, typer.Option("--label", "-l", help="Label column.")],
    name: Annotated[str, typer.Option(help="Contract name.")] = "inferred",
    id_column: Annotated[str | None, typer.Option("--id", help="Row identifier column.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write YAML here.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing --out file.")] = False,
) -> None:
    """Draft a contract from data; review ranges, protected and gameable features after."""
    output_file(out, force)  # before the work: a reviewed contract is never overwritten
    import yaml

    from tabguard.contract import contract_to_dict, infer_contract, save_contract
    from tabguard.io import read_table

    df = read_table(data)
    contract = infer_contract(df, label, name=name, id_column=id_column)
    if out is None:
        # Raw stdout: Rich would wrap long lines and break the YAML.
        typer.echo(yaml.safe_dump(contract_to_dict(contract), sort_keys=False, width=100), nl=False)
    else:
        save_contract(contract, out)
        console.print(f"wrote {out} ({len(contract.features)} features); review it before use")


@contract_app.command("check")
def check(
    contract_path: Annotated[Path, typer.Argument(metavar="CONTRACT", help="Contract YAML.")],
    data: Annotated[Path | None, typer.Argument(help="Optional data to validate.")] = None,
) -> None:
    """Validate a contract, and data against it when DATA is given (exit 1 on violations)."""
    from tabguard.contract import contract_hash, load_contract, validate_frame
    from tabguard.io import check_labels, read_table

    contract = load_contract(contract_path)
    console.print(
        f"contract [bold]{contract.name}[/] is valid: {len(contract.features)} features "
        f"({len(contract.protected_features())} protected, {len(contract.gameable_features())} "
        f"gameable), {len(contract.rules)} rules, sha256 {contract_hash(contract)[:12]}"
    )
    if data is None:
        return
    df = read_table(data)
    check_labels(df, contract)
    res = validate_frame(df, contract)
    if res.unknown_columns:
        console.print(f"columns not in the contract (ignored): {res.unknown_columns}")
    if res.ok:
        console.print(f"{data}: all {len(df)} rows satisfy the contract")
        return
    table = Table("field", "rule", "rows", "examples", "message")
    for g in res.groups:
        table.add_row(g.field, g.rule, str(g.count), escape(str(g.examples[:3])), escape(g.message))
    console.print(table)
    bad = int(res.invalid_mask().sum())
    console.print(f"{data}: {bad} of {len(df)} rows break the contract")
    raise typer.Exit(1)
