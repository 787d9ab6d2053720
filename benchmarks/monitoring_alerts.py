"""Detection of an attack by the seasonal alert rules, on simulated traffic (issue 8 bar).

Each scenario sends weeks of applications through the real scoring service
(``tabguard.redteam.simulate_traffic``) with the monitor in the loop every simulated hour
(``SimulationMonitor``: bucket update, rules, actions on the service's flag store), then an
attack on one segment. Reported per scenario and rule:

* false alerts: alerts opened before the onset (the clean weeks);
* delay: first alert naming the attacked segment, minus the onset;
* the attacked segment's denial rate: the same hours a week earlier, under attack before the
  flag, and after the flag;

and, on the same traffic, Prometheus-style rules evaluated every 15 minutes per channel
(``deny rate over 6h < 0.8 * (same expression offset 1w)``, with and without a volume clause,
and with a median-of-3-weeks baseline), counting false episodes before the onset and delay.

The ``tuned`` scenario is the one the defaults were looked at on; the others were run once,
afterwards, to see how the rules do on traffic nobody tuned on.

Usage::

    python benchmarks/monitoring_alerts.py                      # every scenario
    python benchmarks/monitoring_alerts.py --only tuned --per-day 6000
    python benchmarks/monitoring_alerts.py --only tuned partner_small --seeds 21 22
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RULES = """
aggregation:
  bucket: 1h
  segments: {{request_keys: [channel], features: []}}
  columns: {{raw: [{feature}], features: [{feature}]}}
calendar: {{holidays: [{holidays}]}}
rules:
  - name: {name}
    metric: decision_rate
    decision: deny
    window: 6h
    baseline: {baseline}
    direction: below
    change: 20%
    segments: [all, channel]
    severity: critical
    actions: [{{flag: neutralize, value: [{feature}]}}, log]
"""


@dataclass
class Scenario:
    name: str
    seed: int = 0
    channels: tuple[tuple[str, float, float, float], ...] = (
        ("online", 0.62, 1.1, 0.0),
        ("branch", 0.28, 0.2, -0.3),
        ("partner", 0.10, 0.7, 0.4),
    )
    segment: str = "online"
    feature: str = "PAY_AMT2"
    share: float = 1.0
    onset: timedelta = timedelta(days=30, hours=11)
    holidays: tuple[date, ...] = (date(2026, 1, 22),)
    days: int = 35
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


SCENARIOS = {
    "tuned": Scenario("tuned", notes="online (62%) attacked; the defaults were looked at on this"),
    "seed1": Scenario("seed1", seed=1, notes="other seed"),
    "sizes": Scenario(
        "sizes",
        seed=2,
        channels=(
            ("online", 0.45, 1.0, 0.1),
            ("branch", 0.2, 0.3, -0.2),
            ("partner", 0.2, 0.9, 0.3),
            ("broker", 0.15, 0.5, 0.5),
        ),
        segment="broker",
        notes="four channels of other sizes, broker (15%) attacked",
    ),
    "branch_age": Scenario(
        "branch_age",
        seed=3,
        segment="branch",
        feature="AGE",
        onset=timedelta(days=29, hours=9),
        notes="branch (28%, closed weekends) attacked through AGE",
    ),
    "holiday_baseline": Scenario(
        "holiday_baseline",
        seed=4,
        holidays=(date(2026, 1, 22), date(2026, 1, 28)),
        notes="a holiday exactly one week before the onset (the seed rule's baseline)",
    ),
    "partner_small": Scenario(
        "partner_small", seed=5, segment="partner", notes="partner (10%) attacked: a small segment"
    ),
}


def model_bundle(workdir: Path) -> Any:
    """A LightGBM model an attack can move (tabguard.redteam.vulnerable_model), trained once."""
    from tabguard.redteam import vulnerable_model

    return vulnerable_model(workdir / "model")


def naive(
    requests: pd.DataFrame, onset: datetime, segment: str, *, volume: int = 0, median: bool = False
) -> dict[str, Any]:
    """Prometheus-style ratio rule every 15 min per channel: false episodes and delay."""
    df = requests[requests["decision"].notna()].copy()
    df["t"] = pd.to_datetime(df["time"], utc=True)
    step = pd.Timedelta(minutes=15)
    start = df["t"].min().floor("15min") + pd.Timedelta(weeks=1 if not median else 3)
    end = df["t"].max()
    out: dict[str, Any] = {"false_episodes": 0, "delay_h": None}
    for ch, g in df.groupby("channel"):
        t = g["t"].dt.tz_convert(None).to_numpy().astype("datetime64[ns]").astype(np.int64)
        cum_d = np.concatenate([[0], np.cumsum((g["decision"] == "deny").to_numpy())])

        def rate(
            a: pd.Timestamp, b: pd.Timestamp, t: np.ndarray = t, cum_d: np.ndarray = cum_d
        ) -> tuple[float, int]:
            i, j = np.searchsorted(t, a.value), np.searchsorted(t, b.value)
            n = int(j - i)
            return ((cum_d[j] - cum_d[i]) / n if n else np.nan), n

        firing = False
        at = start
        weeks = (1, 2, 3) if median else (1,)
        while at <= end:
            now, n = rate(at - pd.Timedelta(hours=6), at)
            bases = [
                rate(at - pd.Timedelta(weeks=w, hours=6), at - pd.Timedelta(weeks=w))[0]
                for w in weeks
            ]
            base = float(np.nanmedian(bases)) if not all(np.isnan(bases)) else np.nan
            cond = n >= volume and np.isfinite(now) and np.isfinite(base) and now < 0.8 * base
            if cond and not firing:
                if at < onset:
                    out["false_episodes"] += 1
                elif ch == segment and out["delay_h"] is None:
                    out["delay_h"] = (at - onset).total_seconds() / 3600
            firing = bool(cond)
            at += step
    return out


def run(s: Scenario, per_day: float, baseline: str, workdir: Path) -> dict[str, Any]:
    from tests.serving.conftest import write_config

    from tabguard.monitoring import load_monitor_config
    from tabguard.monitoring._live import SimulationMonitor
    from tabguard.redteam import AttackSpec, Channel, TrafficOptions, simulate_traffic
    from tabguard.serving import load_config

    home = workdir / f"home-{s.name}-{baseline.split(':')[0].strip('{ ')}-{int(per_day)}"
    write_config(home, '[stores]\nflags = "memory://"\nkeys = "memory://"\n')
    name = "median3" if "median" in baseline else "lastweek"
    (home / "monitor.yaml").write_text(
        RULES.format(
            feature=s.feature,
            holidays=", ".join(d.isoformat() for d in s.holidays),
            name=name,
            baseline=baseline,
        ),
        encoding="utf-8",
    )
    bundle = model_bundle(workdir)
    mon = SimulationMonitor(load_monitor_config(home / "monitor.yaml", home=home))
    opts = TrafficOptions(
        days=s.days,
        per_day=per_day,
        seed=s.seed,
        holidays=s.holidays,
        channels=tuple(Channel(*c) for c in s.channels),
        attack=AttackSpec(onset=s.onset, segment=s.segment, feature=s.feature, share=s.share),
    )
    t0 = time.perf_counter()
    try:
        res = simulate_traffic(bundle, load_config(home), opts, on_step=mon)
    finally:
        mon.close()
    wall = time.perf_counter() - t0
    onset = opts.start + s.onset
    opened = mon.opened
    false = [(t, a) for t, a in opened if t < onset]
    hits = [t for t, a in opened if t >= onset and a.segment == ("channel", s.segment)]
    delay = (hits[0] - onset).total_seconds() / 3600 if hits else None
    flag_at = next((t for t, a in opened if t >= onset), None)
    week = timedelta(weeks=1)
    before, _ = res.denial_rate(onset - week, onset - week + timedelta(hours=12), s.segment)
    under, n_under = res.denial_rate(onset, flag_at or onset + timedelta(days=1), s.segment)
    after, n_after = (
        res.denial_rate(flag_at, flag_at + timedelta(days=2), s.segment)
        if flag_at
        else (float("nan"), 0)
    )
    out = {
        "scenario": s.name,
        "rule": name,
        "per_day": per_day,
        "requests": len(res.requests),
        "wall_s": round(wall, 1),
        "false_alerts": len(false),
        "false_detail": [f"{t:%m-%d %H:%M} {a.segment_text}" for t, a in false],
        "delay_h": delay,
        "attack_value": res.truth["value"],
        "deny_week_before": round(before, 3),
        "deny_under_attack": round(under, 3),
        "deny_after_flag": round(after, 3),
        "n_under": n_under,
        "n_after": n_after,
    }
    if baseline.startswith("{weeks_ago"):
        for label, kw in (
            ("prom", {}),
            ("prom_vol", {"volume": 30}),
            ("prom_median_vol", {"volume": 30, "median": True}),
        ):
            out[label] = naive(res.requests, onset, s.segment, **kw)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", default=list(SCENARIOS))
    ap.add_argument("--per-day", type=float, default=3000.0)
    ap.add_argument("--rules", nargs="*", default=["median3", "lastweek"])
    ap.add_argument("--out", type=Path, default=None, help="JSON lines of the results")
    ap.add_argument(
        "--seeds",
        nargs="*",
        type=int,
        default=None,
        help="run each scenario with these seeds instead of its own (traffic nobody tuned on)",
    )
    args = ap.parse_args()
    baselines = {"median3": "{median_of_weeks: 3}", "lastweek": "{weeks_ago: 1}"}
    work = Path(tempfile.mkdtemp(prefix="tg-alerts-"))
    for name in args.only:
        for seed in args.seeds or [SCENARIOS[name].seed]:
            for rule in args.rules:
                s = SCENARIOS[name]
                if seed != s.seed:
                    s = replace(s, name=f"{s.name}@{seed}", seed=seed)
                r = run(s, args.per_day, baselines[rule], work)
                print(json.dumps(r, default=str), flush=True)
                if args.out:
                    with args.out.open("a") as fh:
                        fh.write(json.dumps(r, default=str) + "\n")


if __name__ == "__main__":
    main()
