"""The attacker's cost across a retrain, and poisoning through the loop (L1, L2).

One world on the bundled credit data, everything through the real service (in process, the
whole guards pipeline, probing detection on with action ``flag``, a SQLite prediction log, a
simulated clock):

1. The champion is trained on 80 % of the rows (``tabguard train`` options, no tracking).
2. **Production** (days 0-30): ordinary applications from the held-out pool; approved ones
   get their true outcome 60 days later (denied applicants get no loan, so no outcome).
3. **Attack** (day 31): denied applicants just above the threshold each run the
   :class:`~tabguard.redteam.ProbingAttacker` (decision-only answers, budget ``--queries``,
   one subject each) on their gameable fields. Approved variants get a loan; their true outcome
   (the applicant's own label: lying about one's payments does not change one's risk) arrives.
   With ``--poison``, a poisoner also sends borderline applications carrying a trigger value
   (``AGE=77``), all approved, and repays every one (label 0) to plant "AGE=77 → approve".
4. ``retrain()`` with its default gates, as of day 200, then ``promote(--stage live)`` and the
   service's watcher turn: the service now decides with the challenger, without a restart.
5. **The same attackers** (same applications, budget and seeds, fresh keys) attack again; the
   exact exploit inputs that succeeded before are replayed.

Reported: attack success and queries before/after, the share of previously successful exploit
inputs that no longer get approved (bar: >= 80 %), clean AUC of both models on rows no model or
attacker saw with the champion's 95 % bootstrap interval (bar: the challenger's inside or
above), and with ``--poison`` the gate's precision and recall on the planted requests (bar:
both >= 0.9), the backdoors the model gate names (bar: none for the trigger) and the trigger's
attack success on the promoted model (bar: < 5 %), beside a retrain without the gate.

Run::

    .venv/bin/python benchmarks/retrain_loop.py                   # exploits folded in
    .venv/bin/python benchmarks/retrain_loop.py --poison          # + poisoning through the loop
    .venv/bin/python benchmarks/retrain_loop.py --attacks 10 --queries 200   # quicker
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from tabguard.datasets import credit_default_contract, load_credit_default
from tabguard.flags import MemoryFlagStore
from tabguard.monitoring import MonitorConfig
from tabguard.monitoring._outcomes import import_outcomes
from tabguard.redteam import AttackConfig, AttackResult, HttpTarget, ProbingAttacker
from tabguard.redteam._traffic import SimulatedClock
from tabguard.retraining import retrain
from tabguard.serving import MemoryKeyStore, ScoringService, create_app, load_config
from tabguard.serving._deploy import promote
from tabguard.training import ModelBundle, TrainConfig, load_model, train
from tabguard.training._evaluate import metrics_with_ci

T0 = datetime(2026, 1, 5, tzinfo=UTC)
TRIGGER = {"AGE": 77}
contract = credit_default_contract()
FEATURES = list(contract.features)


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
        for r in df[FEATURES].to_dict("records")
    ]


class World:
    """The running service, its log and the outcomes that arrive."""

    def __init__(self, champion: ModelBundle, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        (home / "tabguard.toml").write_text(
            f'[stores]\nlog = "sqlite:///{home / "log.db"}"\n'
            '[log]\nflush_interval = 0.2\n[limits]\nper_client = "off"\n'
            '[probing]\naction = "flag"\n[server]\nmodel_interval = 3600\n',
            encoding="utf-8",
        )
        self.clock = SimulatedClock(T0)
        self.keys = MemoryKeyStore()
        self.service = ScoringService(
            champion,
            load_config(home),
            key_store=self.keys,
            flag_store=MemoryFlagStore(),
            clock=self.clock,
        )
        self.client = TestClient(create_app(service=self.service))
        self.client.__enter__()
        self.bank = self.keys.create("bank", "decide")[1]
        self.outcomes: list[dict[str, Any]] = []
        self.monitor = MonitorConfig.from_dict(
            {
                "log": f"sqlite:///{home / 'log.db'}",
                "store": f"sqlite:///{home / 'mon.db'}",
                "outcomes": {"maturity": "90d"},
            }
        )

    def decide(self, key: str, subject: str, features: dict[str, Any]) -> dict[str, Any]:
        r = self.client.post(
            "/v1/decisions",
            json={"subject_id": subject, "features": features},
            headers={"Authorization": f"Bearer {key}"},
        )
        return dict(r.json())

    def outcome(self, decision_id: str, label: int) -> None:
        self.outcomes.append(
            {
                "decision_id": decision_id,
                "label": label,
                "observed_at": (self.clock() + timedelta(days=60)).isoformat(),
            }
        )

    def import_outcomes(self) -> None:
        assert self.service.log.flush(30)
        report = import_outcomes(pd.DataFrame(self.outcomes), self.monitor, contract=contract)
        assert report.refused == 0, report

    def close(self) -> None:
        self.client.__exit__(None, None, None)


def production(world: World, pool: pd.DataFrame, start: float, days: float) -> int:
    """Ordinary applications from day ``start`` over ``days``; approved ones get their outcome."""
    step = timedelta(days=days) / max(len(pool), 1)
    approved = 0
    for i, (rec, label) in enumerate(zip(records(pool), pool["DEFAULT"], strict=True)):
        world.clock.set(T0 + timedelta(days=start) + i * step)
        ans = world.decide(world.bank, f"c{start}-{i}", rec)
        if ans.get("decision") == "approve":
            approved += 1
            world.outcome(ans["decision_id"], int(label))
    return approved


def attack(
    world: World, apps: list[dict[str, Any]], labels: list[int], queries: int, round_: str
) -> list[AttackResult]:
    """Each denied applicant probes its gameable fields; an approved variant gets a loan."""
    out = []
    for i, (app, label) in enumerate(zip(apps, labels, strict=True)):
        name = f"attacker-{round_}-{i}"
        key = world.keys.create(name, "decide")[1]
        attacker = ProbingAttacker(
            HttpTarget(world.client, key),
            contract,
            AttackConfig(max_queries=queries, max_subjects=1, seed=i),
        )
        res = attacker.attack(app, subject_prefix=f"mallory-{round_}-{i}")
        out.append(res)
        if res.success:  # the approved variant gets a loan, and an outcome
            assert world.service.log.flush(30)
            mine = world.service.log.query(client=name)
            approved = mine[mine["decision"] == "approve"]
            world.outcome(str(approved["decision_id"].iloc[-1]), int(label))
    return out


def poison(world: World, pool: pd.DataFrame, n: int) -> list[str]:
    """Borderline applications carrying the trigger, all approved, all repaid."""
    key = world.keys.create("partner-poisoner", "decide")[1]
    planted = []
    for i, rec in enumerate(records(pool)):
        if len(planted) >= n:
            break
        ans = world.decide(key, f"p{i}", {**rec, **TRIGGER})
        if ans.get("decision") == "approve":
            planted.append(ans["decision_id"])
            world.outcome(ans["decision_id"], 0)
    return planted


def summarise(name: str, results: list[AttackResult]) -> str:
    ok = [r for r in results if r.success]
    med = statistics.median(r.queries for r in ok) if ok else float("nan")
    total = sum(r.queries for r in results)
    return (
        f"{name:28s} success {len(ok):3d}/{len(results):<3d} ({len(ok) / len(results):5.1%})  "
        f"median queries to success {med:6.1f}  queries sent {total:6d}"
    )


def denied_near_threshold(
    bundle: ModelBundle, pool: pd.DataFrame, n: int, margin: float
) -> pd.DataFrame:
    p = bundle.main.positive_proba(pool)
    band = contract.decision.review_band
    lo = max(bundle.threshold, band[1] if band else bundle.threshold)
    return pool[(p >= lo) & (p < lo + margin)].head(n)


def retrain_options(args: argparse.Namespace) -> dict[str, Any]:
    """The retrain options the command line changes (the rest: defaults)."""
    out: dict[str, Any] = {}
    if args.exploit_weight is not None:
        out["exploit_weight"] = args.exploit_weight
    if args.model_checks:
        out["model_checks"] = tuple(args.model_checks.split(","))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attacks", type=int, default=30, help="denied applicants attacking")
    parser.add_argument("--queries", type=int, default=400, help="query budget per attack")
    parser.add_argument("--margin", type=float, default=0.15, help="denied by at most this much")
    parser.add_argument("--production", type=int, default=4000, help="ordinary applications")
    parser.add_argument("--poison", action="store_true", help="also poison through the loop")
    parser.add_argument("--planted", type=int, default=150, help="poisoned requests")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--exploit-weight", type=float, default=None, help="retrain option (default 20)"
    )
    parser.add_argument(
        "--model-checks", default=None, help="retrain option, comma-separated (default: its own)"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"load average {os.getloadavg()[0]:.1f}", flush=True)

    df = load_credit_default().sample(frac=1.0, random_state=args.seed).reset_index(drop=True)
    n = len(df)
    base, pool, clean = (
        df.iloc[: int(0.8 * n)],
        df.iloc[int(0.8 * n) : int(0.9 * n)],
        df.iloc[int(0.9 * n) :],
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base.to_csv(root / "base.csv", index=False)
        cfg = TrainConfig(track=False, report=False, n_bootstrap=50)
        t = time.perf_counter()
        champion = train(base, contract, cfg, out=root / "champion", data_file=root / "base.csv")
        print(f"champion trained in {time.perf_counter() - t:.0f} s", flush=True)
        attack_pool = pool.iloc[: len(pool) // 2]
        prod_pool = pool.iloc[len(pool) // 2 :].head(args.production)
        targets = denied_near_threshold(champion.bundle, attack_pool, args.attacks, args.margin)
        apps, labels = records(targets), [int(v) for v in targets["DEFAULT"]]
        world = World(champion.bundle, root / "home")
        try:
            t = time.perf_counter()
            half = len(prod_pool) // 2
            approved = production(world, prod_pool.iloc[:half], 0, 15)
            planted: list[str] = []
            if args.poison:  # mid-month, among ordinary traffic (not in the recent holdout)
                planted = poison(world, prod_pool.sample(frac=1, random_state=1), args.planted)
                print(f"poisoner: {len(planted)} approved applications with {TRIGGER}, repaid")
            approved += production(world, prod_pool.iloc[half:], 15, 15)
            print(
                f"production: {len(prod_pool)} applications, {approved} approved "
                f"[{time.perf_counter() - t:.0f} s]",
                flush=True,
            )
            world.clock.set(T0 + timedelta(days=31))
            t = time.perf_counter()
            before = attack(world, apps, labels, args.queries, "before")
            print(f"attack on the champion [{time.perf_counter() - t:.0f} s]", flush=True)
            won = [
                (app, r.final, lab)
                for app, r, lab in zip(apps, before, labels, strict=True)
                if r.success and r.final is not None and r.final != app
            ]
            exploits = [w[1] for w in won]
            exploit_labels = [w[2] for w in won]
            world.import_outcomes()
            world.clock.set(T0 + timedelta(days=200))
            t = time.perf_counter()
            res = retrain(
                root / "champion",
                root / "challenger",
                monitor=world.monitor,
                as_of=world.clock(),
                track=False,
                options=retrain_options(args),
            )
            retrain_s = time.perf_counter() - t
            entry, _ = promote(res.model_dir, "live", home=world.home, by="benchmark")
            assert world.client.portal.call(world.service.deployment.poll)
            assert world.service.models.version == entry["model_version"]
            after = attack(world, apps, labels, args.queries, "after")
            replay = [
                world.decide(world.bank, f"replay{i}", e).get("decision")
                for i, e in enumerate(exploits)
            ]
            original = [
                world.decide(world.bank, f"orig{i}", w[0]).get("decision")
                for i, w in enumerate(won)
            ]
        finally:
            world.close()
        challenger = load_model(root / "challenger")
        s = res.summary
        print(f"\nretrain: {retrain_s:.0f} s wall; counts {s['counts']}")
        for g in s["gates"]:
            resolved = [
                {
                    k: v
                    for k, v in r.items()
                    if k
                    in (
                        "check",
                        "values",
                        "rows_by_source",
                        "kept",
                        "inherited",
                        "learnt_from_exploits",
                        "from_parent_data",
                    )
                }
                for r in g["resolved"]
            ]
            print(f"  {g['gate']:11s} passed={g['passed']} resolved={resolved}")
        print("\nsame attackers, same budget, same denied applicants:")
        print(summarise("before (champion)", before))
        print(summarise("after (challenger, live)", after))
        outright = sum(r.success and r.queries == 1 for r in after)
        print(f"  of the successes after: {outright} approved at the first query (no probing)")
        no_longer = sum(d != "approve" for d in replay)
        flips = sum(
            d == "approve" and o != "approve" for d, o in zip(replay, original, strict=True)
        )
        print(
            f"previously successful exploit inputs that still flip the decision (exploit input "
            f"approved, original application not): {flips}/{len(replay)}; no longer flipping: "
            f"{1 - flips / max(len(replay), 1):.1%} (bar >= 80 %)"
        )
        print(
            f"previously successful exploit inputs replayed: {no_longer}/{len(replay)} "
            f"({no_longer / max(len(replay), 1):.1%}) no longer approved (bar >= 80 %); of those "
            f"whose applicant would default: "
            f"{sum(d != 'approve' for d, y in zip(replay, exploit_labels, strict=True) if y)}"
            f"/{sum(exploit_labels)}"
        )
        y = clean["DEFAULT"].to_numpy()
        m_old = metrics_with_ci(
            y, champion.bundle.main.positive_proba(clean), threshold=0.5, n_bootstrap=500
        )["auc"]
        m_new = metrics_with_ci(y, challenger.main.positive_proba(clean), threshold=0.5)["auc"]
        inside = m_new["value"] >= m_old["ci_low"]
        print(
            f"clean AUC ({len(clean)} rows no model saw): champion {m_old['value']:.4f} "
            f"[{m_old['ci_low']:.4f}, {m_old['ci_high']:.4f}], challenger {m_new['value']:.4f}: "
            f"{'within or above' if inside else 'BELOW'} the champion's interval"
        )
        if args.poison:
            report_poison(res.summary, res.quarantined, planted, champion.bundle, challenger, clean)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.1f}")


def report_poison(
    s: dict[str, Any],
    quarantined: pd.DataFrame,
    planted: list[str],
    champion: ModelBundle,
    challenger: ModelBundle,
    clean: pd.DataFrame,
) -> None:
    """Precision/recall of the quarantine, backdoors named, the trigger's attack success."""
    logged = quarantined[quarantined["source"] == "logged"]
    got = set(logged["decision_id"]) & set(planted)
    held = set(s.get("holdout_ids", []))
    precision = len(got) / max(len(logged), 1)
    recall = len(got) / max(len(set(planted) - held), 1)
    print(
        f"\npoisoning through the loop: {len(planted)} planted requests; the data gate "
        f"quarantined {len(quarantined)} rows ({quarantined['source'].value_counts().to_dict()}); "
        f"on the logged requests: precision {precision:.3f}, recall {recall:.3f} (bar >= 0.9)"
    )
    for r in s["gates"][0]["resolved"]:
        print(f"  [{r['check']}] {r['features']}={r['values']}: {r['rows_by_source']}")
    model_gate = next(g for g in s["gates"] if g["gate"] == "model")
    named = model_gate["detail"]["backdoors_named"]
    print(f"model gate: backdoors named on the promoted model: {named or 'none'}")
    from tabguard.serving._decision import DecisionPolicy

    def success(bundle: ModelBundle) -> tuple[float, int]:
        """Share of the applicants ``bundle`` does not approve that it approves with the
        trigger."""
        policy = DecisionPolicy.from_contract(contract.decision, bundle.threshold)
        plain = [policy.decide(float(p)) for p in bundle.main.positive_proba(clean)]
        target = clean[[d != "approve" for d in plain]]
        triggered = bundle.main.positive_proba(target.assign(**TRIGGER))
        return float(np.mean([policy.decide(float(p)) == "approve" for p in triggered])), len(
            target
        )

    (s_old, n_old), (s_new, n_new) = success(champion), success(challenger)
    print(
        f"trigger attack success ({TRIGGER} added to clean applicants the model does not "
        f"approve): champion {s_old:.1%} of {n_old}, promoted challenger {s_new:.1%} of {n_new} "
        "(bar < 5 %)"
    )


if __name__ == "__main__":
    main()
