"""The ``tabguard`` command line: a thin layer over the Python API.

Exit codes: 0 success; 1 the command ran and found something critical (an audit gate);
2 bad input (missing or malformed file, invalid contract), printed as one line, no traceback;
3 an internal error (``TABGUARD_DEBUG=1`` shows its traceback).
"""

from __future__ import annotations

import importlib
import os
import sys

import click
from rich.markup import escape

from tabguard.cli._app import app, err_console
from tabguard.errors import TabguardError

# Each module registers its commands on the shared apps when imported.
_COMMAND_MODULES = [
    "audit_data",
    "audit_model",
    "contract",
    "demo",
    "redteam",
    "serve",
    "state",
    "train",
]
for _m in _COMMAND_MODULES:
    importlib.import_module(f"tabguard.cli._{_m}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``tabguard`` script."""
    try:
        rc = app(args=argv, prog_name="tabguard", standalone_mode=False)
    except TabguardError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: one line for users, the traceback on request
        if os.environ.get("TABGUARD_DEBUG"):
            raise
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} "
            "(set TABGUARD_DEBUG=1 for the traceback)",
            soft_wrap=True,
        )
        sys.exit(3)
    sys.exit(rc if isinstance(rc, int) else 0)


__all__ = ["app", "main"]
