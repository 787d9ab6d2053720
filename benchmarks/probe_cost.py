"""The whole ``tabguard audit model`` command on clean outside sets: its time, its peak memory,
its critical findings (issue 11, session 20).

For each set of ``benchmarks/outside_sets.py`` named in ``--sets``, as a new user would: the set
is written (``--seed``), ``tabguard contract infer`` drafts its contract, ``tabguard train``
fits a model on the train part, and ``tabguard audit model`` audits it on the test part. The
audit is the command measured: wall time, CPU time and peak resident memory of its process
(``wait4``), its exit status and the critical findings of its ``findings.json``. Nothing is
planted: every critical finding is a false alarm.

With ``--no-entity`` the drafted contract's ``entity`` line is removed before training (a user
who did not keep it): the reference data still holds the column. ``train`` may then refuse
(shipments seed 1: the data audit names ``origin_hub='HUB01' and address_corrected=0``
without the entity); ``--allow-findings`` trains on the audit's clean rows, as a user would.

Contracts and models are kept in ``--workdir`` and reused, so that two versions of tabguard
(``PYTHONPATH=<tree>/src``) audit the same model: the audit runs in the interpreter and
environment of this script.

Run::

    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/probe_cost.py --sets telecom \\
        --seed 20467 --workdir /tmp/probe_cost
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

LABELS = {
    "telecom": "churned",
    "shipments": "late",
    "payouts": "held",
    "rentals": "approved",
    "homeclaims": "denied",
}


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def _tabguard(*args: str) -> None:
    """Run a tabguard command in this interpreter (the caller's PYTHONPATH: start or head)."""
    _run([sys.executable, "-m", "tabguard", *args])


def prepare(
    name: str, seed: int, work: Path, no_entity: bool, allow: bool = False
) -> tuple[Path, Path]:
    """The set's model directory and its test part (written and trained once per workdir)."""
    data = work / f"sets{seed}"
    if not (data / f"{name}_test.csv").exists():
        here = Path(__file__).resolve().parent
        _run(
            [
                sys.executable,
                str(here / "outside_sets.py"),
                str(data),
                "--seed",
                str(seed),
                "--only",
                name,
            ]
        )
    tag = f"{name}{seed}{'_noentity' if no_entity else ''}"
    contract = work / f"{tag}.yaml"
    if not contract.exists():
        _tabguard(
            "contract",
            "infer",
            str(data / f"{name}.csv"),
            "--label",
            LABELS[name],
            "--out",
            str(contract),
        )
        if no_entity:
            lines = contract.read_text().splitlines(keepends=True)
            contract.write_text("".join(ln for ln in lines if not ln.startswith("entity:")))
    model = work / f"model_{tag}"
    if not model.exists():
        _tabguard(
            "train",
            str(data / f"{name}_train.csv"),
            "--contract",
            str(contract),
            "--out",
            str(model),
            *(["--allow-findings"] if allow else []),
        )
    return model, data / f"{name}_test.csv"


def audit(model: Path, test: Path, out: Path) -> dict[str, object]:
    """Run ``tabguard audit model`` once: wall seconds, peak RSS (MB), rc, critical findings."""
    cmd = [
        sys.executable,
        "-m",
        "tabguard",
        "audit",
        "model",
        str(model),
        "--data",
        str(test),
        "--out",
        str(out),
        "-q",
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    found = (
        json.loads((out / "findings.json").read_text()) if (out / "findings.json").exists() else {}
    )
    critical = [
        f"{f.get('check')}: {str(f.get('message', ''))[:110]}"
        for f in found.get("findings", [])
        if f.get("severity") == "critical"
    ]
    return {
        "seconds": round(wall, 1),
        # the process's own CPU time: on a shared host the wall time is mostly the load's
        "cpu": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_mb": round(usage.ru_maxrss / 1024),
        "rc": os.waitstatus_to_exitcode(status),
        "critical": critical,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="telecom", help=f"comma-separated, of {sorted(LABELS)}")
    ap.add_argument("--seed", type=int, default=20467)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/probe_cost"))
    ap.add_argument("--no-entity", action="store_true", help="drop the drafted entity line")
    ap.add_argument("--tag", default="run", help="name of this run's audit directories")
    ap.add_argument(
        "--allow-findings",
        action="store_true",
        help="train on the data audit's clean rows where it refuses (shipments without entity)",
    )
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    for name in args.sets.split(","):
        model, test = prepare(name, args.seed, args.workdir, args.no_entity, args.allow_findings)
        out = args.workdir / f"audit_{model.name}_{args.tag}"
        res = audit(model, test, out)
        print(
            f"{name} seed {args.seed}{' (no entity)' if args.no_entity else ''}: "
            f"{res['seconds']} s wall, {res['cpu']} s CPU, peak {res['peak_mb']} MB, "
            f"rc {res['rc']}, {len(res['critical'])} critical",
            flush=True,
        )
        for c in res["critical"]:
            print(f"  {c}")


if __name__ == "__main__":
    main()
