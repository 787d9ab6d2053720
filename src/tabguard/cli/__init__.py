"""The ``tabguard`` command line: a thin layer over the Python API.

Exit codes: 0 success; 1 the command ran and found something critical (an audit gate);
2 a usage mistake (unknown command or option, missing argument: Click's usage line and hint)
or bad input (missing or malformed file, invalid contract), printed as one line, no traceback;
3 an internal error (``TABGUARD_DEBUG=1`` shows its traceback).

``tabguard``, ``python -m tabguard`` and ``python -m tabguard.cli`` run the same :func:`main`.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import inspect
import os
import sys
import types
from typing import Any, NoReturn

from rich.markup import escape

from tabguard._extras import missing_dependency
from tabguard.cli._app import PROG_NAME, _Process, app, err_console
from tabguard.errors import TabguardError

# Each module registers its commands on the shared apps when imported.
_COMMAND_MODULES = [
    "audit_data",
    "audit_model",
    "contract",
    "demo",
    "monitor",
    "monitor_alerts",
    "monitor_dashboard",
    "models",
    "redteam",
    "retrain",
    "serve",
    "state",
    "train",
]
for _m in _COMMAND_MODULES:
    importlib.import_module(f"tabguard.cli._{_m}")


def _reflow(doc: str) -> str:
    """A docstring as help text: each paragraph on one line, so that Rich wraps it to the
    terminal (Typer keeps the source's line breaks after the first paragraph). Lines of a
    list (``- ``, ``* ``) or indented ones (examples) keep their breaks."""
    out = []
    for para in inspect.cleandoc(doc).split("\n\n"):
        lines = para.splitlines()
        if any(ln.startswith(("- ", "* ", " ")) for ln in lines):
            out.append(para)
        else:
            out.append(" ".join(ln.strip() for ln in lines))
    return "\n\n".join(out)


def _reflow_help(typer_app: Any) -> None:
    for info in typer_app.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            info.help = _reflow(info.callback.__doc__)
    for group in typer_app.registered_groups:
        _reflow_help(group.typer_instance)


_reflow_help(app)


def main(argv: list[str] | None = None) -> None:
    """Run the ``tabguard`` command line and exit with its status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name; default ``sys.argv[1:]``.

    Notes
    -----
    Typer runs in standalone mode, so usage mistakes, ``--help``, ``--version``, shell
    completion and ``typer.Exit`` behave as in any Click program (usage errors exit 2 with
    the usage line and a ``--help`` hint). What reaches this function is tabguard's own:
    a :class:`~tabguard.errors.TabguardError` is bad input (exit 2, one line), anything else
    is a bug (exit 3, one line; the traceback with ``TABGUARD_DEBUG=1``).
    """
    _spawned_processes_skip_the_script()
    _Process.program = argv is None
    try:
        app(args=argv, prog_name=PROG_NAME)
    except TabguardError as exc:
        _error(exc)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: one line for users, the traceback on request
        if isinstance(exc, ImportError):
            # An optional extra that is not installed is bad input, not a bug.
            command = _command_path(argv)
            missing = missing_dependency(exc, f"`{command}`", _COMMAND_EXTRA.get(command))
            if missing is not None:
                _error(missing)
        if os.environ.get("TABGUARD_DEBUG"):
            raise
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} "
            "(set TABGUARD_DEBUG=1 for the traceback)",
            soft_wrap=True,
        )
        sys.exit(3)
    sys.exit(0)


def _spawned_processes_skip_the_script() -> None:
    """Let processes started with ``spawn`` skip the ``tabguard`` script, as they do under
    ``python -m tabguard``.

    ``multiprocessing``'s ``spawn`` runs the parent's main script again in every child unless
    the main module was run by name (``python -m``). The console script pip writes holds
    nothing a child needs (it imports :func:`main` and calls it under a ``__main__`` guard),
    but running it imports this package's every command, Typer, Rich and pydantic: ~0.2
    CPU-s per child, paid before the child starts its work (``monitor update`` starts two).
    Marked with the spec ``python -m tabguard`` gives it, the script is skipped, as for
    ``python -m``. Only a script like the generated one is marked: its ``main`` is this
    function and it defines no function or class of its own. A program that defines any in
    its ``__main__`` keeps it as it is (a child may unpickle one of them by name), also when
    it imports :func:`main` by that name.
    """
    entry = sys.modules.get("__main__")
    if entry is None or getattr(entry, "__spec__", None) is not None:
        return
    if getattr(entry, "main", None) is not main:
        return
    # functions and classes only, told by their type: any other object's attributes (even
    # ``__class__``, which isinstance reads) may run its code
    own = (types.FunctionType, type)
    if any(issubclass(type(v), own) and v.__module__ == "__main__" for v in vars(entry).values()):
        return
    entry.__spec__ = importlib.machinery.ModuleSpec("tabguard.__main__", None)


#: Commands that need a whole extra (install it once, not package by package).
_COMMAND_EXTRA = {
    "tabguard train": "train",
    "tabguard demo": "train",
    "tabguard retrain": "train",
}


def _error(exc: Exception) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
    sys.exit(2)


def _command_path(argv: list[str] | None) -> str:
    """``tabguard audit data`` from the arguments (the command that was running)."""
    import typer.main

    words = sys.argv[1:] if argv is None else argv
    command: Any = typer.main.get_command(app)
    path = [PROG_NAME]
    for word in words:
        sub = getattr(command, "commands", {}).get(word)
        if word.startswith("-") or sub is None:
            break
        path.append(word)
        command = sub
    return " ".join(path)


__all__ = ["app", "main"]
