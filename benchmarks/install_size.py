"""Size of a fresh environment: the serving-only install against the whole toolkit.

For each selection it creates a new virtual environment, installs tabguard from this
checkout (not editable) with the pinned versions of ``constraints.txt``, and prints the
environment's size on disk and its package count:

* ``tabguard`` — the core: the scoring service and its commands (what a serving host needs);
* ``tabguard[train]`` — the core plus the audits and training: what ``pip install tabguard``
  installed before the audit and training libraries became extras;
* ``tabguard[all]`` — everything a user can run (``make demo``).

Run::

    .venv/bin/python benchmarks/install_size.py
    .venv/bin/python benchmarks/install_size.py --only "" --only "[train]"
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def du(path: Path) -> int:
    """Bytes on disk under ``path`` (files only, symlinks not followed)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            p = Path(dirpath) / name
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def measure(extra: str, work: Path) -> tuple[int, int, float]:
    """Install ``tabguard{extra}`` in a fresh venv: (bytes, packages, seconds)."""
    venv = work / f"venv{extra.strip('[]') or '-core'}"
    python = sys.executable if sys.prefix == sys.base_prefix else sys._base_executable
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip>=24"], check=True)
    source = work / "src-copy"
    if not source.exists():  # a copy: a non-editable build must not write into the checkout
        shutil.copytree(
            ROOT,
            source,
            ignore=shutil.ignore_patterns(
                ".venv", ".git", "*.egg-info", "build", "demo-out", ".*_cache", ".tabguard"
            ),
        )
    started = time.monotonic()
    subprocess.run(
        [*pip, "install", "-c", str(ROOT / "constraints.txt"), f"{source}{extra}"],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    seconds = time.monotonic() - started
    packages = len(list(venv.glob("lib/python*/site-packages/*.dist-info")))
    return du(venv), packages, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", action="append", help='extras to measure, e.g. "" (core) or "[train]"'
    )
    args = parser.parse_args()
    selections = args.only if args.only is not None else ["", "[train]", "[all]"]
    with tempfile.TemporaryDirectory(prefix="tabguard-size-") as tmp:
        rows = [(extra, *measure(extra, Path(tmp))) for extra in selections]
    base = {extra: size for extra, size, _, _ in rows}.get("[train]")
    print(f"{'install':22s} {'MB':>7s} {'packages':>9s} {'install s':>10s} {'vs [train]':>11s}")
    for extra, size, packages, seconds in rows:
        ratio = f"{size / base:10.2f}x" if base else ""
        print(f"{'tabguard' + extra:22s} {size / 1e6:7.0f} {packages:9d} {seconds:10.0f} {ratio}")


if __name__ == "__main__":
    main()
