"""Code version of a training run: the tabguard version and, from a source tree, its git commit."""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from tabguard import __version__


@lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """``{"tabguard_version", "git_commit", "git_dirty"}`` (git fields None when unavailable)."""
    out: dict[str, Any] = {"tabguard_version": __version__, "git_commit": None, "git_dirty": None}
    git = shutil.which("git")
    here = Path(__file__).resolve().parent
    if git is None:
        return out
    try:
        # S603: fixed argv (git found on PATH), no user input reaches the command line.
        commit = subprocess.run(  # noqa: S603
            [git, "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return out
        out["git_commit"] = commit.stdout.strip()
        # Only the package's own sources matter for reproducing a model.
        status = subprocess.run(  # noqa: S603
            [git, "status", "--porcelain", "--", str(here.parent)],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        )
        out["git_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return out
