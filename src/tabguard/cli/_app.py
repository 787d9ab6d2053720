"""The root Typer application and its command groups (commands register on import)."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="tabguard",
    help="Robustness and security for tabular ML models used in real-time decisions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
contract_app = typer.Typer(help="Draft and check feature contracts.", no_args_is_help=True)
audit_app = typer.Typer(help="Security audits of data and models.", no_args_is_help=True)
redteam_app = typer.Typer(help="Attack simulators (for measuring defences).", no_args_is_help=True)
app.add_typer(contract_app, name="contract")
app.add_typer(audit_app, name="audit")
app.add_typer(redteam_app, name="redteam")

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
