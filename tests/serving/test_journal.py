"""The prediction log's journal: no answered decision lost when a process is killed.

Unit tests of :class:`Journal` (segments, orphans, claims), a killed process that appended
records its writer never wrote, and the real service on loopback: a bounded burst from 8
clients, SIGKILL of the process, and of the process while PostgreSQL is down; every decision
answered with 200 must have exactly one record afterwards. SIGKILL of one of two workers is in
``test_workers.py`` (with its replacement getting ready under the same burst).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tabguard.serving import PredictionRecord, load_config, open_keys
from tabguard.serving._journal import Journal
from tabguard.serving._log import PredictionLog
from tabguard.serving._log_read import LogReader
from tabguard.serving._record import dumps_line, record_to_row
from tests.serving._service import Burst, free_port, recorded
from tests.serving._tcp_proxy import TcpProxy
from tests.serving.conftest import write_config


def _row(i: int) -> dict[str, Any]:
    return record_to_row(PredictionRecord(decision_id=f"d{i:05d}", status="accepted"))


# --------------------------------------------------------------------------------------------
# The journal alone


def test_segments_are_deleted_once_every_row_is_stored(tmp_path: Path) -> None:
    j = Journal(tmp_path, segment_bytes=600)
    seqs = [j.append(dumps_line(_row(i))) for i in range(6)]
    assert seqs[0] == 1 and seqs[-1] > 1  # rotated
    assert j.pending() == 6
    first = [s for s in seqs if s == 1]
    j.mark_stored({1: len(first) - 1})
    assert (tmp_path / f"{j.token}.000001.jsonl").exists()  # one row of it still unstored
    j.mark_stored({1: 1})
    assert not (tmp_path / f"{j.token}.000001.jsonl").exists()
    j.mark_stored(Counter(s for s in seqs if s != 1))
    assert j.pending() == 0
    active = tmp_path / f"{j.token}.{seqs[-1]:06d}.jsonl"
    assert active.exists()  # the active segment stays until close
    j.close(drained=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_live_journal_is_never_claimed_and_a_dead_one_is(tmp_path: Path) -> None:
    live = Journal(tmp_path)
    live.append(dumps_line(_row(1)))
    other = Journal(tmp_path)
    assert list(other.orphans()) == []  # the owner holds its lock
    live.close(drained=False)  # what a killed process leaves: segments and an unlocked lock
    claimed = []
    for orphan in other.orphans():
        claimed.append(list(orphan.lines()))
        assert list(Journal(tmp_path).orphans()) == []  # claimed: nobody else replays it
        orphan.release()
    assert len(claimed) == 1 and b'"d00001"' in claimed[0][0]
    assert list(other.orphans()) == []
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".jsonl"] == []


def test_fsync_policy_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fsync must be"):
        Journal(tmp_path, fsync="sometimes")  # type: ignore[arg-type]


def test_the_sqlite_log_commits_durably_before_segments_are_deleted(tmp_path: Path) -> None:
    """A segment goes once its rows are committed: a commit must then survive a power loss.

    SQLite's ``synchronous=NORMAL`` (the other stores' setting) can roll back the transactions
    since the last checkpoint after a power loss; the log uses ``FULL`` (2).
    """
    import sqlalchemy as sa

    with (
        PredictionLog(
            f"sqlite:///{tmp_path / 'log.db'}",
            spool_dir=tmp_path / "spool",
            journal_dir=tmp_path / "j",
        ) as plog,
        plog._engine.connect() as conn,
    ):
        assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == 2
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"


# --------------------------------------------------------------------------------------------
# A process killed before its writer wrote anything

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from tabguard.serving import PredictionRecord
    from tabguard.serving._log import PredictionLog

    url, spool, journal, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    # the writer would wait a minute for a batch of 100000: nothing reaches the database
    log = PredictionLog(url, spool_dir=spool, journal_dir=journal, batch_size=100_000,
                        flush_interval=60)
    for i in range(n):
        log.append(PredictionRecord(decision_id=f"k{i:05d}", status="accepted", score=0.5))
    print("appended", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.parametrize("torn", [False, True])
def test_records_of_a_killed_process_are_replayed_once_at_the_next_start(
    tmp_path: Path, torn: bool
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    spool, journal = tmp_path / "spool", tmp_path / "journal"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(spool), str(journal), "300"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert LogReader(url).count() == 0 if (tmp_path / "log.db").exists() else True
    if torn:  # a power loss can leave half a line at the end
        segment = next(journal.glob("*.jsonl"))
        with segment.open("ab") as fh:
            fh.write(b'{"decision_id": "half')
    with PredictionLog(url, spool_dir=spool, journal_dir=journal) as plog:
        assert plog.flush(30)
        assert plog.stats.recovered == 300
        ids = plog.query()["decision_id"].tolist()
    assert sorted(ids) == [f"k{i:05d}" for i in range(300)]  # all, once
    assert plog.spool.dead_letter_records() == (1 if torn else 0)
    assert not list(journal.glob("*.jsonl"))
    # replaying again (another start) adds nothing
    with PredictionLog(url, spool_dir=spool, journal_dir=journal) as again:
        assert again.flush(30)
        assert again.count() == 300 and again.stats.recovered == 0


def test_a_clean_close_leaves_no_journal(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    with PredictionLog(
        f"sqlite:///{tmp_path / 'log.db'}", spool_dir=tmp_path / "spool", journal_dir=journal
    ) as plog:
        for i in range(50):
            plog.append(PredictionRecord(decision_id=f"c{i}", status="accepted"))
        assert plog.flush(30)
        assert plog.stats.journaled == 0
    assert list(journal.iterdir()) == []


# --------------------------------------------------------------------------------------------
# The real service, killed under a burst


@pytest.fixture
def serve(model_dir: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[str], str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(home: Path, workers: int = 1) -> tuple[subprocess.Popen[str], str]:
        port = free_port()
        env = {**os.environ, "TABGUARD_HOME": str(home)}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        tabguard = str(Path(sys.executable).parent / "tabguard")
        cmd = [tabguard, "serve", str(model_dir), "--workers", str(workers), "--port", str(port)]
        proc = subprocess.Popen(
            [*cmd, "--log-level", "warning"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=10).status_code == 200:
                    return proc, base
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"the service did not start: {proc.poll()}")
            time.sleep(0.3)

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def _keys(home: Path) -> tuple[str, str]:
    with open_keys(load_config(home)) as keys:
        return keys.create("bank-a", "decide")[1], keys.create("ops", "admin")[1]


def _check(burst: Burst, recorded: Counter[str]) -> None:
    answered = set(burst.answered)
    missing = answered - set(recorded)
    duplicated = [d for d, n in recorded.items() if n > 1]
    print(
        f"sent {burst.sent}, answered {len(answered)}, recorded {len(recorded)}, "
        f"answered without a record {len(missing)}, duplicated {len(duplicated)}"
    )
    assert len(answered) == len(burst.answered)
    assert not missing, f"{len(missing)} of {len(answered)} answered decisions have no record"
    assert not duplicated
    assert burst.sent >= len(recorded) >= len(answered)


@pytest.mark.slow
def test_sigkill_of_the_process_loses_no_answered_decision(
    serve: Callable[..., tuple[subprocess.Popen[str], str]],
    tmp_path: Path,
    sample_records: list[dict[str, Any]],
) -> None:
    home = tmp_path / "home"
    write_config(home, '[limits]\nper_client = "off"\n[log]\nflush_interval = 5\n')
    key, _ = _keys(home)
    proc, base = serve(home)
    burst = Burst(base, key, sample_records)
    killed = threading.Event()

    def kill_at(n: int) -> None:
        if n >= 150 and not killed.is_set():
            killed.set()
            os.killpg(proc.pid, signal.SIGKILL)

    burst.run(60, kill_at)
    proc.wait(30)
    assert killed.is_set() and proc.returncode == -signal.SIGKILL
    _check(burst, recorded(home))


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_down_then_sigkill_loses_no_answered_decision(
    serve: Callable[..., tuple[subprocess.Popen[str], str]],
    tmp_path: Path,
    postgres_url: str,
    sample_records: list[dict[str, Any]],
) -> None:
    parts = urlsplit(postgres_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    url = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
    home = tmp_path / "home"
    write_config(
        home,
        f'[stores]\nlog = "{url}"\n[limits]\nper_client = "off"\n'
        "[log]\nflush_interval = 0.2\nretry_interval = 60\n",
    )
    key, _ = _keys(home)
    proc, base = serve(home)
    burst = Burst(base, key, sample_records)
    killed = threading.Event()

    def fault_at(n: int) -> None:
        if n == 80:
            proxy.cut()  # the database host goes away mid-burst
        if n >= 200 and not killed.is_set():
            killed.set()
            os.killpg(proc.pid, signal.SIGKILL)

    try:
        burst.run(60, fault_at)
        proc.wait(30)
        assert killed.is_set() and proc.returncode == -signal.SIGKILL
        assert list((home / "journal").glob("*.jsonl"))  # left for the next start
        proxy.start()
        _check(burst, recorded(home))
    finally:
        proxy.cut()
