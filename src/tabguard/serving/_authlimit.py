"""Failed-authentication limits: a flood of bad keys costs the attacker, not the service.

Every failed authentication (no key, a malformed header, an unknown, wrong or revoked key) is
counted against the request's **source address** and against the **key id** it presented, in
the rate-limit store (``[limits] storage``: ``memory://`` per process, ``redis://`` shared by
every worker and replica). Once either is over ``[limits] auth_failures`` (default
``20/minute``), its further requests are refused with 429 ``auth_throttled`` *before* the key
store is asked, until the window frees a slot.

The request path stays cheap:

- a key the key cache knows as valid (``KeyCache.known``: checked valid before, however long
  ago) is never throttled, only checked: a legitimate client behind the same address as an
  attacker keeps working;
- a blocked *key id* does not lock its owner out: while it is blocked its keys are still
  checked (a valid one passes, a wrong secret gets the 429), since key ids are not secret and
  a fresh process does not know its clients' keys yet. A blocked *source* is refused before
  any lookup;
- which sources and key ids are blocked is remembered in process (a bounded map), so a blocked
  request costs a dictionary lookup, no store round trip; the shared counters are only touched
  by failures. Each worker learns of a block at its first failure from that source after the
  limit was reached elsewhere.
- when the counter store is down, failures are not counted (fail open: authentication itself
  still runs; the client limit has its own policy).

A throttled request is held for ``[limits] auth_tarpit`` seconds (default 1) before its 429:
an attacker's connection then gets one answer a second instead of hundreds, so a flood from a
few clients stops competing with legitimate traffic (measured in docs/benchmarks.md). At most
:data:`MAX_HELD` requests are held at once per process; beyond that they are answered at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tabguard.serving._keys import bearer_token, split_key

if TYPE_CHECKING:
    from tabguard.serving._config import LimitsConfig
    from tabguard.serving._limits import AsyncRateLimiter

#: Rejection reasons that count as a failed authentication.
AUTH_FAILURES = frozenset({"missing_key", "malformed_header", "invalid_key"})
#: Blocked sources and key ids remembered per process (least recently blocked dropped first).
MAX_BLOCKED = 100_000
#: Throttled requests held (tarpit) at once per process.
MAX_HELD = 1024


@dataclass(frozen=True)
class Block:
    """Why a request is refused before its key is checked."""

    what: str  # "source" or "key_id"
    retry_after: float

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, at least 1."""
        return str(max(1, int(self.retry_after + 0.999)))


class AuthThrottle:
    """Count failed authentications per source and per key id; refuse those over the limit.

    Parameters
    ----------
    limiter : AsyncRateLimiter
        Its ``per_client`` rate counts sources, its ``per_subject`` rate key ids (the same
        rate), in the configured store under their own key prefix.
    tarpit : float
        Seconds a throttled request is held before it is answered (0: at once).
    clock : callable, optional
        Monotonic seconds (tests inject one).
    sleep : callable, optional
        How a request is held (tests inject one).
    max_blocked : int
        Blocks remembered in process.
    max_held : int
        Requests held at once.
    """

    def __init__(
        self,
        limiter: AsyncRateLimiter,
        *,
        tarpit: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_blocked: int = MAX_BLOCKED,
        max_held: int = MAX_HELD,
    ) -> None:
        self.limiter = limiter
        self.tarpit = tarpit
        self.clock = clock
        self.sleep = sleep
        self.max_blocked = max_blocked
        self.max_held = max_held
        self.held = 0
        self._blocked: OrderedDict[str, float] = OrderedDict()

    @classmethod
    def from_config(cls, config: LimitsConfig) -> AuthThrottle | None:
        """The throttle of ``[limits] auth_failures`` (``None`` when it is off)."""
        from tabguard.serving._limits import AsyncRateLimiter

        if config.auth_failures is None:
            return None
        limiter = AsyncRateLimiter.from_config(
            config,
            per_client=config.auth_failures,
            per_subject=config.auth_failures,
            on_backend_error="fail_open",
            key_prefix=f"{config.key_prefix}-auth",
        )
        return cls(limiter, tarpit=config.auth_tarpit)

    @property
    def active(self) -> bool:
        """Whether any block is remembered (the request path checks nothing otherwise)."""
        return bool(self._blocked)

    def blocked(self, source: str | None, authorization: str | None) -> Block | None:
        """The block in force for this source or the key id of this header, if any."""
        if not self._blocked:
            return None
        now = self.clock()
        for what, name in (("source", _source_name(source)), ("key_id", _key_name(authorization))):
            if name is None:
                continue
            until = self._blocked.get(name)
            if until is None:
                continue
            if until > now:
                return Block(what, until - now)
            del self._blocked[name]
        return None

    async def failed(self, source: str | None, authorization: str | None) -> Block | None:
        """Count one failed authentication; return the block it starts, if it crossed a limit."""
        found: Block | None = None
        checks = (
            ("source", _source_name(source), source, None),
            ("key_id", _key_name(authorization), None, _key_id(authorization)),
        )
        for what, name, client, subject in checks:
            if name is None:
                continue
            decision = await self.limiter.hit(client, subject)
            if decision.allowed:
                continue
            retry = max(decision.retry_after, 1.0)
            self._remember(name, self.clock() + retry)
            found = found or Block(what, retry)
        return found

    async def hold(self, block: Block) -> None:
        """Hold a throttled request for the tarpit interval (never past its block)."""
        wait = min(self.tarpit, block.retry_after)
        if wait <= 0 or self.held >= self.max_held:
            return
        self.held += 1
        try:
            await self.sleep(wait)
        finally:
            self.held -= 1

    def _remember(self, name: str, until: float) -> None:
        self._blocked[name] = until
        self._blocked.move_to_end(name)
        while len(self._blocked) > self.max_blocked:
            self._blocked.popitem(last=False)


def _source_name(source: str | None) -> str | None:
    return f"s:{source}" if source else None


def _key_id(authorization: str | None) -> str | None:
    token = bearer_token(authorization)
    parts = split_key(token) if token is not None else None
    return parts[0] if parts is not None else None


def _key_name(authorization: str | None) -> str | None:
    key_id = _key_id(authorization)
    return f"k:{key_id}" if key_id is not None else None
