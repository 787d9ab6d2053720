"""Vendor the dashboard's charting library from the npm registry (no CDN at run time).

The dashboard draws its charts with uPlot (https://github.com/leeoniya/uPlot, MIT): 51 kB,
canvas drawing of thousands of points per series, no dependencies (its page-load figures are
in docs/benchmarks.md, ``benchmarks/dashboard.py``). Its files are
copied from the npm package into ``src/tabguard/monitoring/static/vendor/uplot/`` together with
the package's licence, and pinned in ``VENDOR.json`` there: package, version, the registry's
SHA-512 integrity of the tarball, and the SHA-256 of every vendored file.

Usage::

    python tools/vendor_js.py            # check the vendored files against VENDOR.json (offline)
    python tools/vendor_js.py --fetch    # re-vendor the pinned version with `npm pack`, verify
                                         # the tarball's integrity against the pin, copy files
    python tools/vendor_js.py --fetch --version 1.6.33   # move the pin (review the diff)

``npm pack`` verifies the tarball against the registry's integrity record; the script then
compares that record with the pinned one, so a re-published or tampered tarball is refused.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "src" / "tabguard" / "monitoring" / "static" / "vendor" / "uplot"
PIN = VENDOR / "VENDOR.json"


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check(pin: dict[str, object]) -> list[str]:
    """Differences between the vendored files and the pin (empty when they match)."""
    problems = []
    files = pin["files"]
    assert isinstance(files, dict)
    for name, digest in files.items():
        path = VENDOR / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif sha256(path) != digest:
            problems.append(f"{name}: sha256 {sha256(path)} != pinned {digest}")
    return problems


def fetch(pin: dict[str, object], version: str | None) -> dict[str, object]:
    """``npm pack`` the package, verify its integrity, copy the files; return the new pin."""
    package = str(pin["package"])
    wanted = version or str(pin["version"])
    with tempfile.TemporaryDirectory() as tmp:
        # npm from PATH, as a developer runs it; the arguments are the pin's.
        command = ["npm", "pack", f"{package}@{wanted}", "--json", "--silent"]
        out = subprocess.run(  # noqa: S603
            command,
            cwd=tmp,
            check=True,
            capture_output=True,
            text=True,
        )
        info = json.loads(out.stdout)[0]
        tarball = Path(tmp) / info["filename"]
        integrity = (
            "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
        )
        if integrity != info["integrity"]:
            raise SystemExit(
                f"{tarball.name}: integrity {integrity} != registry {info['integrity']}"
            )
        if version is None and integrity != pin["integrity"]:
            raise SystemExit(
                f"{package}@{wanted}: the registry's tarball has integrity {integrity}, the pin "
                f"says {pin['integrity']}; refusing to vendor it"
            )
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        sources = pin["sources"]
        assert isinstance(sources, dict)
        files = {}
        for name, source in sources.items():
            shutil.copyfile(Path(tmp) / "package" / str(source), VENDOR / name)
            files[name] = sha256(VENDOR / name)
    return {**pin, "version": info["version"], "integrity": integrity, "files": files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fetch", action="store_true", help="re-vendor from the npm registry")
    parser.add_argument("--version", help="with --fetch: move the pin to this version")
    args = parser.parse_args()
    pin = json.loads(PIN.read_text(encoding="utf-8"))
    if args.fetch:
        pin = fetch(pin, args.version)
        PIN.write_text(json.dumps(pin, indent=2) + "\n", encoding="utf-8")
        print(f"vendored {pin['package']}@{pin['version']} ({pin['integrity']})")
    problems = check(pin)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        raise SystemExit(1)
    print(f"{pin['package']}@{pin['version']}: {len(pin['files'])} files match VENDOR.json")


if __name__ == "__main__":
    main()
