"""Shared fixtures.

Backend tests (markers ``postgres`` and ``redis``) run against real servers. Without them the
tests skip with the reason; with ``TABGUARD_REQUIRE_SERVICES=1`` (set by ``.ci/run``) they fail.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, settings

from tabguard.contract import Contract
from tabguard.datasets import credit_default_contract, load_credit_default

# How fast hypothesis draws inputs or runs an example on a shared machine (load 15-30 on 2
# cores) is no property of the code, and a timed check fails there at random ("Input generation
# is slow": 2 inputs in 1 s): the timed health check and the deadline are off everywhere, as
# hypothesis's own CI profile (CI=true) has them. The other settings are the active profile's
# (CI's under CI=true: derandomised).
settings.register_profile(
    "tabguard",
    parent=settings.default,
    deadline=None,
    suppress_health_check=list(
        dict.fromkeys([*settings.default.suppress_health_check, HealthCheck.too_slow])
    ),
)
settings.load_profile("tabguard")

POSTGRES_URL = os.environ.get(
    "TABGUARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TABGUARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("TABGUARD_REQUIRE_SERVICES") == "1"


#: Tests sent to one pytest-xdist worker together (``make test``: ``-n 2 --dist loadgroup``),
#: by path prefix, so that a costly session fixture is built once per run, not once per worker:
#: the Spark session (a JVM, ~35 CPU-s to start and warm up) and the simulated month (~90 CPU-s).
#: Every other file is a group of its own (its module-scoped fixtures are built once).
XDIST_GROUPS = {
    "tests/spark/": "spark",
    "tests/monitoring/test_attack_e2e.py": "dashboard_sim",
    "tests/monitoring/test_dashboard.py": "dashboard_sim",
    "tests/monitoring/test_dashboard_browser.py": "dashboard_sim",
}
#: The session fixtures of those groups: a test that uses one from a file not in its group
#: gets a warning (the fixture would be built by both workers).
SHARED_FIXTURES = {"spark": "spark", "dashboard_sim": "dashboard_sim"}

#: The longest groups, given to the workers first and longest first (seconds of one run in one
#: process, session 13, docs/benchmarks.md): a long group given last keeps one worker busy while
#: the other has nothing left. Only the order of the work depends on this: a stale entry costs
#: wall time, never a result. The other groups follow in the order pytest collects them.
FIRST_GROUPS = (
    "spark",  # 186 s
    "dashboard_sim",  # 163 s
    "tests/model_audit/test_backdoor_rare_side.py",  # 104 s
    "tests/serving/test_workers.py",  # 88 s
    "tests/model_audit/test_backdoor.py",  # 76 s
    "tests/retraining/test_retrain.py",  # 67 s
    "tests/serving/test_journal.py",  # 60 s
    "tests/data_audit/test_poisoning_checks.py",  # 59 s
)


def xdist_group(nodeid: str) -> str:
    """The group of the test ``nodeid`` (:data:`XDIST_GROUPS`, else its file)."""
    path = nodeid.split("::", 1)[0]
    for prefix, group in XDIST_GROUPS.items():
        if path.startswith(prefix):
            return group
    return path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup``: the groups of :func:`xdist_group`, in the order the workers
    collected them (:func:`pytest_collection_modifyitems`: the costliest first).

    xdist's own ``loadgroup`` reads ``xdist_group`` marks by renaming test ids, which pytest 9.2
    no longer lets a plugin do (the marks are silently ignored); the scheduler sees only test
    ids, so the groups are drawn from them (tests/_xdist.py).
    """
    if config.getoption("dist") != "loadgroup":
        return None
    from tests._xdist import GroupScheduling

    return GroupScheduling(config, log, group=xdist_group)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a worker of ``--dist loadgroup`` (xdist keeps that option as ``loadgroup`` there):
    the costliest groups first (:data:`FIRST_GROUPS`; the same order on every worker, which
    xdist checks), and a warning for a test that uses a shared session fixture outside its
    group. Last of the plugins' hooks, so that the order is the one the scheduler gets."""
    if not os.environ.get("PYTEST_XDIST_WORKER") or not getattr(config.option, "loadgroup", False):
        return
    last = len(FIRST_GROUPS)
    rank = {name: i for i, name in enumerate(FIRST_GROUPS)}
    items.sort(key=lambda item: rank.get(xdist_group(item.nodeid), last))  # stable
    for item in items:
        for fixture, group in SHARED_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()) and xdist_group(item.nodeid) != group:
                item.warn(
                    pytest.PytestWarning(
                        f"{item.nodeid} uses the session fixture {fixture!r} outside the group "
                        f"{group!r}: add its file to XDIST_GROUPS in tests/conftest.py, or "
                        "both xdist workers build the fixture"
                    )
                )


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Logging as it was after every test: a benchmark's ``main()`` run by a test switches
    logging off for the process (``logging.disable``), and the tests that read the log
    afterwards found nothing (three failed in CI after test_benchmark_clean_data)."""
    yield
    logging.disable(logging.NOTSET)


def _unavailable(what: str, exc: BaseException) -> None:
    msg = f"{what} is not reachable ({type(exc).__name__}: {exc})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{msg}; TABGUARD_REQUIRE_SERVICES=1 forbids skipping backend tests")
    pytest.skip(f"{msg}; start it or set TABGUARD_TEST_*_URL to run this test")


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """URL of the PostgreSQL server's ``test`` database (skips/fails when unreachable)."""
    try:
        import sqlalchemy as sa

        eng = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
        with eng.connect() as conn:
            conn.execute(sa.text("select 1"))
        eng.dispose()
    except Exception as exc:
        _unavailable(f"PostgreSQL at {POSTGRES_URL}", exc)
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import sqlalchemy as sa

    name = f"tg_{uuid.uuid4().hex[:12]}"
    admin_url = postgres_server_url.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = postgres_server_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """URL of the Redis server (skips/fails when unreachable)."""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:
        _unavailable(f"Redis at {REDIS_URL}", exc)
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_server_url: str) -> Iterator[str]:
    """A unique key prefix for one test; its keys are deleted afterwards."""
    import redis

    prefix = f"tgtest:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(redis_server_url)
    for key in client.scan_iter(match=f"*{prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def credit_contract() -> Contract:
    """The bundled credit-default contract."""
    return credit_default_contract()


@pytest.fixture
def credit_df() -> pd.DataFrame:
    """The bundled credit-default data (a fresh copy)."""
    return load_credit_default()


@pytest.fixture(scope="session")
def _mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store with its schema, created once per session.

    Creating one runs MLflow's schema migrations (5-10 s, most of a tracked training test).
    """
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    uri = f"sqlite:///{path}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments()  # creates the tracking tables
    client.search_registered_models()  # and the registry's
    assert not path.with_name("mlflow.db-wal").exists()  # the file alone is the whole store
    return path


@pytest.fixture
def mlflow_store(_mlflow_template: Path) -> Callable[[Path], str]:
    """``mlflow_store(path)``: a fresh, empty MLflow SQLite store at ``path`` (a copy of one
    created once per session); returns its URI.

    Experiments made in it get their artifact location from its own path (tabguard sets it
    when it creates one). The creation of a store by tabguard itself stays tested where the
    default store is (tests/training/test_cli.py).
    """

    def make(path: Path) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_mlflow_template, path)
        return f"sqlite:///{path}"

    return make


def require_system(path: str, package: str, purpose: str) -> None:
    """Skip (locally) or fail (``TABGUARD_REQUIRE_SERVICES=1``) when a system tool is missing.

    ``.ci/run`` installs the Debian ``package`` when it is missing, so CI never skips.
    """
    if os.path.exists(path):
        return
    msg = f"{path} is missing ({purpose}); install it with `apt-get install -y {package}`"
    if REQUIRE_SERVICES:
        pytest.fail(f"{msg}; TABGUARD_REQUIRE_SERVICES=1 forbids skipping this test")
    pytest.skip(msg)


def require_module(name: str, purpose: str) -> Any:
    """Import ``name``; skip (locally) or fail (``TABGUARD_REQUIRE_SERVICES=1``) without it.

    The modules asked for are dev dependencies (``make .venv/.installed-dev`` installs them).
    """
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        msg = (
            f"{name} cannot be imported ({exc}; {purpose}); "
            "install the dev extra: pip install -e '.[dev]'"
        )
        if REQUIRE_SERVICES:
            pytest.fail(f"{msg}; TABGUARD_REQUIRE_SERVICES=1 forbids skipping this test")
        pytest.skip(msg)


@pytest.fixture(scope="session")
def vulnerable_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tabguard.redteam.vulnerable_model`` trained once per session (the traffic simulations
    of the monitoring proof, the dashboard and the demo's step load it)."""
    from tabguard.redteam import vulnerable_model

    out = tmp_path_factory.mktemp("vulnerable") / "model"
    vulnerable_model(out)
    return out


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One Spark session for every Spark test (local[2], UI off, few shuffle partitions).

    The driver JVM compiles with C1 only and collects with the serial collector: the tests'
    jobs are small and short, and the C2 compiler's and G1's threads cost more CPU than they
    save on them (an integrity + trigger-scan audit of 3,300 rows twice: 59 -> 36 CPU-s of the
    JVM and its Python workers, same result; docs/benchmarks.md, session 9). A user's session
    keeps the JVM's defaults.

    Skips locally (fails with ``TABGUARD_REQUIRE_SERVICES=1``) without pyspark or Java:
    ``.ci/run`` installs Debian's ``default-jre-headless`` and ``make test`` the dev extra
    (which includes ``tabguard[spark]``).
    """
    require_module("pyspark", "the Spark engine's tests")
    from tabguard.spark import java_available, spark_session

    if not java_available():
        msg = (
            "java is missing (the Spark engine's tests); install it with "
            "`apt-get install -y default-jre-headless`"
        )
        if REQUIRE_SERVICES:
            pytest.fail(f"{msg}; TABGUARD_REQUIRE_SERVICES=1 forbids skipping this test")
        pytest.skip(msg)
    session = spark_session(
        "local[2]",
        conf={
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.driver.memory": "1g",
            "spark.sql.adaptive.enabled": "false",
            "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        },
    )
    yield session
    session.stop()
