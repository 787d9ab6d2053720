"""The monitor's bars: update throughput (vs whylogs), window queries, percentile accuracy, bad
input. Not timed tests: figures printed with their conditions.

1. **Throughput**: a SQLite prediction log of ``--rows`` records (default 1,000,000; 23 raw
   attributes + 22 model features as JSON text, and each row's ``numbers`` vector as the
   service's log writer stores it; one request segment, refused requests, clipping, probing
   signals) over 8 days, read by the whole command users run,
   ``tabguard monitor update`` (a subprocess: start-up and imports included), into hourly
   buckets × segments (``all``, ``channel``, the contract's ``EDUCATION`` and ``MARRIAGE``).
   Baseline in the same run: whylogs 1.6.4 profiling the same rows, ``why.log(pandas=df)``,
   in a virtualenv this script builds itself (whylogs needs numpy < 2 and pandas < 3, which
   tabguard does not pin down); whylogs gets the rows already flattened into a DataFrame
   (its JSON parsing is timed apart) and makes one profile, no buckets, no segments. Second
   baseline: the same rows without vectors (a log written before the column), whose JSON
   documents the update parses.
2. **Query**: the last 6 h against the same 6 h a week earlier, every column of every segment
   (counts, guard actions, probing, merged sketches → percentiles), from stored buckets.
3. **Accuracy**: p1 and p99 of every raw attribute and feature, per segment, over windows of
   6 h, 1 day and 1 week, against exact values from the rows (rank error; ties counted as a
   rank interval).
4. **Bad input**: hand-edited and corrupt records, a 100,000-value segment explosion, a log
   database that is down: exit code, first line, watermark kept, nothing counted twice.
5. **Live alerting pass** (``--live-only`` runs this alone, ~1 min): a store of five weeks of
   hourly counters (``all``, three channels, four EDUCATION values; decisions, guard actions),
   four rules (the seed's rule over the median of 3 weeks, a guard-action rate, a volume
   drop, a decision rate over the last week) with the default CUSUM and dispersion; CPU
   seconds of one pass of ``tabguard monitor run`` reading one query per window (before)
   against one query per pass for the counters (after), in the same run, and whether the
   evaluations are identical.

Run::

    .venv/bin/python benchmarks/monitoring.py                  # 1M rows (~10 min the first time)
    .venv/bin/python benchmarks/monitoring.py --rows 200000 --no-whylogs
    .venv/bin/python benchmarks/monitoring.py --live-only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from _monitoring_log import T0, build_log
from tabguard.datasets import credit_default_contract
from tabguard.monitoring._numbers import NumberLayout

ROOT = Path(__file__).resolve().parents[1]
TABGUARD = ROOT / ".venv" / "bin" / "tabguard"
H = timedelta(hours=1)
WHYLOGS_PINS = ["whylogs==1.6.4", "numpy<2", "pandas<3", "pyarrow<21"]


def model_dir(work: Path) -> Path:
    """A small model directory (contract + features) for the monitor's columns."""
    target = work / "model"
    if (target / "manifest.json").is_file():
        return target
    import lightgbm as lgb

    from tabguard.contract import FeatureTransform, TransformOptions
    from tabguard.datasets import load_credit_default
    from tabguard.io import check_labels
    from tabguard.training import Scorer, save_model

    contract = credit_default_contract()
    df = load_credit_default().sample(3000, random_state=0)
    tr = FeatureTransform(contract, TransformOptions())
    ds = lgb.Dataset(tr.transform_frame(df), check_labels(df, contract).to_numpy())
    native = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1}, ds, 20)
    save_model(target, main=Scorer("main", "lightgbm", native, tr), contract=contract)
    return target


def layout_of(model: Path) -> NumberLayout | None:
    """The ``numbers`` layout the service's log writer uses for this model directory."""
    from tabguard.monitoring._config import MonitorConfig
    from tabguard.monitoring._update import plan_for_model

    return plan_for_model(model, MonitorConfig()).layout


def ensure_log(
    work: Path, rows: int, layout: NumberLayout | None = None
) -> tuple[Path, pd.DataFrame]:
    """The benchmark log (built once per row count; with ``layout``, its rows carry their
    ``numbers`` vectors as the service writes them) and the frame of its rows."""
    from _monitoring_log import frame

    # The layout's fingerprint in the name: a log cached under another layout is not reused
    # (the update would read it from its JSON).
    name = f"log-{rows}" + (f"-numbers-{layout.fingerprint.hex()[:8]}" if layout else "")
    db = work / f"{name}.db"
    if not db.is_file():
        t = time.perf_counter()
        tmp = work / f".{name}.db"
        tmp.unlink(missing_ok=True)
        build_log(f"sqlite:///{tmp}", rows, days=8, layout=layout)
        tmp.rename(db)
        print(f"built {db} ({rows:,} rows) in {time.perf_counter() - t:.0f} s", flush=True)
    return db, frame(rows, days=8)


def write_config(work: Path, name: str, log: Path, model: Path) -> Path:
    path = work / f"{name}.yaml"
    path.write_text(
        json.dumps(
            {
                "log": f"sqlite:///{log}",
                "store": f"sqlite:///{work / (name + '.db')}",
                "model": str(model),
                "aggregation": {
                    "segments": {"values": {"channel": ["online", "branch", "partner"]}}
                },
            }
        ),
        encoding="utf-8",
    )
    return path


def timed_update(config: Path, reset: bool) -> tuple[float, str, int, float]:
    """(wall seconds, output, exit code, CPU seconds of the command)."""
    import resource

    args = [str(TABGUARD), "monitor", "update", "--config", str(config)]
    if reset:
        args.append("--reset")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, (proc.stdout + proc.stderr).strip(), proc.returncode, cpu


def bytecode(package: Path) -> str:
    """Compile the package's modules once, as ``pip install`` does for an installed package.

    An editable checkout run with ``PYTHONDONTWRITEBYTECODE=1`` (set in some CI and sandbox
    environments) would otherwise compile ~70 modules from source at every start of the
    command (~0.2 CPU-s), which an installed tabguard never does.
    """
    import compileall

    ok = compileall.compile_dir(str(package), quiet=1, workers=1)
    return "ok" if ok else "some modules failed to compile"


# ---- whylogs ----------------------------------------------------------------------------------

WHYLOGS_SCRIPT = r"""
import json, sqlite3, sys, time
import pandas as pd
t = time.perf_counter()
con = sqlite3.connect(sys.argv[1])
rows = con.execute("SELECT raw, features FROM tg_predictions").fetchall()
raw = pd.DataFrame.from_records([json.loads(r) for r, _ in rows])
feats = pd.DataFrame.from_records([json.loads(f) for _, f in rows]).add_prefix("feature_")
df = pd.concat([raw.apply(pd.to_numeric, errors="coerce"), feats], axis=1)
parse = time.perf_counter() - t
import whylogs as why
t = time.perf_counter()
profile = why.log(pandas=df).profile()
log = time.perf_counter() - t
print(json.dumps({"rows": len(df), "columns": df.shape[1], "parse_s": parse, "profile_s": log}))
"""


def whylogs_python(work: Path) -> Path | None:
    venv = work / "whylogs-venv"
    python = venv / "bin" / "python"
    if python.is_file():
        return python
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *WHYLOGS_PINS],
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        print(f"whylogs baseline unavailable: {(exc.stderr or exc)!s:.300}")
        shutil.rmtree(venv, ignore_errors=True)
        return None
    return python


def whylogs_run(python: Path, db: Path, work: Path) -> dict[str, float] | None:
    script = work / "whylogs_profile.py"
    script.write_text(WHYLOGS_SCRIPT, encoding="utf-8")
    proc = subprocess.run(
        [str(python), str(script), str(db)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        print(f"whylogs run failed: {proc.stderr.strip()[-500:]}")
        return None
    out: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# ---- query and accuracy -----------------------------------------------------------------------


def query_figures(store_url: str, end: pd.Timestamp, repeats: int = 7) -> dict[str, float]:
    from tabguard.monitoring import open_monitor_store

    store = open_monitor_store(store_url)
    now = (end - 6 * H, end)
    before = (now[0] - timedelta(weeks=1), now[1] - timedelta(weeks=1))
    times, cpu = [], []
    for _ in range(repeats):
        c = time.process_time()
        t = time.perf_counter()
        for start, stop in (now, before):
            # Every counter family of every segment in one aggregate, then every column of
            # every segment from the merged sketches.
            store.counts(start, stop, ["sd", "guard", "violation", "probing", "cat"])
            summary = store.numeric_summary(start, stop)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    cells = len(summary)
    store.close()
    return {
        "median_ms": 1000 * statistics.median(times),
        "min_ms": 1000 * min(times),
        "cpu_ms": 1000 * statistics.median(cpu),
        "cells_per_window": cells,
    }


def accuracy(store_url: str, df: pd.DataFrame) -> pd.DataFrame:
    """Rank error of p1/p99 per (window, segment, kind, column) against the exact rows."""
    from tabguard.monitoring import open_monitor_store

    store = open_monitor_store(store_url)
    contract = credit_default_contract()
    numeric = [n for n, f in contract.features.items() if f.is_numeric]
    epoch = df["_epoch"].to_numpy()
    end = int(epoch.max()) // 3600 * 3600
    records = []
    for length in (6 * H, timedelta(days=1), timedelta(weeks=1)):
        start = pd.Timestamp(end, unit="s", tz="UTC") - length
        stop = pd.Timestamp(end, unit="s", tz="UTC")
        mask = (epoch >= start.timestamp()) & (epoch < stop.timestamp())
        exact = df.loc[mask]
        pct = store.percentiles(start, stop, kind="raw", q=(0.01, 0.99))
        for row in pct.itertuples():
            # Refused rows carry AGE=999 in the log (the frame holds the value before that);
            # channel values are drawn apart from the frame.
            if row.column not in numeric or row.column == "AGE" or row.segment_key == "channel":
                continue
            part = exact
            if row.segment_key != "all":
                labels = exact[row.segment_key].astype(int).astype(str)
                part = exact[labels == row.segment_value]
            values = np.sort(part[row.column].to_numpy(dtype=float))
            if values.size != row.n:
                continue  # a segment holding `other` values
            below = np.searchsorted(values, row.value, side="left") / values.size
            upto = np.searchsorted(values, row.value, side="right") / values.size
            err = 0.0 if below <= row.q <= upto else min(abs(below - row.q), abs(upto - row.q))
            records.append((length, row.segment_key, row.column, row.q, row.n, err))
    store.close()
    return pd.DataFrame(records, columns=["window", "segment", "column", "q", "n", "rank_error"])


def bad_input(work: Path, model: Path) -> list[tuple[str, int, str, str]]:
    """(case, exit code, first line, check) for each bad-input case."""
    import sqlite3

    out = []
    small, _ = ensure_log(work, 20_000)
    edited = work / "edited-log.db"
    shutil.copy(small, edited)
    con = sqlite3.connect(edited)
    ids = [r[0] for r in con.execute("SELECT decision_id FROM tg_predictions LIMIT 6")]
    con.execute("UPDATE tg_predictions SET raw = '{not json' WHERE decision_id = ?", ids[:1])
    con.execute(
        'UPDATE tg_predictions SET raw = \'{"AGE": "thirty", "LIMIT_BAL": 1e999}\' '
        "WHERE decision_id = ?",
        ids[1:2],
    )
    con.execute("UPDATE tg_predictions SET timestamp = 'yesterday' WHERE decision_id = ?", ids[2:3])
    con.execute(
        "UPDATE tg_predictions SET segment = 'garbage', guard_actions = '{', probing = '7' "
        "WHERE decision_id = ?",
        ids[3:4],
    )
    con.execute("UPDATE tg_predictions SET features = '[1,2]' WHERE decision_id = ?", ids[4:5])
    con.commit()
    con.close()
    config = write_config(work, "edited", edited, model)
    _, first, code, _ = timed_update(config, reset=True)
    _, second, _, _ = timed_update(config, reset=False)
    out.append(("corrupt / hand-edited rows (5 of 20,000)", code, first, second))

    vectors, _ = ensure_log(work, 20_000, layout_of(model))
    edited = work / "edited-vectors-log.db"
    shutil.copy(vectors, edited)
    con = sqlite3.connect(edited)
    ids = [r[0] for r in con.execute("SELECT decision_id FROM tg_predictions LIMIT 3")]
    con.execute(
        "UPDATE tg_predictions SET numbers = substr(numbers, 1, 40) WHERE decision_id = ?", ids[:1]
    )
    con.execute("UPDATE tg_predictions SET numbers = X'00' WHERE decision_id = ?", ids[1:2])
    con.execute(
        "UPDATE tg_predictions SET numbers = zeroblob(length(numbers)) WHERE decision_id = ?",
        ids[2:3],
    )
    con.commit()
    con.close()
    config = write_config(work, "edited-vectors", edited, model)
    _, first, code, _ = timed_update(config, reset=True)
    _, second, _, _ = timed_update(config, reset=False)
    out.append(("hand-edited numbers vectors (3 of 20,000)", code, first, second))

    explosion, _ = ensure_log(work, 100_000)
    exploded = work / "explosion-log.db"
    shutil.copy(explosion, exploded)
    con = sqlite3.connect(exploded)
    con.execute(
        "UPDATE tg_predictions SET segment = json_object('channel', "
        "json_extract(segment, '$.channel'), 'campaign', 'c' || rowid)"
    )
    con.commit()
    con.close()
    config = write_config(work, "explosion", exploded, model)
    _, first, code, _ = timed_update(config, reset=True)
    from tabguard.monitoring import open_monitor_store

    with open_monitor_store(f"sqlite:///{work / 'explosion.db'}") as store:
        vol = store.volume(T0, T0 + timedelta(days=9))
    campaigns = sorted(set(vol.loc[vol.segment_key == "campaign", "segment_value"]))
    size = os.path.getsize(work / "explosion.db") / 1e6
    out.append(
        (
            "segment explosion (100,000 distinct campaigns)",
            code,
            first,
            f"campaign segments: {campaigns}; store {size:.0f} MB",
        ),
    )

    down = work / "down.yaml"
    down.write_text(
        json.dumps(
            {
                "log": "postgresql://postgres@127.0.0.1:9/nowhere",
                "store": f"sqlite:///{work / 'down.db'}",
                "model": str(model),
            }
        ),
        encoding="utf-8",
    )
    _, first, code, _ = timed_update(down, reset=False)
    with open_monitor_store(f"sqlite:///{work / 'down.db'}") as store:
        mark = store.watermark()
    out.append(("log database down", code, first, f"watermark after: {mark}"))
    return out


def live_pass_figures(work: Path, passes: int = 5) -> dict[str, float]:
    """CPU seconds of one live alerting pass, window by window vs one query per pass."""
    from tabguard.monitoring import ALL, Alerting, Delta, open_monitor_store
    from tabguard.monitoring._alerts import AlertStore
    from tabguard.monitoring._rules_config import parse_alerting
    from tabguard.monitoring._store import F_GUARD, F_STATUS_DECISION, bucket_key
    from tabguard.storage import create_sql_engine

    db = work / "live-pass.db"
    db.unlink(missing_ok=True)
    store = open_monitor_store(f"sqlite:///{db}", bucket=H)
    rng = np.random.default_rng(0)
    now = pd.Timestamp("2026-03-02 15:00", tz="UTC").to_pydatetime()  # a Monday afternoon
    start = now - timedelta(weeks=5)
    channels = {"online": (60, 0.15), "branch": (25, 0.1), "partner": (10, 0.3)}
    delta = Delta()
    for h in range(int((now - start) / H)):
        b = bucket_key(start + h * H, H)
        for channel, (n, deny) in channels.items():
            k = int(rng.binomial(n, deny))
            education = str(rng.integers(1, 5))
            for seg in (ALL, ("channel", channel), ("EDUCATION", education)):
                delta.count((b, *seg, F_STATUS_DECISION, "accepted|deny"), k)
                delta.count((b, *seg, F_STATUS_DECISION, "accepted|approve"), n - k)
                delta.count((b, *seg, F_STATUS_DECISION, "rejected_validation|"), 1)
                delta.count((b, *seg, F_GUARD, "sanitise|clip|AGE"), int(rng.integers(0, 3)))
    store.merge(delta, watermark={"seq": 1}, expected=None)
    segments = ["all", "channel", "EDUCATION"]
    config = parse_alerting(
        {
            "rules": [
                {"name": "seed", "metric": "decision_rate", "decision": "deny", "window": "6h",
                 "baseline": {"median_of_weeks": 3}, "direction": "below", "change": "20%",
                 "segments": segments},
                {"name": "clip", "metric": "guard_action_rate", "action": "clip",
                 "window": "6h", "baseline": {"weeks_ago": 1}, "direction": "above",
                 "change": "50%", "segments": segments},
                {"name": "volume", "metric": "volume", "window": "6h",
                 "baseline": {"median_of_weeks": 3}, "direction": "below", "change": "50%",
                 "segments": segments},
                {"name": "approve", "metric": "decision_rate", "decision": "approve",
                 "window": "1d", "baseline": {"weeks_ago": 1}, "direction": "either",
                 "change": "20%", "segments": segments},
            ]
        }
    )  # fmt: skip
    out: dict[str, float] = {}
    results = {}
    for name, prefetch in (("before", False), ("after", True)):
        alerting = Alerting(
            store,
            config,
            alerts=AlertStore(create_sql_engine("memory://"), "scratch"),
            prefetch=prefetch,
        )
        cpu = []
        evaluations = []
        for i in range(passes):
            t = time.process_time()
            evaluations.append(alerting.step(now - (passes - 1 - i) * H).evaluations)
            cpu.append(time.process_time() - t)
        out[name] = statistics.median(cpu)
        results[name] = evaluations
    out["identical"] = float(results["before"] == results["after"])
    out["evaluations"] = float(len(results["after"][0]))
    store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/tabguard-bench-monitoring"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-whylogs", action="store_true")
    parser.add_argument("--live-only", action="store_true", help="Only 5. (live pass).")
    args = parser.parse_args()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    if args.live_only:
        print_live_pass(work)
        return
    model = model_dir(work)
    # The log as the service writes it (JSON documents + numbers vectors), and the same rows
    # without vectors (a log written before the column existed): the same-run baseline.
    db, df = ensure_log(work, args.rows, layout_of(model))
    db_json, _ = ensure_log(work, args.rows)
    config = write_config(work, f"store-{args.rows}", db, model)

    # 1. throughput
    compiled = bytecode(ROOT / "src" / "tabguard")
    print(f"tabguard's modules compiled to bytecode ({compiled}), as an installed package has them")
    runs, cpus = [], []
    for _ in range(args.repeats):
        seconds, line, code, cpu = timed_update(config, reset=True)
        runs.append(seconds)
        cpus.append(cpu)
        print(
            f"tabguard monitor update: {seconds:.1f} s wall, {cpu:.1f} s CPU, exit {code}: "
            f"{line[:170]}",
            flush=True,
        )
    best = min(runs)
    rate = args.rows / best
    print(
        f"-> WHOLE COMMAND (start-up included, the issue's bar: 100,000): {rate:,.0f} records/s "
        f"wall (best of {len(runs)}: {', '.join(f'{r:.1f}' for r in runs)} s); "
        f"{args.rows / min(cpus):,.0f} records per CPU-second; load average now "
        f"{os.getloadavg()[0]:.1f}"
    )
    json_config = write_config(work, f"store-json-{args.rows}", db_json, model)
    seconds, line, code, cpu = timed_update(json_config, reset=True)
    print(
        f"same rows without numbers vectors (JSON documents parsed): {seconds:.1f} s wall, "
        f"{cpu:.1f} s CPU, exit {code}: {line[:120]}\n-> vectors / JSON = "
        f"{seconds / best:.2f}x wall, {cpu / min(cpus):.2f}x CPU; load average now "
        f"{os.getloadavg()[0]:.1f}",
        flush=True,
    )
    print(
        f"store size {os.path.getsize(work / f'store-{args.rows}.db') / 1e6:.0f} MB, "
        f"log size {os.path.getsize(db) / 1e6:.0f} MB with vectors, "
        f"{os.path.getsize(db_json) / 1e6:.0f} MB without",
        flush=True,
    )
    if not args.no_whylogs:
        python = whylogs_python(work)
        if python is not None:
            why = whylogs_run(python, db, work)
            if why is not None:
                print(
                    f"whylogs 1.6.4: parse JSON to a DataFrame {why['parse_s']:.1f} s, "
                    f"why.log {why['profile_s']:.1f} s ({why['rows'] / why['profile_s']:,.0f} "
                    f"rows/s, {why['columns']} columns, one profile); "
                    f"tabguard / whylogs(profile only) = {why['profile_s'] / best:.2f}x, "
                    f"tabguard / whylogs(parse + profile) = "
                    f"{(why['parse_s'] + why['profile_s']) / best:.2f}x"
                )

    # 2. query
    end = pd.Timestamp(int(df["_epoch"].max()) // 3600 * 3600, unit="s", tz="UTC")
    q = query_figures(f"sqlite:///{work / f'store-{args.rows}.db'}", end)
    print(
        f"6 h vs same 6 h last week, every segment and column ({q['cells_per_window']:.0f} "
        f"segment x column cells per window): median {q['median_ms']:.0f} ms wall, "
        f"best {q['min_ms']:.0f} ms, median {q['cpu_ms']:.0f} ms CPU"
    )

    # 3. accuracy
    acc = accuracy(f"sqlite:///{work / f'store-{args.rows}.db'}", df)
    for (window, level), part in acc.groupby(["window", "q"]):
        print(
            f"rank error p{level * 100:g} over {window}: max {part.rank_error.max():.3%}, "
            f"mean {part.rank_error.mean():.3%} ({len(part)} segment x column cells, "
            f"{int(part.n.min()):,}-{int(part.n.max()):,} values)"
        )

    # 4. bad input
    for case, code, first, check in bad_input(work, model):
        print(f"{case}: exit {code}: {first[:200]} | then: {check[:200]}", flush=True)

    # 5. live pass
    print_live_pass(work)


def print_live_pass(work: Path) -> None:
    """Section 5's line."""
    live = live_pass_figures(work)
    print(
        f"live alerting pass (4 rules, {live['evaluations']:.0f} evaluations, 5 weeks of hourly "
        f"counters, median of 5 passes): {live['before']:.3f} CPU s one query per window, "
        f"{live['after']:.3f} CPU s one query per pass -> {live['before'] / live['after']:.1f}x; "
        f"evaluations identical: {bool(live['identical'])}; load average "
        f"{os.getloadavg()[0]:.1f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
