"""The scripts of ``benchmarks/`` loaded as modules, for the tests of their logic."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@functools.cache  # a benchmark's import is a test's main cost: once per run
def load_benchmark(script: str) -> ModuleType:
    """``benchmarks/<script>`` as a module named ``_bench_<stem>``."""
    spec = importlib.util.spec_from_file_location(
        f"_bench_{Path(script).stem}", BENCHMARKS / script
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve their module's annotations
    spec.loader.exec_module(mod)
    return mod
