"""Apache Spark engines: the monitor's bucket store from a Parquet log archive.

Install with ``pip install 'tabguard[spark]'`` (PySpark >= 4.1.2, Java 17+). PySpark is
imported only by :mod:`tabguard.spark._session`.
"""

from tabguard.spark._monitor import archive_watermark, update_from_archive
from tabguard.spark._session import (
    SparkUnavailableError,
    functions,
    java_available,
    spark_session,
)

__all__ = [
    "SparkUnavailableError",
    "archive_watermark",
    "functions",
    "java_available",
    "spark_session",
    "update_from_archive",
]
