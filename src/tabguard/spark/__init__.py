"""Apache Spark engines: the monitor's bucket store from a Parquet log archive, and the data
audit of Parquet data (:func:`audit_data_spark`, imported on first use: it loads the audit).

Install with ``pip install 'tabguard[spark]'`` (PySpark >= 4.1.2, Java 17+). PySpark is
imported only by :mod:`tabguard.spark._session`.
"""

from typing import Any

from tabguard.spark._monitor import archive_watermark, update_from_archive
from tabguard.spark._session import (
    SparkUnavailableError,
    functions,
    java_available,
    spark_session,
)

__all__ = [
    "SparkAuditResult",
    "SparkUnavailableError",
    "archive_watermark",
    "audit_data_spark",
    "functions",
    "java_available",
    "spark_session",
    "update_from_archive",
]


def __getattr__(name: str) -> Any:
    # The audit engine imports the data audit (LightGBM, SciPy): only when asked for.
    if name in ("audit_data_spark", "SparkAuditResult"):
        from tabguard.spark import _audit

        return getattr(_audit, name)
    raise AttributeError(f"module 'tabguard.spark' has no attribute {name!r}")
