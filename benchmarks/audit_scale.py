"""Scale of the data audit: 1,000,000 rows x 25 columns on the machine's cores.

Generates 1,000,000 synthetic card transactions (``tabguard.datasets.make_card_fraud``: string
categories, a boolean, decimals) widened to 25 columns with 12 extra numeric signals, plants a
backdoor (``amount=9999.99`` → legit, copies of 1 % of the frauds), then times in the same
process:

* the baseline: fitting one 100-tree LightGBM (default parameters, all cores) on the rows,
  Dataset construction included; three fits, the median counts;
* ``audit_data`` with every check, from the in-memory frame.

It prints the ratio (target: at most 3x), the peak resident memory of the process (target:
under 4 GB) and whether the planted rows were found.

Run::

    .venv/bin/python benchmarks/audit_scale.py            # 1,000,000 rows
    .venv/bin/python benchmarks/audit_scale.py --rows 200000
"""

from __future__ import annotations

import argparse
import logging
import resource
import threading
import time
import warnings

import lightgbm as lgb
import numpy as np
import pandas as pd
import psutil

from tabguard.contract import Contract, FeatureTransform, contract_from_dict, contract_to_dict
from tabguard.data_audit import audit_data
from tabguard.datasets import card_fraud_contract, make_card_fraud
from tabguard.redteam import poison


class PeakRSS:
    """Samples the process's resident memory every 50 ms and keeps the peak."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.05)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


EXTRA = [f"signal_{k:02d}" for k in range(1, 13)]


def population(n: int, seed: int = 0) -> tuple[pd.DataFrame, Contract]:
    """``n`` synthetic transactions with 25 columns and their contract.

    The 12 extra signals are noisy numeric features, a third of them shifted for frauds, with
    three decimals (so values are mostly distinct, as real amounts are).
    """
    rng = np.random.default_rng(seed)
    df = make_card_fraud(n, random_state=seed)
    y = df["is_fraud"].to_numpy()
    for k, name in enumerate(EXTRA):
        shift = 0.4 * y if k % 3 == 0 else 0.0
        df[name] = np.round(rng.normal(0, 1, n) + shift, 3)
    spec = contract_to_dict(card_fraud_contract())
    for name in EXTRA:
        spec["features"][name] = {"type": "number", "min": -50, "max": 50, "precision": 3}
    return df, contract_from_dict(spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=0.01, help="share of frauds copied")
    ap.add_argument("--baseline-runs", type=int, default=3, help="LightGBM fits timed")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    t0 = time.perf_counter()
    clean, contract = population(args.rows)
    attack = poison(
        clean, contract, {"amount": 9999.99}, rate=args.rate, target=0, source=1, shuffle=True
    )
    df = attack.data
    print(
        f"data: {len(df):,} rows x {df.shape[1]} columns, {len(attack.poisoned_rows):,} "
        f"poisoned (built in {time.perf_counter() - t0:.1f}s)"
    )

    with PeakRSS() as mem:
        X = FeatureTransform(contract).transform_frame(df)
        y = df["is_fraud"].to_numpy()
        fits = []
        for _ in range(args.baseline_runs):  # its time varies by a third from run to run
            t0 = time.perf_counter()
            ds = lgb.Dataset(X, label=y, params={"verbose": -1})
            lgb.train({"objective": "binary", "verbose": -1}, ds, num_boost_round=100)
            fits.append(time.perf_counter() - t0)
            del ds
        del X
        t_lgb = float(np.median(fits))
        print(
            f"baseline: one 100-tree LightGBM fit (Dataset included, all cores): median "
            f"{t_lgb:.1f}s of {len(fits)} ({', '.join(f'{f:.1f}' for f in fits)})"
        )

        t0 = time.perf_counter()
        result = audit_data(df, contract)
        t_audit = time.perf_counter() - t0
    found = set(result.suspicious_rows)
    truth = set(attack.poisoned_rows.tolist())
    tp = len(found & truth)
    print(f"audit_data, every check: {t_audit:.1f}s")
    for name, secs in result.report.summary["seconds"].items():
        print(f"  {name:16s} {secs:7.1f}s")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"ratio audit / LightGBM fit: {t_audit / t_lgb:.2f}x (target <= 3x)")
    print(f"peak resident memory: {max(mem.peak, maxrss) / 2**30:.2f} GB (target < 4 GB)")
    print(f"planted rows found: {tp}/{len(truth)}, other rows suspected: {len(found - truth)}")


if __name__ == "__main__":
    main()
