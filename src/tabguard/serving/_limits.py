"""Per-client and per-subject rate limits (S1): the one module that wraps ``limits``.

Two limits guard the scoring API: one per API client (``"100/second"``) against scraping and
extraction, one per subject (``"1/month"``: one quote per customer per month) against a user
trying many variants of their own application. Counters live in ``memory://`` (one process) or
``redis://`` (shared by every worker and replica, updated atomically by the server so two
processes never both take the last slot).

:class:`AsyncRateLimiter` is for the service (``limits.aio`` with an asyncio Redis client, so a
slow Redis never blocks the event loop); :class:`RateLimiter` is the same logic, synchronous,
for the CLI, scripts and tests.

In ``memory://`` the default moving window is counted by :class:`MemoryMovingWindow` (the
same rule as ``limits``' moving window: at most N hits in any trailing period, the N-th most
recent hit deciding), a deque per counter and no background task, about a microsecond per
hit; Redis and the other strategies go through ``limits``.

When Redis is unreachable the configured policy applies: ``fail_closed`` denies with reason
``backend_unavailable`` (the app answers 503, not 429), ``fail_open`` allows and marks the
decision ``degraded`` so it can be counted.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import limits
import limits.aio.strategies as aio_strategies
import limits.strategies as sync_strategies
from limits.errors import ConfigurationError, StorageError
from limits.storage import storage_from_string

from tabguard.errors import MissingDependencyError
from tabguard.storage import redact_text, redact_url, store_kind

if TYPE_CHECKING:
    from tabguard.serving._config import LimitsConfig

Strategy = Literal["moving-window", "fixed-window", "sliding-window"]
BackendPolicy = Literal["fail_closed", "fail_open"]
Reason = Literal["ok", "client_limit", "subject_limit", "backend_unavailable"]

_SYNC: dict[str, type[sync_strategies.RateLimiter]] = {
    "moving-window": sync_strategies.MovingWindowRateLimiter,
    "fixed-window": sync_strategies.FixedWindowRateLimiter,
    "sliding-window": sync_strategies.SlidingWindowCounterRateLimiter,
}
_ASYNC: dict[str, type[aio_strategies.RateLimiter]] = {
    "moving-window": aio_strategies.MovingWindowRateLimiter,
    "fixed-window": aio_strategies.FixedWindowRateLimiter,
    "sliding-window": aio_strategies.SlidingWindowCounterRateLimiter,
}


#: The rule a rate string must follow (for error messages).
RATE_RULE = (
    "must be a rate 'N/unit' (N >= 1; unit second|minute|hour|day|month|year), e.g. '100/second'"
)


def parse_rate(text: str) -> list[limits.RateLimitItem]:
    """Parse a rate such as ``"100/second"``, ``"1 per month"`` or ``"10/second;1000/day"``.

    Parameters
    ----------
    text : str
        One rate, or several separated by ``;`` (all must hold).

    Returns
    -------
    list of limits.RateLimitItem

    Raises
    ------
    ValueError
        With the rule: ``N/unit`` where N >= 1 and unit is second, minute, hour, day, month
        or year.
    """
    try:
        items = list(limits.parse_many(text))
    except ValueError:
        raise ValueError(f"{RATE_RULE}; got {text!r}") from None
    if not items or any(item.amount < 1 for item in items):
        raise ValueError(f"{RATE_RULE}; got {text!r}")
    return items


_SAFE_ID = re.compile(r"[A-Za-z0-9_.@:+-]{1,64}")


def _identifier(kind: str, value: str) -> str:
    """The counter identifier of a client or subject.

    ``limits`` joins identifiers with ``/`` into the storage key; ids that are long or hold
    other characters are replaced by their SHA-256 so a crafted id can neither collide with
    another counter nor blow up Redis keys.
    """
    text = str(value)
    if _SAFE_ID.fullmatch(text):
        return f"{kind}:{text}"
    return f"{kind}#{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()}"


@dataclass(frozen=True)
class RateDecision:
    """The outcome of one rate-limit check.

    Attributes
    ----------
    allowed : bool
        Whether the request may proceed.
    reason : {'ok', 'client_limit', 'subject_limit', 'backend_unavailable'}
        Why it was denied (``'ok'`` when allowed, also when allowed by ``fail_open``).
    retry_after : float
        Seconds until a retry can succeed (0 when allowed).
    limit : str or None
        The limit that denied, e.g. ``"1 per 1 month"``.
    remaining : int or None
        Hits left in the tightest window after this one, when known.
    degraded : bool
        True when the counter store failed; with ``fail_open`` the request was let through
        unchecked, with ``fail_closed`` it was denied.
    """

    allowed: bool
    reason: Reason = "ok"
    retry_after: float = 0.0
    limit: str | None = None
    remaining: int | None = None
    degraded: bool = False

    @property
    def retry_after_header(self) -> str:
        """The ``Retry-After`` header value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


#: The decision of an allowed hit (immutable, so shared).
_ALLOWED = RateDecision(True)


class MemoryMovingWindow:
    """Moving-window counters in process memory, the rule of ``limits``' moving window.

    A hit is allowed when fewer than N hits of the counter happened in the trailing period
    (hits exactly one period old still count, as in ``limits``). Counters untouched for their
    period are dropped as later hits arrive, and at most ``max_counters`` are kept (least
    recently used first out), so memory stays bounded whatever ids clients send.

    Parameters
    ----------
    max_counters : int
        Counters kept at most.
    clock : callable
        Epoch seconds (tests pass a fake one).
    """

    def __init__(self, max_counters: int = 1_000_000, clock: Any = time.time) -> None:
        self.max_counters = max_counters
        self.clock = clock
        self._hits: OrderedDict[tuple[int, int, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()  # the synchronous limiter may be shared by threads

    def hit(self, amount: int, period: int, ident: str) -> float | None:
        """Count one hit: ``None`` when allowed, else seconds until a hit frees up."""
        key = (amount, period, ident)
        now = self.clock()
        cutoff = now - period
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                hits = self._hits[key] = deque()
            else:
                self._hits.move_to_end(key)
            while hits and hits[0] < cutoff:
                hits.popleft()
            if len(hits) >= amount:
                # the N-th most recent hit (the oldest kept) leaves the window first
                return max(0.0, hits[-amount] + period - now)
            hits.append(now)
            self._sweep(now)
        return None

    def _sweep(self, now: float) -> None:
        # The least recently touched counters come first: drop those whose period is over.
        while self._hits:
            (_, period, _), hits = next(iter(self._hits.items()))
            if len(self._hits) <= self.max_counters and hits and hits[-1] >= now - period:
                return
            self._hits.popitem(last=False)

    def clear(self, amount: int, period: int, ident: str) -> None:
        """Forget one counter."""
        with self._lock:
            self._hits.pop((amount, period, ident), None)

    def __len__(self) -> int:
        return len(self._hits)


class _LimiterBase:
    def __init__(
        self,
        per_client: str | None = "100/second",
        per_subject: str | None = None,
        *,
        storage: str = "memory://",
        strategy: Strategy = "moving-window",
        on_backend_error: BackendPolicy = "fail_closed",
        key_prefix: str = "tabguard",
        timeout: float = 0.5,
    ) -> None:
        if strategy not in _SYNC:
            raise ValueError(f"strategy must be one of {', '.join(_SYNC)}; got {strategy!r}")
        if on_backend_error not in ("fail_closed", "fail_open"):
            raise ValueError(
                f"on_backend_error must be 'fail_closed' or 'fail_open'; got {on_backend_error!r}"
            )
        kind = store_kind(storage)
        if kind not in ("memory", "redis"):
            raise ValueError(
                f"rate-limit storage must be memory:// or redis://; got {redact_url(storage)!r}"
            )
        self.client_items = parse_rate(per_client) if per_client else []
        self.subject_items = parse_rate(per_subject) if per_subject else []
        self.storage_url = storage
        self.strategy = strategy
        self.on_backend_error = on_backend_error
        self.key_prefix = key_prefix
        self.timeout = timeout
        #: How many checks met an unreachable counter store (a metric for the service).
        self.backend_errors = 0
        self._kind = kind
        self._memory = (
            MemoryMovingWindow() if kind == "memory" and strategy == "moving-window" else None
        )
        self._client_windows = [(i.amount, i.get_expiry(), i) for i in self.client_items]
        self._subject_windows = [(i.amount, i.get_expiry(), i) for i in self.subject_items]

    def _memory_hit(self, client: str | None, subject_id: str | None) -> RateDecision:
        memory = self._memory
        if memory is None:
            raise RuntimeError("_memory_hit needs the in-memory moving window")
        # The same checks as _checks(), in the same order (client first), without building
        # them: a request path that allows almost every hit shares one decision object.
        if client is not None and self._client_windows:
            ident = _identifier("client", client)
            for amount, period, item in self._client_windows:
                wait = memory.hit(amount, period, ident)
                if wait is not None:
                    return RateDecision(
                        False, "client_limit", retry_after=wait, limit=str(item), remaining=0
                    )
        if subject_id is not None and self._subject_windows:
            ident = _identifier("subject", subject_id)
            for amount, period, item in self._subject_windows:
                wait = memory.hit(amount, period, ident)
                if wait is not None:
                    return RateDecision(
                        False, "subject_limit", retry_after=wait, limit=str(item), remaining=0
                    )
        return _ALLOWED

    @classmethod
    def from_config(cls, config: LimitsConfig, **overrides: Any) -> Any:
        """Build a limiter from the ``[limits]`` section of ``tabguard.toml``."""
        options: dict[str, Any] = {
            "per_client": config.per_client,
            "per_subject": config.per_subject,
            "storage": config.storage,
            "strategy": config.strategy,
            "on_backend_error": config.on_backend_error,
            "key_prefix": config.key_prefix,
            "timeout": config.timeout,
        }
        options.update(overrides)
        return cls(**options)

    def _storage_options(self) -> dict[str, Any]:
        if self._kind == "memory":
            return {}
        try:
            import redis  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError(
                "redis", "redis", f"rate limits in {redact_url(self.storage_url)!r}"
            ) from exc
        return {
            "wrap_exceptions": True,
            "key_prefix": self.key_prefix,
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
        }

    def _checks(self, client: str | None, subject_id: str | None) -> list[tuple[Any, Reason, str]]:
        checks: list[tuple[Any, Reason, str]] = []
        if client is not None:
            ident = _identifier("client", client)
            checks += [(item, "client_limit", ident) for item in self.client_items]
        if subject_id is not None:
            ident = _identifier("subject", subject_id)
            checks += [(item, "subject_limit", ident) for item in self.subject_items]
        return checks

    def _backend_down(self) -> RateDecision:
        self.backend_errors += 1
        if self.on_backend_error == "fail_open":
            return RateDecision(True, "ok", degraded=True)
        return RateDecision(
            False, "backend_unavailable", retry_after=1.0, limit=None, degraded=True
        )

    @staticmethod
    def _denied(reason: Reason, item: Any, reset_time: float | None) -> RateDecision:
        if reset_time is None:
            retry = float(item.get_expiry())
        else:
            retry = max(0.0, reset_time - time.time())
        return RateDecision(False, reason, retry_after=retry, limit=str(item), remaining=0)


class RateLimiter(_LimiterBase):
    """Synchronous per-client and per-subject rate limiter (CLI, scripts, tests).

    Parameters
    ----------
    per_client : str or None, default "100/second"
        Rate per API client; ``None`` disables it.
    per_subject : str or None, default None
        Rate per subject (customer id); ``None`` disables it.
    storage : str, default "memory://"
        ``memory://`` or ``redis://host:port/db``.
    strategy : {'moving-window', 'fixed-window', 'sliding-window'}
        Counting strategy.
    on_backend_error : {'fail_closed', 'fail_open'}
        Policy when the counter store is unreachable.
    key_prefix : str, default "tabguard"
        Prefix of the counters in Redis (isolates deployments and tests).
    timeout : float, default 0.5
        Redis connect/read timeout in seconds.

    Examples
    --------
    >>> limiter = RateLimiter(per_client=None, per_subject="1/month")
    >>> limiter.hit("bank-a", "cust-1").allowed, limiter.hit("bank-a", "cust-1").reason
    (True, 'subject_limit')
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            storage = storage_from_string(self.storage_url, **self._storage_options())
        except ConfigurationError as exc:
            raise ValueError(
                f"rate-limit storage {redact_url(self.storage_url)!r}: {redact_text(str(exc))}"
            ) from None
        self._limiter = _SYNC[self.strategy](storage)

    def hit(self, client: str | None, subject_id: str | None = None) -> RateDecision:
        """Count one request of ``client`` about ``subject_id`` and say if it may proceed.

        The client limit is checked first; a request it denies does not use up the subject's
        allowance.
        """
        if self._memory is not None:
            return self._memory_hit(client, subject_id)
        try:
            for item, reason, ident in self._checks(client, subject_id):
                if not self._limiter.hit(item, ident):
                    try:
                        stats = self._limiter.get_window_stats(item, ident)
                        reset: float | None = stats.reset_time
                    except StorageError:
                        reset = None
                    return self._denied(reason, item, reset)
        except StorageError:
            return self._backend_down()
        return RateDecision(True)

    def reset(self, client: str | None = None, subject_id: str | None = None) -> None:
        """Clear the counters of a client and/or a subject (operator action, tests)."""
        for item, _, ident in self._checks(client, subject_id):
            if self._memory is not None:
                self._memory.clear(item.amount, item.get_expiry(), ident)
            self._limiter.clear(item, ident)


class AsyncRateLimiter(_LimiterBase):
    """Asyncio per-client and per-subject rate limiter for the service.

    Same parameters and semantics as :class:`RateLimiter`; Redis is reached through an
    asyncio client, so waiting on it never blocks the event loop. Create it inside the
    process that serves (each worker has its own connection pool).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = self._storage_options()
        if self._kind == "redis":
            options["implementation"] = "redispy"  # redis-py's asyncio client, no coredis
        try:
            storage = storage_from_string(f"async+{self.storage_url}", **options)
        except ConfigurationError as exc:
            raise ValueError(
                f"rate-limit storage {redact_url(self.storage_url)!r}: {redact_text(str(exc))}"
            ) from None
        self._storage = storage
        self._limiter = _ASYNC[self.strategy](storage)

    async def check(self) -> bool:
        """Whether the counter store answers now (``memory://`` always does).

        At most about ``timeout`` seconds; never raises.
        """
        if self._kind == "memory":
            return True
        try:
            ping: Any = self._storage.check()  # a coroutine: the storage is an asyncio one
            return bool(await asyncio.wait_for(ping, self.timeout + 0.5))
        except Exception:  # unreachable, timed out, or a driver error: not answering
            return False

    async def hit(self, client: str | None, subject_id: str | None = None) -> RateDecision:
        """Count one request of ``client`` about ``subject_id`` and say if it may proceed."""
        if self._memory is not None:
            return self._memory_hit(client, subject_id)
        try:
            for item, reason, ident in self._checks(client, subject_id):
                if not await self._limiter.hit(item, ident):
                    try:
                        stats = await self._limiter.get_window_stats(item, ident)
                        reset: float | None = stats.reset_time
                    except StorageError:
                        reset = None
                    return self._denied(reason, item, reset)
        except StorageError:
            return self._backend_down()
        return RateDecision(True)

    async def reset(self, client: str | None = None, subject_id: str | None = None) -> None:
        """Clear the counters of a client and/or a subject."""
        for item, _, ident in self._checks(client, subject_id):
            if self._memory is not None:
                self._memory.clear(item.amount, item.get_expiry(), ident)
            await self._limiter.clear(item, ident)
