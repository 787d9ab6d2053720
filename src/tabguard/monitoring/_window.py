"""Time windows ``[start, end)`` on bucket boundaries, and the same window N weeks ago."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tabguard.timeutil import floor_time, parse_duration, parse_time

WEEK = timedelta(weeks=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_seconds(value: datetime) -> int:
    """Whole seconds since 1970-01-01 UTC (the store's bucket key)."""
    return int((value - _EPOCH) // timedelta(seconds=1))


def from_epoch(seconds: int) -> datetime:
    """Inverse of :func:`epoch_seconds`."""
    return _EPOCH + timedelta(seconds=int(seconds))


@dataclass(frozen=True)
class Window:
    """A half-open time window ``[start, end)`` in UTC.

    Parameters
    ----------
    start, end : datetime
        Aware datetimes (naive ones are taken as UTC); ``start < end``.

    Examples
    --------
    >>> w = Window.last("6h", at="2026-02-11T11:30", bucket="1h")
    >>> w.start.isoformat(), w.end.isoformat()
    ('2026-02-11T05:00:00+00:00', '2026-02-11T11:00:00+00:00')
    >>> w.shifted(weeks=1).start.isoformat()
    '2026-02-04T05:00:00+00:00'
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        start, end = parse_time(self.start), parse_time(self.end)
        if not start < end:
            raise ValueError(
                f"a window needs start < end; got [{start.isoformat()}, {end.isoformat()})"
            )
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @classmethod
    def last(
        cls,
        length: str | timedelta,
        *,
        at: datetime | str,
        bucket: str | timedelta,
    ) -> Window:
        """The ``length`` before ``at``, ``at`` rounded down to the bucket (complete buckets)."""
        step = parse_duration(bucket)
        end = floor_time(parse_time(at), step)
        return cls(end - parse_duration(length), end)

    @property
    def length(self) -> timedelta:
        """``end - start``."""
        return self.end - self.start

    def shifted(self, *, weeks: int = 0, delta: timedelta | None = None) -> Window:
        """The same window ``weeks`` weeks (and/or ``delta``) earlier."""
        back = weeks * WEEK + (delta or timedelta(0))
        return Window(self.start - back, self.end - back)

    def check_aligned(self, bucket: timedelta) -> None:
        """Raise ``ValueError`` unless both ends fall on bucket boundaries."""
        for name, t in (("start", self.start), ("end", self.end)):
            if (t - _EPOCH) % bucket:
                raise ValueError(
                    f"window {name} {t.isoformat()} is not on a {_fmt(bucket)} bucket boundary "
                    f"(the store keeps {_fmt(bucket)} buckets; round it to a multiple)"
                )

    def bucket_keys(self, bucket: timedelta) -> tuple[int, int]:
        """First and one-past-last bucket key (epoch seconds) covered by the window."""
        self.check_aligned(bucket)
        return epoch_seconds(self.start), epoch_seconds(self.end)


def _fmt(value: timedelta) -> str:
    from tabguard.timeutil import format_duration

    return format_duration(value)
