"""Cost of a probing attack on the scoring API, with each defence off and on (L2, S6).

The attacker (:class:`tabguard.redteam.ProbingAttacker`) holds an application the model denies
by a small margin and changes only its self-declared (gameable) fields until it is approved.
Every configuration attacks the same applications through the real service (in process, the
full guards pipeline) with a fresh API key per attack:

==================================  ==========================================================
configuration                       what changes
==================================  ==========================================================
no defences, score answers          the key has the ``score`` scope; no limits, no detection
decision-only answers               the default: no score in responses
+ coarse bins                       a model trained with the contract's bins on gameable fields
+ per-subject limit 1/day           ``[limits] per_subject``; the attacker farms 20 subject ids
+ probing -> throttle 1/minute      ``[probing] action = "throttle"``
+ probing -> review                 ``[probing] action = "review"``: flagged clients get review
+ delay                             ``delay`` flag (measured with 10 ms, reported per hour)
all on                              bins + per-subject limit + probing review + decision-only
==================================  ==========================================================

Then the same throttle defence against disguised probing (issue 15.2): the walk and a
bisection (two ends of a field's range, then halving down to one unit), each plain and
disguised: ``BILL_AMT6 + i`` (a non-gameable amount moved by one unit per query, so no two
queries are equal), and jitter of up to ±100 on every bill amount plus a swap of the protected
SEX code on every query. A disguise that works would get more queries answered before the
first 429; the rows without detection show what each strategy needs to succeed.

The attacker does not sleep through waits: when the service asks it to wait (Retry-After) it
stops and the table shows the wait it faced. Budget: 400 queries, 20 subject ids.

Run::

    .venv/bin/python benchmarks/attacker.py            # 20 applications per configuration
    .venv/bin/python benchmarks/attacker.py --attacks 5 --queries 200   # quicker
    .venv/bin/python benchmarks/attacker.py --only disguised            # issue 15.2 rows
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from tabguard.datasets import credit_default_contract, load_credit_default
from tabguard.flags import MemoryFlagStore
from tabguard.redteam import AttackConfig, AttackResult, HttpTarget, ProbingAttacker
from tabguard.serving import MemoryKeyStore, ScoringService, create_app, load_config
from tabguard.training import ModelBundle, TrainConfig, train


def train_models(df: pd.DataFrame, out: Path) -> dict[str, ModelBundle]:
    """The default model and one with coarse bins on the gameable features."""
    contract = credit_default_contract()
    common = {
        "audit": False,
        "track": False,
        "report": False,
        "n_bootstrap": 10,
        "fallback": False,
    }
    models = {}
    for name, bins in (("default", "none"), ("bins", ",".join(contract.gameable_features()))):
        t = time.perf_counter()
        res = train(df, contract, TrainConfig(bins=bins, **common), out=out / name)  # type: ignore[arg-type]
        print(
            f"trained {name:8s} AUC {res.metrics['test_auc']:.4f} "
            f"({time.perf_counter() - t:.1f} s)",
            flush=True,
        )
        models[name] = res.bundle
    return models


class Service:
    """A running service with memory stores and a TestClient."""

    def __init__(self, bundle: ModelBundle, home: Path, toml: str) -> None:
        home.mkdir(parents=True, exist_ok=True)
        (home / "tabguard.toml").write_text(
            f'[log]\nflush_interval = 0.2\n[stores]\nlog = "memory://"\n{toml}', encoding="utf-8"
        )
        self.keys = MemoryKeyStore()
        self.flags = MemoryFlagStore()
        self.service = ScoringService(
            bundle, load_config(home), key_store=self.keys, flag_store=self.flags
        )
        self.client = TestClient(create_app(service=self.service))

    def __enter__(self) -> Service:
        self.client.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.__exit__(*exc)


CONFIGS: list[dict[str, Any]] = [
    {"name": "no defences, score answers", "score": True},
    {"name": "decision-only answers"},
    {"name": "+ coarse bins", "model": "bins"},
    {
        "name": "+ per-subject limit 1/day",
        "toml": '[limits]\nper_client = "off"\nper_subject = "1/day"\n',
        "subjects": 20,
    },
    {
        "name": "+ probing -> throttle 1/minute",
        "toml": '[probing]\naction = "throttle"\nthrottle = "1/minute"\n',
    },
    {"name": "+ probing -> review", "toml": '[probing]\naction = "review"\n'},
    {"name": "+ delay (10 ms measured)", "delay": 0.01},
    {
        "name": "all on",
        "model": "bins",
        "toml": '[limits]\nper_client = "off"\nper_subject = "1/day"\n'
        '[probing]\naction = "review"\n',
        "subjects": 20,
    },
]
THROTTLE = '[probing]\naction = "throttle"\nthrottle = "1/minute"\n'
NUDGE = {"nudge": {"BILL_AMT6": 1.0}}
JITTER = {"jitter": {f"BILL_AMT{i}": 100.0 for i in range(1, 7)}, "swap": ("SEX",)}
DISGUISED: list[dict[str, Any]] = [
    {"name": "bisection, no detection", "attack": {"strategy": "bisect"}},
    {"name": "bisection + nudge, no detection", "attack": {"strategy": "bisect", **NUDGE}},
    {"name": "throttle: walk", "toml": THROTTLE, "attack": {"strategy": "walk"}},
    {"name": "throttle: walk + nudge", "toml": THROTTLE, "attack": {"strategy": "walk", **NUDGE}},
    {"name": "throttle: walk + jitter", "toml": THROTTLE, "attack": {"strategy": "walk", **JITTER}},
    {"name": "throttle: bisection", "toml": THROTTLE, "attack": {"strategy": "bisect"}},
    {
        "name": "throttle: bisection + nudge",
        "toml": THROTTLE,
        "attack": {"strategy": "bisect", **NUDGE},
    },
    {
        "name": "throttle: bisection + jitter",
        "toml": THROTTLE,
        "attack": {"strategy": "bisect", **JITTER},
    },
]


def run_config(
    cfg: dict[str, Any],
    models: dict[str, ModelBundle],
    applications: list[dict[str, Any]],
    home: Path,
    queries: int,
) -> list[AttackResult]:
    contract = credit_default_contract()
    toml = cfg.get("toml", "")
    if "[limits]" not in toml:
        toml += '[limits]\nper_client = "off"\n'
    if "[probing]" not in toml:
        toml += "[probing]\nenabled = false\n"
    results = []
    with Service(models[cfg.get("model", "default")], home, toml) as svc:
        if cfg.get("delay"):
            svc.flags.set("delay", cfg["delay"], actor="bench")
            svc.service.watcher.refresh()
        for i, app in enumerate(applications):
            scopes = "decide,score" if cfg.get("score") else "decide"
            key = svc.keys.create(f"attacker-{i}", scopes)[1]
            attacker = ProbingAttacker(
                HttpTarget(svc.client, key),
                contract,
                AttackConfig(
                    max_queries=queries,
                    max_subjects=cfg.get("subjects", 1),
                    seed=i,
                    **cfg.get("attack", {}),
                ),
            )
            results.append(attacker.attack(app, subject_prefix=f"mallory{i}"))
    return results


def pick_applications(
    models: dict[str, ModelBundle], held_out: pd.DataFrame, n: int, margin: float
) -> list[dict[str, Any]]:
    """Applications both models deny, within ``margin`` above the default model's threshold."""
    contract = credit_default_contract()
    cols = list(contract.features)
    rows = held_out[cols]
    p_default = models["default"].main.positive_proba(rows)
    p_bins = models["bins"].main.positive_proba(rows)
    t = models["default"].threshold
    band = contract.decision.review_band
    hi_band = band[1] if band else t
    keep = (p_default >= max(t, hi_band)) & (p_default < t + margin) & (p_bins >= hi_band)
    picked = rows[keep].head(n)
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
        for r in picked.to_dict("records")
    ]


def summarise(name: str, results: list[AttackResult], delay: float | None) -> str:
    ok = [r for r in results if r.success]
    failed = [r for r in results if not r.success]
    med_q = statistics.median(r.queries for r in ok) if ok else float("nan")
    med_f = f"{statistics.median(r.queries for r in failed):6.0f}" if failed else "     -"
    med_s = statistics.median(r.subjects for r in results)
    stops = Counter(r.stopped for r in results if not r.success)
    waits = [r.wait_needed for r in results if r.wait_needed]
    wait = f"{statistics.median(waits):,.0f} s" if waits else "-"
    if delay and ok:
        wait = f"{med_q:.0f} h at 1 h delay"
    stopped = ", ".join(f"{k} {v}" for k, v in stops.most_common()) or "-"
    q = f"{med_q:6.0f}" if ok else "     -"
    return (
        f"{name:34s} {len(ok):3d}/{len(results):<3d} {q} {med_f} {med_s:8.0f}  {wait:>20s}  "
        f"{stopped}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attacks", type=int, default=20, help="applications per configuration")
    parser.add_argument("--queries", type=int, default=400, help="query budget per attack")
    parser.add_argument("--margin", type=float, default=0.15, help="denied by at most this much")
    parser.add_argument(
        "--only",
        choices=["all", "defences", "disguised"],
        default="all",
        help="defences: the table of defences; disguised: nudged and jittered probing",
    )
    args = parser.parse_args()
    df = load_credit_default()
    held_out = df.sample(frac=0.2, random_state=0)
    train_df = df.drop(held_out.index)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = train_models(train_df, root / "models")
        apps = pick_applications(models, held_out, args.attacks, args.margin)
        print(
            f"\n{len(apps)} held-out applications denied by 0 to {args.margin} above the "
            f"threshold; budget {args.queries} queries, up to 20 subject ids for the limit rows\n"
        )
        print(
            f"{'':34s} {'':7s} {'queries (median)':>13s}\n"
            f"{'defence':34s} {'success':>7s} {'ok':>6s} {'failed':>6s} {'subjects':>8s}  "
            f"{'wait faced (median)':>20s}  why the failures stopped"
        )
        configs = {"all": CONFIGS + DISGUISED, "defences": CONFIGS, "disguised": DISGUISED}
        for i, cfg in enumerate(configs[args.only]):
            t = time.perf_counter()
            results = run_config(cfg, models, apps, root / f"home{i}", args.queries)
            line = summarise(cfg["name"], results, cfg.get("delay"))
            print(f"{line}   [{time.perf_counter() - t:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
