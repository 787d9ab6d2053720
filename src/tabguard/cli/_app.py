"""The root Typer application and its command groups (commands register on import)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

#: The program name in usage lines and of the shell-completion variable (``_TABGUARD_COMPLETE``).
PROG_NAME = "tabguard"

app = typer.Typer(
    name=PROG_NAME,
    help="Robustness and security for tabular ML models used in real-time decisions.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion
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


def _print_version(value: bool) -> None:
    if value:
        from tabguard import __version__

        console.print(f"{PROG_NAME} {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Robustness and security for tabular ML models used in real-time decisions."""
