"""The prediction log archived as Parquet: typed, partitioned by date and hour, incremental.

``tabguard log export --format parquet OUT_DIR`` and :func:`export_parquet` append the log's new
rows (in commit order, from a watermark) to an archive that Spark, DuckDB or pandas read
directly; :func:`prune_log` deletes from the live log only what the archive verifiably holds.
See ``docs/spark.md``.
"""

from tabguard.archive._export import (
    ExportResult,
    PruneResult,
    archive_schema,
    export_parquet,
    prune_log,
    to_table,
)

__all__ = [
    "ExportResult",
    "PruneResult",
    "archive_schema",
    "export_parquet",
    "prune_log",
    "to_table",
]
