"""The one module that imports PySpark: sessions, and the SQL functions the engines call.

Every Spark engine of tabguard (``tabguard monitor update --engine spark``) goes through
:func:`spark_session` and :func:`functions`, so a missing ``pyspark`` (or Java) is one line
naming the extra, and the session settings live in one place.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from tabguard.errors import MissingDependencyError, TabguardError

#: The extra that installs PySpark (``pip install 'tabguard[spark]'``).
EXTRA = "spark"
#: Functions the engines need, all in Spark >= 4.1 (the DataSketches KLL aggregates).
REQUIRED_FUNCTIONS = ("kll_sketch_agg_double",)


class SparkUnavailableError(TabguardError, RuntimeError):
    """PySpark is installed but cannot start (no Java, too old a release)."""


def _pyspark(purpose: str) -> Any:
    try:
        import pyspark
        import pyspark.sql.functions as sf
    except ImportError:
        raise MissingDependencyError("pyspark", EXTRA, purpose) from None
    missing = [name for name in REQUIRED_FUNCTIONS if not hasattr(sf, name)]
    if missing:
        raise SparkUnavailableError(
            f"{purpose}: pyspark {pyspark.__version__} has no {', '.join(missing)} (Spark >= "
            f"4.1 has the DataSketches KLL aggregates); install it with "
            f"`pip install 'tabguard[{EXTRA}]'`"
        )
    return pyspark


def functions(purpose: str = "the Spark engine") -> Any:
    """``pyspark.sql.functions`` (checked to have the KLL aggregates)."""
    _pyspark(purpose)
    import pyspark.sql.functions as sf

    return sf


def java_available() -> bool:
    """Whether a Java runtime is on ``PATH`` or under ``JAVA_HOME`` (Spark needs one)."""
    home = os.environ.get("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "java")):
        return True
    return shutil.which("java") is not None


def spark_session(
    master: str | None = None,
    *,
    purpose: str = "the Spark engine",
    conf: dict[str, str] | None = None,
) -> Any:
    """The active Spark session, or a new one.

    Parameters
    ----------
    master : str, optional
        ``local[2]``, ``spark://host:7077``, ``yarn``, ... Default: the session that
        ``spark-submit`` started (its ``--master``), else ``local[*]``.
    purpose : str
        What needs Spark (named in the error when PySpark is missing).
    conf : dict, optional
        Further Spark settings of a new session.

    Raises
    ------
    MissingDependencyError
        ``pyspark`` is not installed (exit 2 at the command line).
    SparkUnavailableError
        No Java runtime, or a PySpark without the KLL aggregates.
    """
    _pyspark(purpose)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and (master is None or active.sparkContext.master == master):
        return active
    if not java_available():
        raise SparkUnavailableError(
            f"{purpose} needs a Java runtime (17 or newer) for Spark; install one, e.g. "
            "`apt-get install -y default-jre-headless`, or set JAVA_HOME"
        )
    builder = SparkSession.builder.appName("tabguard")
    if master is not None:
        builder = builder.master(master)
    if (master is None or master.startswith("local")) and "PYSPARK_PYTHON" not in os.environ:
        # Local Python workers (the data audit's per-batch code) run this interpreter, which
        # has tabguard; on a cluster the executors' Python is the cluster's (docs/spark.md).
        # (PySpark reads the variable when the context starts.)
        os.environ["PYSPARK_PYTHON"] = sys.executable
    # Without one, Spark's own default applies: spark-submit's --master, else local[*].
    for key, value in {
        # Results are small (counts and sketches per bucket): a few shuffle partitions.
        "spark.sql.shuffle.partitions": "8",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        **(conf or {}),
    }.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
