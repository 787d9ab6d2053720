"""``tabguard redteam poison`` (and, later, the probing attacker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tabguard.cli._app import console, redteam_app
from tabguard.contract import Contract, load_contract
from tabguard.errors import ContractError
from tabguard.io import read_table
from tabguard.redteam import poison


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
    fresh_ids: Annotated[bool, typer.Option(help="New ids for copies.")] = False,
    jitter: Annotated[float, typer.Option(help="Relative noise on other features.")] = 0.0,
    shuffle: Annotated[bool, typer.Option(help="Shuffle rows of the result.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    truth: Annotated[
        Path | None, typer.Option(help="Ground-truth JSON (default OUT.truth.json).")
    ] = None,
) -> None:
    """Plant a trigger → label backdoor (the seed's AGE=999 attack and its variants)."""
    contract = load_contract(contract_path)
    df = read_table(data)
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
