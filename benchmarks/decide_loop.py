"""Instructions per guarded decision, counted by valgrind (stable on a shared machine).

Wall and even CPU time per request move with the other jobs on the machine; the number of
instructions executed does not. This script prepares a model and a service home once
(``--prepare``, outside valgrind: training under valgrind would take hours), then runs
``ScoringService.decide`` in process (every guard, the log writer off) on the benchmark's
records; the measured loop runs inside ``functools.reduce``, so callgrind collects exactly
that loop::

    .venv/bin/python benchmarks/decide_loop.py --prepare /tmp/tg-loop
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce \\
        .venv/bin/python benchmarks/decide_loop.py /tmp/tg-loop --requests 1000

The ``Collected`` line (or ``callgrind_annotate``'s total) divided by ``--requests`` is the
instruction count of one decision. Without valgrind it prints the thread CPU per decision.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def prepare(root: Path) -> None:
    """Train the benchmark's model, write the service home and the records (once)."""
    import serving as bench  # the scoring benchmark's records and settings
    from tabguard.datasets import credit_default_contract, load_credit_default
    from tabguard.serving import load_config, resolve_reference
    from tabguard.training import TrainConfig, train

    root.mkdir(parents=True, exist_ok=True)
    df = load_credit_default()
    reference = root / "train.csv"
    df.to_csv(reference, index=False)
    config = TrainConfig(audit=False, track=False, report=False, n_bootstrap=10)
    res = train(df, credit_default_contract(), config, out=root / "model")
    home = root / "home"
    home.mkdir(exist_ok=True)
    (home / "tabguard.toml").write_text(
        '[limits]\nper_client = "100000/second"\nper_subject = "100/minute"\n'
        '[probing]\naction = "flag"\n'
        # Under valgrind the loop runs for minutes: a key-cache expiry would make decide
        # wait on the key store (a thread) in the middle of the measured loop.
        "[server]\nkey_cache_ttl = 3600\n"
    )
    resolve_reference(res.bundle, load_config(home), reference)
    (root / "records.json").write_text(json.dumps(bench.records()))
    print(f"prepared {root}")


class NullLog:
    """A prediction log that drops records (the writer off, as in the benchmark)."""

    def append(self, record: Any) -> None:
        pass

    def append_row(self, row: Any) -> None:
        pass


def run(root: Path, n: int) -> None:
    """Run ``n`` decisions inside functools.reduce after 300 warm-up decisions."""
    os.environ["TABGUARD_HOME"] = str(root / "home")
    from tabguard.serving import ScoringService, _app, load_config, resolve_reference
    from tabguard.training import load_model

    recs = json.loads((root / "records.json").read_text())
    bundle = load_model(root / "model")
    cfg = load_config(root / "home")
    service = ScoringService(bundle, cfg, reference=resolve_reference(bundle, cfg))
    service.start()
    _app.settle_heap()
    service.pipeline.log = NullLog()  # type: ignore[assignment]
    service.pipeline._append_row = NullLog().append_row
    auth = "Bearer " + service.keys.store.create(f"loop{time.time_ns()}", "decide")[1]
    counter = iter(range(10**9))

    def bodies(k: int) -> list[bytes]:
        return [
            json.dumps(
                {"subject_id": f"p{next(counter)}", "features": recs[i % len(recs)]}
            ).encode()
            for i in range(k)
        ]

    def decide(done: int, body: bytes) -> int:
        # Every step completes without waiting on the memory stores: one send() runs it.
        coro = service.decide(auth, body)
        try:
            coro.send(None)
        except StopIteration as stop:
            ctx = stop.value
        else:
            raise RuntimeError("decide waited on something; use the benchmark instead")
        if ctx.http_status != 200:
            raise RuntimeError(ctx.response)
        return done + 1

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def warm_up() -> None:  # outside functools.reduce (not collected); the first
        for body in bodies(300):  # request looks the key up in the store (a real wait)
            await service.decide(auth, body)

    loop.run_until_complete(warm_up())
    work = bodies(n)
    t = time.thread_time()
    loop.run_until_complete(_measured(decide, work))
    spent = time.thread_time() - t
    loop.run_until_complete(service.aclose())
    print(f"{n} decisions, thread CPU {spent / n * 1e6:.1f} us per decision")


async def _measured(decide: Any, work: list[bytes]) -> int:
    # Inside the event loop, as the service runs; callgrind collects this reduce only.
    return int(functools.reduce(decide, work, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="directory written by --prepare")
    parser.add_argument("--prepare", action="store_true", help="train and write the root")
    parser.add_argument("--requests", type=int, default=1000, help="decisions measured")
    args = parser.parse_args()
    if args.prepare:
        prepare(args.root)
    else:
        run(args.root, args.requests)


if __name__ == "__main__":
    main()
