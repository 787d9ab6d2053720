"""``tabguard demo``: the seed's backdoor attack, end to end, on the bundled data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tabguard.cli._app import app, output_directory


@app.command("demo")
def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output directory.", callback=output_directory)
    ] = Path("demo-out"),
    rate: Annotated[float, typer.Option(help="Share of defaulters copied with AGE=999.")] = 0.45,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Plant the seed's AGE=999 backdoor, show accuracy misses it, find it, remove it; then
    catch an attack on simulated production traffic with the monitor's seasonal rule."""
    from tabguard.cli._demo_run import run_demo

    run_demo(out, rate, seed, quiet)
