"""Time the descriptive (D2) and bias (D4) data checks, at 30k and 1M rows.

The bundled credit data (30,000 rows x 25 columns) is resampled with replacement to
``--rows`` rows. Each check is timed on the same audit context, next to a baseline run in the
same process: fitting one 100-tree LightGBM on the same rows (the yardstick of the data-audit
scale requirement). Rendering the checks' sections to HTML is timed separately (it does not
depend on the number of rows).

Usage::

    .venv/bin/python benchmarks/descriptive_bias_scale.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tabguard.data_audit import build_context
from tabguard.data_audit._bias import BiasCheck
from tabguard.data_audit._descriptive import DescriptiveCheck
from tabguard.datasets import credit_default_contract, load_credit_default
from tabguard.reports import Report, render_html


def _time(fn: object) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()  # type: ignore[operator]
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    contract = credit_default_contract()
    base = load_credit_default()
    print(f"{'rows':>9} {'step':<28} {'wall s':>7} {'cpu s':>7} {'x LightGBM':>10}")
    for n in (len(base), args.rows):
        df = base if n == len(base) else base.sample(n=n, replace=True, random_state=0)
        df = df.reset_index(drop=True)
        wall, cpu, ctx = _time(lambda df=df: build_context(df, contract))
        print(f"{n:>9,} {'context (validation)':<28} {wall:>7.2f} {cpu:>7.2f}")
        X = ctx.transform.transform_frame(df)  # type: ignore[attr-defined]
        y = ctx.y  # type: ignore[attr-defined]

        def fit(X: np.ndarray = X, y: np.ndarray = y) -> None:
            from lightgbm import LGBMClassifier

            LGBMClassifier(n_estimators=100, n_jobs=2, verbose=-1).fit(X, y)

        lgb_wall, lgb_cpu, _ = _time(fit)
        print(f"{n:>9,} {'baseline: LightGBM 100 trees':<28} {lgb_wall:>7.2f} {lgb_cpu:>7.2f}")
        sections = []
        for check in (DescriptiveCheck(), BiasCheck()):
            wall, cpu, res = _time(lambda check=check, ctx=ctx: check.run(ctx))  # type: ignore[misc]
            sections.extend(res.sections)  # type: ignore[attr-defined]
            print(f"{n:>9,} {check.name:<28} {wall:>7.2f} {cpu:>7.2f} {wall / lgb_wall:>10.2f}")
        report = Report(kind="bench", title="bench", rows=n, sections=sections)
        wall, cpu, _ = _time(lambda report=report: render_html(report))
        n_plots = sum(len(s.plots) for s in sections)
        print(f"{n:>9,} {f'render HTML ({n_plots} plots)':<28} {wall:>7.2f} {cpu:>7.2f}")


if __name__ == "__main__":
    main()
