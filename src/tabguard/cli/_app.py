"""The root Typer application and its command groups (commands register on import)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from tabguard.errors import DataError

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


class _Process:
    #: Whether :func:`tabguard.cli.main` runs as the program itself (the ``tabguard`` script or
    #: ``python -m tabguard``: called without ``argv``), not in a test's or a program's process.
    program = False


def end_program(code: int) -> NoReturn:
    """End the command with exit status ``code`` once its outputs are written and closed.

    Run as the program, the process ends at once (``os._exit``, after flushing the console):
    the interpreter's teardown frees the objects of a million-row audit one by one and takes
    0.5-1 s, after every file is written. Called in process (tests, a program calling
    :func:`tabguard.cli.main` with arguments), it raises ``typer.Exit(code)`` as before. Only
    for commands that leave no thread, child process or ``atexit`` work behind.
    """
    if not _Process.program:
        raise typer.Exit(code)
    for stream in (console.file, err_console.file, sys.stdout, sys.stderr):
        # a closed pipe (``| head``) or stream: nothing is left to keep
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


#: ``--quiet``, as in pip, rsync or pytest: what only a reader at the terminal wants (progress
#: bars, the findings table) is left out; the summary line, the outputs' paths (which scripts
#: read), warnings and errors (stderr) and the exit status stay.
QUIET_HELP = "Quiet: no progress bars and no findings table (the summary line and paths stay)."

#: ``--home``, shared by the commands that read the service's state directory.
HomeOption = Annotated[
    Path | None,
    typer.Option(help="TABGUARD_HOME (default $TABGUARD_HOME or ./.tabguard).", show_default=False),
]
#: ``--spark-master``, shared by the commands with ``--engine spark``.
SparkMasterOption = Annotated[
    str | None,
    typer.Option(
        "--spark-master",
        help="Spark master URL (local[4], spark://host:7077, yarn); default: spark-submit's "
        "--master, else local[*].",
        show_default=False,
    ),
]


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


def check_names(checks: str | None, registry: Any) -> list[str] | None:
    """The names of ``--checks`` (comma-separated), refused as a usage mistake when unknown.

    A misspelt check is a mistake in the command line, so it gets the usage line and exit 2
    before any data is read, like an unknown option.

    Parameters
    ----------
    checks : str or None
        The option's text; None runs every check.
    registry : CheckRegistry
        The audit's registry (``tabguard.data_audit.REGISTRY``, ``tabguard.model_audit.REGISTRY``).

    Raises
    ------
    typer.BadParameter
        Naming the unknown checks and the valid ones.
    """
    from tabguard.errors import UnknownCheckError

    names = [c.strip() for c in checks.split(",") if c.strip()] if checks else None
    try:
        registry.select(names)
    except UnknownCheckError as exc:
        raise typer.BadParameter(str(exc), param_hint="--checks") from None
    return names


def output_directory(value: Path | None) -> Path | None:
    """Typer callback of an ``--out`` directory: refuse a path that is (or runs through) a file.

    Runs before the command's work, so a mistyped ``--out`` costs nothing; an existing
    directory is written into as before.

    Raises
    ------
    DataError
        One line, exit 2.
    """
    if value is None:
        return None
    _refuse_file_on_path(value, "a directory to write into")
    if value.is_file():
        raise DataError(
            f"--out {value}: is an existing file; --out names a directory to write into "
            "(choose another path, or remove the file)"
        )
    return value


def output_file(value: Path | None, force: bool = False) -> Path | None:
    """Check an ``--out`` file before the command works: never overwrite unless ``force``.

    Raises
    ------
    DataError
        ``value`` is a directory, runs through a file, or exists and ``force`` is off
        (one line, exit 2).
    """
    if value is None:
        return None
    _refuse_file_on_path(value, "a file to write")
    if value.is_dir():
        raise DataError(f"--out {value}: is a directory; --out names a file to write")
    if value.exists() and not force:
        raise DataError(
            f"--out {value}: the file exists; choose another path, or pass --force to overwrite it"
        )
    return value


def _refuse_file_on_path(value: Path, what: str) -> None:
    for parent in value.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DataError(
                    f"--out {value}: {parent} is a file, not a directory; --out names {what}"
                )
            return
