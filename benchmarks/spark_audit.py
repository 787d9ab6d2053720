"""The data audit on Spark at scale: ``tabguard audit data DATA --engine spark``.

Generates ROWS rows resampled with replacement from the bundled credit data (amounts jittered
by 3 %, as ``benchmarks/poisoning.py --resampled``), plants the seed trigger (``AGE=999`` on
copies of defaulters) in 0.1 % of the rows, writes them as one Parquet file with the contract,
then runs the whole command as a child process on ``local[2]``:

    tabguard audit data big.parquet --contract c.yaml --out DIR --engine spark \\
        --spark-master local[2]

and prints its wall time, CPU seconds (the command, Spark's JVM and its Python workers), the
peak resident memory of the driver (the Python process) and of the JVM (driver and executors
in local mode), the triggers named and the precision and recall of the suspects. With
``--compare`` the in-memory engine (``--engine python``) runs on the same file first and both
lines are printed, with the agreement of their suspects.

Run::

    .venv/bin/python benchmarks/spark_audit.py --rows 10000000
    .venv/bin/python benchmarks/spark_audit.py --rows 1000000 --compare
    .venv/bin/python benchmarks/spark_audit.py --rows 10000000 --reuse /tmp/tg-spark-audit
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from tabguard.contract import save_contract
from tabguard.datasets import credit_default_contract, load_credit_default
from tabguard.redteam import poison


def make_data(rows: int, where: Path) -> tuple[Path, Path, np.ndarray]:
    """Resampled credit rows with the seed trigger in 0.1 % of them (cached in ``where``)."""
    data, cpath, tpath = where / "data.parquet", where / "contract.yaml", where / "truth.npy"
    contract = credit_default_contract()
    if data.exists() and tpath.exists():
        return data, cpath, np.load(tpath)
    where.mkdir(parents=True, exist_ok=True)
    df = load_credit_default()
    planted = rows // 1000
    rng = np.random.default_rng(11)
    base = df.iloc[rng.integers(0, len(df), rows - planted)].reset_index(drop=True)
    for name in contract.model_features():
        spec = contract.features[name]
        if spec.is_numeric and df[name].nunique() > 20 and name != "AGE":
            x = base[name].to_numpy(dtype=float) * (1 + rng.normal(0, 0.03, len(base)))
            base[name] = np.round(x).astype(np.int64)
    res = poison(base, contract, {"AGE": 999}, n_rows=planted, shuffle=True, random_state=3)
    del base
    res.data.to_parquet(data, index=False, row_group_size=500_000)
    np.save(tpath, res.poisoned_rows)
    save_contract(contract, cpath)
    return data, cpath, res.poisoned_rows


def _watch(proc: subprocess.Popen[bytes], out: dict[str, Any]) -> None:
    """Poll the child's process tree: peak RSS of the driver, the JVM, the workers; CPU."""
    root = psutil.Process(proc.pid)
    cpu: dict[int, float] = {}
    peak = {"driver": 0, "jvm": 0, "workers": 0, "driver+jvm": 0}
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        now = {"driver": 0, "jvm": 0, "workers": 0}
        for p in procs:
            try:
                rss = p.memory_info().rss
                t = p.cpu_times()
                cpu[p.pid] = t.user + t.system
                kind = "driver" if p.pid == root.pid else "jvm" if "java" in p.name() else "workers"
                now[kind] += rss
            except psutil.Error:
                continue
        for k, v in now.items():
            peak[k] = max(peak[k], v)
        peak["driver+jvm"] = max(peak["driver+jvm"], now["driver"] + now["jvm"])
        time.sleep(0.5)
    out["peak"] = peak
    out["cpu"] = sum(cpu.values())


def run(
    engine: str, data: Path, contract: Path, out: Path, master: str, memory: str
) -> dict[str, Any]:
    """Run the command as a child process; wall, CPU, peak memory, its findings."""
    cmd = [
        str(Path(sys.executable).with_name("tabguard")),
        "audit",
        "data",
        str(data),
        "--contract",
        str(contract),
        "--out",
        str(out),
        "--quiet",
        "--format",
        "parquet",
    ]
    env = dict(os.environ)
    if engine == "spark":
        cmd += ["--engine", "spark", "--spark-master", master]
        env["PYSPARK_SUBMIT_ARGS"] = f"--driver-memory {memory} pyspark-shell"
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stats: dict[str, Any] = {}
    watcher = threading.Thread(target=_watch, args=(proc, stats))
    watcher.start()
    _, stderr = proc.communicate()
    watcher.join()
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        sys.stderr.write(stderr.decode()[-4000:])
        raise SystemExit(f"{engine}: exit {proc.returncode}")
    findings = json.loads((out / "findings.json").read_text())
    return {"wall": wall, **stats, "findings": findings}


def _suspects(findings: dict[str, Any]) -> np.ndarray:
    return np.asarray(findings.get("suspicious_rows", []), dtype=np.int64)


def _triggers(findings: dict[str, Any]) -> list[str]:
    return [
        " & ".join(f"{a}={b!r}" for a, b in zip(f["features"], f["values"], strict=False))
        for f in findings["findings"]
        if f["check"] == "trigger_scan" and f["severity"] == "critical"
    ]


def _line(name: str, r: dict[str, Any], truth: np.ndarray, rows: int) -> str:
    s = _suspects(r["findings"])
    hit = len(np.intersect1d(s, truth))
    p = hit / len(s) if len(s) else 0.0
    rec = hit / len(truth) if len(truth) else 1.0
    gb = {k: v / 2**30 for k, v in r["peak"].items()}
    return (
        f"{name}: {rows:,} rows in {r['wall']:.1f} s wall, {r['cpu']:.1f} CPU s; peak RSS "
        f"driver {gb['driver']:.2f} GB, JVM {gb['jvm']:.2f} GB, driver+JVM "
        f"{gb['driver+jvm']:.2f} GB, Python workers {gb['workers']:.2f} GB; "
        f"triggers {_triggers(r['findings'])}; suspects {len(s)}, P {p:.3f} R {rec:.3f} "
        f"({hit}/{len(truth)} planted)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--reuse", type=Path, help="directory of (or for) the generated data")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="1g", help="the JVM's heap (spark.driver.memory)")
    ap.add_argument("--compare", action="store_true", help="also run --engine python first")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    where = args.reuse or Path(f"/tmp/tg-spark-audit-{args.rows}")
    t0 = time.perf_counter()
    data, contract, truth = make_data(args.rows, where)
    ready = time.perf_counter() - t0
    print(f"data: {args.rows:,} rows, {len(truth):,} planted, ready in {ready:.0f} s")
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    results = {}
    if args.compare:
        results["python"] = run(
            "python", data, contract, where / "out-python", args.master, args.driver_memory
        )
        print(_line("python engine", results["python"], truth, args.rows), flush=True)
    results["spark"] = run(
        "spark", data, contract, where / "out-spark", args.master, args.driver_memory
    )
    print(_line(f"spark engine ({args.master})", results["spark"], truth, args.rows), flush=True)
    if args.compare:
        a, b = _suspects(results["python"]["findings"]), _suspects(results["spark"]["findings"])
        both = len(np.intersect1d(a, b))
        print(
            f"suspects: python {len(a)}, spark {len(b)}, both {both}; time spark/python "
            f"{results['spark']['wall'] / results['python']['wall']:.2f}x wall, "
            f"{results['spark']['cpu'] / results['python']['cpu']:.2f}x CPU"
        )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
