"""``tabguard contract infer|check``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tabguard.cli._app import console, contract_app, err_console, output_file


@contract_app.command("infer")
def infer(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file to draft the contract from.")],
    label: Annotated[str, typer.Option("--label", "-l", help="Label column.")],
    name: Annotated[
        str | None,
        typer.Option(
            help="Contract name (also the model registry's name when training); default: the "
            "data file's name without its suffixes.",
            show_default=False,
        ),
    ] = None,
    id_column: Annotated[str | None, typer.Option("--id", help="Row identifier column.")] = None,
    entity: Annotated[
        str | None,
        typer.Option(
            help="Column naming the unit a row belongs to (an account id in panel data); "
            "guessed from an id-like name that repeats when omitted.",
            show_default=False,
        ),
    ] = None,
    no_entity: Annotated[
        bool, typer.Option("--no-entity", help="Draft no entity column (every row its own).")
    ] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write YAML here.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing --out file.")
    ] = False,
) -> None:
    """Draft a contract from data; review ranges, protected and gameable features after."""
    output_file(out, force)  # before the work: a reviewed contract is never overwritten
    from tabguard.contract import contract_yaml, infer_contract, save_contract
    from tabguard.io import read_table

    if entity is not None and no_entity:
        raise typer.BadParameter("give --entity or --no-entity, not both", param_hint="--entity")
    df = read_table(data, keep_codes=True)
    notes: list[str] = []
    # named after the file: four drafts all named "inferred" became one registry model's
    # versions 1-4 for an outside user's four unrelated data sets
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", data.name.split(".")[0]).strip("_") or "inferred"
    contract = infer_contract(
        df,
        label,
        name=name or stem,
        id_column=id_column,
        entity=entity,
        find_entity=not no_entity,
        notes=notes,
    )
    for note in notes:
        # stderr: the YAML on stdout stays valid
        err_console.print(escape(note))
    if out is None:
        # Raw stdout: Rich would wrap long lines and break the YAML.
        typer.echo(contract_yaml(contract), nl=False)
    else:
        save_contract(contract, out)
        console.print(
            f"wrote {out} ({len(contract.features)} features); review it before use", soft_wrap=True
        )


#: Suffixes of data files (a contract is YAML or JSON): named in the usage error below.
_DATA_SUFFIXES = (".csv", ".gz", ".parquet", ".pq", ".tsv", ".data")


@contract_app.command("check")
def check(
    first: Annotated[
        Path | None,
        typer.Argument(
            metavar="CONTRACT",
            help="The contract YAML (with --contract: the data to validate).",
            show_default=False,
        ),
    ] = None,
    second: Annotated[
        Path | None,
        typer.Argument(metavar="DATA", help="Data to validate (optional).", show_default=False),
    ] = None,
    contract_option: Annotated[
        Path | None,
        typer.Option(
            "--contract",
            "-c",
            help="Contract YAML; then the argument is the data, as in `audit data`.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Validate a contract, and data against it when DATA is given (exit 1 on violations).

    Both `tabguard contract check c.yaml data.csv` and `tabguard contract check data.csv -c
    c.yaml` work.
    """
    contract_path, data = _check_arguments(first, second, contract_option)
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
    df = read_table(data, contract=contract)
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


def _check_arguments(
    first: Path | None, second: Path | None, option: Path | None
) -> tuple[Path, Path | None]:
    """(contract, data) from ``check``'s arguments; a usage error (exit 2) names the mistake."""
    if option is not None:
        if second is not None:
            raise typer.BadParameter(
                f"got --contract {option} and two paths ({first}, {second}); with --contract "
                "give only the data",
                param_hint="CONTRACT",
            )
        return option, first
    if first is None:
        raise typer.BadParameter(
            "missing the contract: tabguard contract check CONTRACT [DATA]",
            param_hint="CONTRACT",
        )
    if first.name.lower().endswith(_DATA_SUFFIXES):
        hint = (
            f"tabguard contract check {second} {first}"
            if second is not None
            else f"tabguard contract check {first} --contract CONTRACT.yaml"
        )
        raise typer.BadParameter(
            f"{first} looks like a data file, not a contract: the contract comes first, or is "
            f"given with --contract ({hint})",
            param_hint="CONTRACT",
        )
    return first, second
