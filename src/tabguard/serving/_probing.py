"""Probing detection (S6): clients that query the model to learn how to game it.

Attackers learn a model by trial and error (seed 002); extraction and membership attacks
query it with synthetic data (seed 000). Per API client, the detector keeps the recent queries
(raw attributes, encoded) with their scores and raises these signals:

``feature_walk``
    queries that differ from an earlier query of the window in at most ``max_changed``
    features (default one): someone walking one feature to find where the decision flips.
``gameable_variation``
    queries equal to an earlier one on every feature the user does *not* control and different
    on a ``gameable`` one: the same application re-sent with other self-declared values.
``boundary``
    queries scored within ``boundary_margin`` of the threshold: walking the decision boundary
    (the service knows the score even when the client only sees the decision).
``out_of_distribution``
    queries far from the training data (see :class:`ReferenceProfile`).

Each query carries the signals it shows (logged with it). A client is *flagged* when, within
``window`` seconds, at least ``walk_min``/``gameable_min``/``boundary_min``/``ood_min`` of its
queries show a signal; the flag lasts ``cooldown`` seconds and ``action`` applies meanwhile:
``flag`` (log and metrics only), ``throttle`` (the client is limited to ``throttle``, 429 beyond),
``review`` or ``deny`` (its decisions are overridden). Nothing in the detector names a
feature or a value: it reads the contract (which features are gameable) and the reference
profile.

State lives in process memory (``storage = "memory://"``: each worker sees its own share of
the traffic) or in Redis (``redis://...``: shared by workers and replicas). If Redis fails,
detection is skipped for that request and counted; the request itself is never refused for it.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from tabguard.errors import BackendUnavailableError, MissingDependencyError
from tabguard.serving._config import ProbingConfig
from tabguard.storage import redact_url, store_kind

if TYPE_CHECKING:
    from tabguard.contract import Contract
    from tabguard.serving._reference import ReferenceProfile

Signal = Literal["feature_walk", "gameable_variation", "boundary", "out_of_distribution"]
SIGNALS: tuple[Signal, ...] = (
    "feature_walk",
    "gameable_variation",
    "boundary",
    "out_of_distribution",
)
Action = Literal["flag", "throttle", "review", "deny"]
#: One bit per signal, so a client's history counts signals with a few array operations.
SIGNAL_BITS: dict[str, int] = {s: 1 << i for i, s in enumerate(SIGNALS)}


def signal_bits(signals: Iterable[str]) -> int:
    """The bit mask of a set of signal names (unknown names are ignored)."""
    out = 0
    for s in signals:
        out |= SIGNAL_BITS.get(s, 0)
    return out


@dataclass(frozen=True)
class Entry:
    """One remembered query of a client."""

    at: float
    subject: str | None
    vector: np.ndarray
    signals: tuple[str, ...]


@dataclass
class ClientState:
    """A client's recent queries within the window and its flag expiry.

    Attributes
    ----------
    vectors : ndarray of shape (k, n_features)
        The encoded queries (k may be 0).
    bits : ndarray of shape (k,)
        The signals each of them showed, as bits of :data:`SIGNAL_BITS`.
    flagged_until : float
        Epoch seconds until which the client stays flagged.
    """

    vectors: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    bits: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    flagged_until: float = 0.0


class _Ring:
    """A client's last ``size`` queries in preallocated arrays (no per-request allocation)."""

    def __init__(self, size: int, width: int) -> None:
        self.times = np.full(size, -np.inf)
        self.vectors = np.zeros((size, width))
        self.bits = np.zeros(size, dtype=np.int64)
        self.pos = 0
        self.flagged_until = 0.0

    def push(self, entry: Entry) -> None:
        self.times[self.pos] = entry.at
        self.vectors[self.pos] = entry.vector
        self.bits[self.pos] = signal_bits(entry.signals)
        self.pos = (self.pos + 1) % len(self.times)

    def recent(self, now: float, window: float) -> ClientState:
        idx = np.flatnonzero(now - self.times <= window)
        return ClientState(self.vectors[idx], self.bits[idx], self.flagged_until)


@dataclass(frozen=True)
class ProbingResult:
    """The detector's verdict on one query.

    Attributes
    ----------
    signals : tuple of str
        Signals this query shows.
    flagged : bool
        Whether the client is flagged (now or still, within ``cooldown``).
    reasons : tuple of str
        The client-level signals that crossed their minimum in the window.
    counts : dict
        Queries with each signal in the window (this one included).
    available : bool
        False when the state store failed and detection was skipped.
    """

    signals: tuple[str, ...] = ()
    flagged: bool = False
    reasons: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    available: bool = True


class ProbingStore(Protocol):
    """Where per-client probing state lives."""

    async def load(self, client: str, now: float) -> ClientState:
        """Return the client's recent entries (within the window) and flag expiry."""
        ...

    async def save(self, client: str, entry: Entry, flagged_until: float | None) -> None:
        """Remember ``entry``; set the flag expiry when given."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class MemoryProbingStore:
    """Probing state in this process (bounded: least recently seen clients are forgotten)."""

    def __init__(self, window: float, history: int, max_clients: int = 10_000) -> None:
        self.window = window
        self.history = history
        self.max_clients = max_clients
        self._clients: OrderedDict[str, _Ring] = OrderedDict()
        self._lock = threading.Lock()

    async def load(self, client: str, now: float) -> ClientState:
        """Return the client's queries within the window."""
        with self._lock:
            ring = self._clients.get(client)
            return ClientState() if ring is None else ring.recent(now, self.window)

    async def save(self, client: str, entry: Entry, flagged_until: float | None) -> None:
        """Append ``entry`` to the client's history."""
        with self._lock:
            ring = self._clients.get(client)
            if ring is None:
                ring = self._clients[client] = _Ring(self.history, len(entry.vector))
            self._clients.move_to_end(client)
            ring.push(entry)
            if flagged_until is not None:
                ring.flagged_until = flagged_until
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)

    async def aclose(self) -> None:
        """Nothing to release."""


class RedisProbingStore:
    """Probing state in Redis, shared by every worker and replica.

    One list per client (newest first, trimmed to ``history``, expiring after ``window``) and
    one key holding the flag expiry. Two round trips per request.
    """

    def __init__(self, url: str, window: float, history: int, prefix: str, timeout: float) -> None:
        try:
            import redis.asyncio as aredis
        except ImportError as exc:
            raise MissingDependencyError(
                "redis", "redis", f"probing state in {redact_url(url)!r}"
            ) from exc
        self.url = url
        self.window = window
        self.history = history
        self.prefix = f"{prefix}:probing:"
        self._redis = aredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    def _keys(self, client: str) -> tuple[str, str]:
        digest = hashlib.sha256(client.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return f"{self.prefix}{digest}:q", f"{self.prefix}{digest}:flag"

    async def load(self, client: str, now: float) -> ClientState:
        """Read the client's list and flag (one pipelined round trip)."""
        from redis.exceptions import RedisError

        qkey, fkey = self._keys(client)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.lrange(qkey, 0, self.history - 1)
                pipe.get(fkey)
                raw, flag = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BackendUnavailableError(f"probing store {redact_url(self.url)}: {exc}") from exc
        vectors: list[list[float]] = []
        bits: list[int] = []
        for item in raw:
            try:
                d = json.loads(item)
                if now - float(d["t"]) > self.window:
                    continue
                vector = [math.nan if v is None else float(v) for v in d["v"]]
                entry_bits = signal_bits(str(g) for g in d.get("g", ()))
            except (ValueError, KeyError, TypeError):
                continue
            if vectors and len(vector) != len(vectors[0]):
                continue  # written under another contract: not comparable
            vectors.append(vector)
            bits.append(entry_bits)
        return ClientState(
            np.asarray(vectors, dtype=float).reshape(len(vectors), -1)
            if vectors
            else np.empty((0, 0)),
            np.asarray(bits, dtype=np.int64),
            float(flag) if flag else 0.0,
        )

    async def save(self, client: str, entry: Entry, flagged_until: float | None) -> None:
        """Push ``entry``, trim, refresh expiry; set the flag (one round trip)."""
        from redis.exceptions import RedisError

        qkey, fkey = self._keys(client)
        item = json.dumps(
            {
                "t": entry.at,
                "s": entry.subject,
                "v": [None if math.isnan(v) else v for v in entry.vector.tolist()],
                "g": list(entry.signals),
            }
        )
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lpush(qkey, item)
                pipe.ltrim(qkey, 0, self.history - 1)
                pipe.expire(qkey, max(1, math.ceil(self.window)))
                if flagged_until is not None:
                    ttl = max(1, math.ceil(flagged_until - entry.at))
                    pipe.set(fkey, repr(flagged_until), ex=ttl)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BackendUnavailableError(f"probing store {redact_url(self.url)}: {exc}") from exc

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def open_probing_store(config: ProbingConfig) -> MemoryProbingStore | RedisProbingStore:
    """Open the store ``[probing] storage`` selects."""
    if store_kind(config.storage) == "redis":
        return RedisProbingStore(
            config.storage, config.window, config.history, config.key_prefix, config.timeout
        )
    return MemoryProbingStore(config.window, config.history)


_SCAN: list[Any] = []


def _scan_kernel() -> Any:
    """The compiled history scan (numba, compiled on first use and cached on disk)."""
    if _SCAN:
        return _SCAN[0]
    import numba

    @numba.njit(cache=True, nogil=True)
    def scan(
        history: np.ndarray, x: np.ndarray, gameable: np.ndarray, max_changed: int
    ) -> tuple[bool, bool]:
        # One pass over the recent queries: does any differ from x in 1..max_changed features
        # (a walk step)? Does any equal x on every fixed feature and differ on a gameable one?
        walk = False
        variation = False
        for i in range(history.shape[0]):
            n_diff = 0
            fixed_diff = False
            gameable_diff = False
            for j in range(x.shape[0]):
                a = history[i, j]
                b = x[j]
                if a != b and not (math.isnan(a) and math.isnan(b)):
                    n_diff += 1
                    if gameable[j]:
                        gameable_diff = True
                    else:
                        fixed_diff = True
            if 1 <= n_diff <= max_changed:
                walk = True
            if gameable_diff and not fixed_diff:
                variation = True
            if walk and variation:
                break
        return walk, variation

    _SCAN.append(scan)
    return scan


class ProbingDetector:
    """Per-client probing signals over a sliding window of recent queries.

    Parameters
    ----------
    contract : Contract
        Which features are gameable; the encoding of raw attributes.
    config : ProbingConfig
    store : ProbingStore, optional
        Default: the store ``config.storage`` selects.
    reference : ReferenceProfile, optional
        Enables the out-of-distribution signal.
    """

    def __init__(
        self,
        contract: Contract,
        config: ProbingConfig | None = None,
        store: ProbingStore | None = None,
        reference: ReferenceProfile | None = None,
    ) -> None:
        from tabguard.serving._reference import RawEncoder

        self.config = config or ProbingConfig()
        self.store: ProbingStore = store if store is not None else open_probing_store(self.config)
        self.encoder = RawEncoder(contract)
        names = self.encoder.feature_names
        self.gameable = np.asarray([contract.features[n].gameable for n in names], dtype=bool)
        self._split = bool(self.gameable.any() and (~self.gameable).any())
        self.reference = (
            reference
            if reference is not None and reference.features == names and reference.matches(contract)
            else None
        )
        c = self.config
        self._minimum = {
            "feature_walk": c.walk_min,
            "gameable_variation": c.gameable_min,
            "boundary": c.boundary_min,
            "out_of_distribution": c.ood_min,
        }
        self.unavailable = 0

    def encode(self, record: dict[str, Any]) -> np.ndarray:
        """The encoded raw attributes of a validated record (NaN kept)."""
        return self.encoder.encode(record)

    async def observe(
        self,
        client: str,
        subject: str | None,
        vector: np.ndarray,
        score: float | None,
        threshold: float | None,
        now: float | None = None,
    ) -> ProbingResult:
        """Record one query of ``client`` and return its signals and the client's state.

        Never raises for a store failure: the result then has ``available=False``.
        """
        now = time.time() if now is None else now
        try:
            state = await self.store.load(client, now)
        except BackendUnavailableError:
            self.unavailable += 1
            return ProbingResult(available=False)
        signals = self._signals(state.vectors, vector, score, threshold)
        counts: dict[str, int] = {
            s: int(np.count_nonzero(state.bits & SIGNAL_BITS[s])) + (s in signals) for s in SIGNALS
        }
        n = len(state.bits) + 1
        reasons = tuple(
            s
            for s in SIGNALS
            if s in signals
            and counts[s] >= self._minimum[s]
            and (s != "boundary" or counts[s] >= self.config.boundary_share * n)
        )
        flagged_until = now + self.config.cooldown if reasons else None
        entry = Entry(now, subject, np.asarray(vector, dtype=float), signals)
        try:
            await self.store.save(client, entry, flagged_until)
        except BackendUnavailableError:
            self.unavailable += 1
        flagged = bool(reasons) or state.flagged_until > now
        return ProbingResult(signals, flagged, reasons, counts)

    def _signals(
        self,
        history: np.ndarray,
        x: np.ndarray,
        score: float | None,
        threshold: float | None,
    ) -> tuple[str, ...]:
        out: list[str] = []
        if len(history) and history.shape[1] == len(x):
            walk, variation = _scan_kernel()(
                history, np.asarray(x, dtype=float), self.gameable, self.config.max_changed
            )
            if walk:
                out.append("feature_walk")
            if variation and self._split:
                out.append("gameable_variation")
        if (
            score is not None
            and threshold is not None
            and abs(score - threshold) <= self.config.boundary_margin
        ):
            out.append("boundary")
        if self.reference is not None and self.reference.is_out_of_distribution(x):
            out.append("out_of_distribution")
        return tuple(out)

    async def aclose(self) -> None:
        """Release the store."""
        await self.store.aclose()
