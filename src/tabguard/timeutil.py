"""Durations and times as people write them: ``6h``, ``1w``, ``90m``, ``2026-02-11T11:00``.

One parser for every command and configuration file that takes a window, a step or a cooldown
(``monitor.yaml``, ``tabguard monitor … --every 60s``, ``redteam traffic --onset 37d11h``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNITS = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
#: The rule a duration follows (for error messages).
DURATION_RULE = "must be a duration such as '60s', '15m', '6h', '1d', '1w' or '1d12h'"


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse ``"6h"``, ``"1w"``, ``"1d12h"``, ``"90m"`` or a number of seconds.

    Raises
    ------
    ValueError
        With :data:`DURATION_RULE` and the value received.

    Examples
    --------
    >>> parse_duration("1d12h")
    datetime.timedelta(days=1, seconds=43200)
    >>> parse_duration(60)
    datetime.timedelta(seconds=60)
    """
    if isinstance(text, timedelta):
        return text
    if isinstance(text, bool):
        raise ValueError(f"{DURATION_RULE}; got {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"{DURATION_RULE}; got {text!r}")
        return timedelta(seconds=float(text))
    s = str(text).strip().lower().replace(" ", "")
    pos, total, matched = 0, timedelta(0), False
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise ValueError(f"{DURATION_RULE}; got {text!r}")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos, matched = m.end(), True
    if not matched:
        raise ValueError(f"{DURATION_RULE}; got {text!r}")
    return total


def format_duration(value: timedelta) -> str:
    """The shortest spelling :func:`parse_duration` reads back (``"1w"``, ``"6h"``, ``"1d12h"``)."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    out = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out)


def parse_time(text: str | datetime) -> datetime:
    """Parse an ISO-8601 time; a time without a zone is taken as UTC. Returns an aware time.

    Raises
    ------
    ValueError
        Naming the expected form and the value received.
    """
    if isinstance(text, datetime):
        value = text
    else:
        try:
            value = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"must be an ISO time such as '2026-02-11T11:00' (UTC unless a zone is given); "
                f"got {text!r}"
            ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def floor_time(value: datetime, step: timedelta, origin: datetime | None = None) -> datetime:
    """The last multiple of ``step`` from ``origin`` (default: the epoch) not after ``value``."""
    base = origin or datetime(1970, 1, 1, tzinfo=UTC)
    n = (value - base) // step
    return base + n * step
