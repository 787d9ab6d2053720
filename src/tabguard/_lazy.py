"""Lazy subpackage namespaces: public names imported on first use, not at package import.

``import tabguard.serving._config`` runs ``tabguard/serving/__init__.py`` first; when that file
imports every module of the service, the CLI pays for FastAPI, numba and LightGBM just to read
a setting (``tabguard --version`` took 1.5-3 s). A package using :func:`attach` keeps its
re-exports as ordinary imports under ``if TYPE_CHECKING:`` (what type checkers and readers
see) and resolves each name at run time from that same block, on first access (PEP 562).
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any


def lazy_names(init_file: str) -> dict[str, str]:
    """Public name -> absolute module, read from the ``if TYPE_CHECKING:`` imports of a file."""
    tree = ast.parse(Path(init_file).read_text(encoding="utf-8"))
    names: dict[str, str] = {}
    for node in tree.body:
        if not (isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"):
            continue
        for stmt in node.body:
            if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.level == 0:
                for alias in stmt.names:
                    names[alias.asname or alias.name] = stmt.module
    return names


def attach(package: str, init_file: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` of a package whose re-exports are its TYPE_CHECKING imports.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    init_file : str
        Its ``__file__`` (the ``__init__.py`` holding the ``if TYPE_CHECKING:`` block).
    """
    names = lazy_names(init_file)

    def getattr_(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals_ = importlib.import_module(package).__dict__
        globals_[name] = value  # next access skips __getattr__
        return value

    def dir_() -> list[str]:
        return sorted(set(names) | set(importlib.import_module(package).__dict__))

    return getattr_, dir_
