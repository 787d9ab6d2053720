"""The tests' simulated month on several traffic draws: does its story hold on any seed?

The monitoring proof (``tests/monitoring/test_attack_e2e.py``) and the dashboard tests
(``tests/monitoring/test_dashboard*.py``) read one simulated month
(``tests/monitoring/_dashboard_sim.py``: 28 days through the real scoring service, the monitor
in the loop every simulated hour, an attack on the partner channel on day 25). They need, on
the draw they use, no alert before the attack (its action would neutralise the attacked feature
early), the seed rule firing on ``channel=partner`` within 6 h of the onset, the flag and the
webhook, and the partner channel's denial rate down under the attack (below 0.8 of the same
hours a week earlier) and back once the flag is on (at least 0.8 of it, over two days). This
script builds the same simulation for other traffic seeds and prints, per seed: the alerts
opened before the onset, the first partner alert's delay, the three denial rates, and the CPU
time of the build.

Run::

    .venv/bin/python benchmarks/dashboard_simulation.py --seeds 11,3,29,17,5
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.monitoring._dashboard_sim import ATTACKED, ONSET, build  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="11,3,29,17,5", help="Traffic seeds, comma-separated.")
    parser.add_argument("--per-day", type=int, default=None, help="Default: the tests' volume.")
    args = parser.parse_args()
    from tabguard.redteam import vulnerable_model

    work = Path(tempfile.mkdtemp(prefix="tabguard-dashboard-sim-"))
    model = work / "model"
    vulnerable_model(model)
    extra = {} if args.per_day is None else {"per_day": args.per_day}
    held = 0
    seeds = [int(s) for s in args.seeds.split(",")]
    for seed in seeds:
        cpu, wall = time.process_time(), time.perf_counter()
        home = build(work / f"seed-{seed}", model=model, seed=seed, **extra)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        early = [(t, seg) for t, seg in home.opened if t < ONSET]
        partner = [t for t, seg in home.opened if t >= ONSET and tuple(seg) == ATTACKED]
        delay = (partner[0] - ONSET) if partner else None
        after = "none" if delay is None else f"{delay.total_seconds() / 3600:.0f} h after the onset"
        # the proof's attack effect (test_attack_effect_drops_once_the_flag_is_on)
        df, res = home.result.requests, home.result
        flag_on = df.loc[df["flags_version"] == df.loc[df["time"] >= ONSET, "flags_version"].max(),
                         "time"].min()  # fmt: skip
        week = timedelta(weeks=1)
        before, _ = res.denial_rate(ONSET - week, flag_on - week, "partner")
        under, n_under = res.denial_rate(ONSET, flag_on, "partner")
        back, n_back = res.denial_rate(flag_on, flag_on + timedelta(days=2), "partner")
        effect = n_under >= 30 and n_back >= 100 and under < 0.8 * before
        effect = effect and back > under and back >= 0.8 * before
        flagged = "PAY_AMT2" in home.flags.get("neutralize") and bool(home.posts)
        ok = not early and delay is not None and delay <= timedelta(hours=6)
        ok = ok and effect and flagged
        held += ok
        print(
            f"seed {seed}: alerts before the onset: {len(early)} "
            f"{[f'{t:%m-%d %H:%M} {k}={v}' for t, (k, v) in early]}; first partner alert "
            f"{after}; partner denial rate a week before {before:.3f}, under the attack "
            f"{under:.3f} ({n_under}), with the flag {back:.3f} ({n_back}); flag and webhook "
            f"{flagged}; {'holds' if ok else 'FAILS'}; {cpu:.0f} CPU-s, {wall:.0f} s wall, "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    print(f"-> the story holds on {held} of {len(seeds)} seeds")


if __name__ == "__main__":
    main()
