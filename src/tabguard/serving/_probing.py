"""Probing detection (S6): clients that query the model to learn how to game it.

Attackers learn a model by trial and error (seed 002); extraction and membership attacks
query it with synthetic data (seed 000). Per API client, the detector keeps the recent queries
with their signals and raises these signals:

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

"Differ" and "equal" are read in the served model's space (:class:`ProbingSpace`), with a
tolerance per feature, so that a change the model cannot see, or a change below a feature's
resolution, is no change: features the model never reads (protected, dropped, neutralised by
the model's options or the ``neutralize`` flag) are ignored; features the model bins compare
their bin; categories their code; numbers compare with a tolerance of ``tolerance`` (0.5%) of
the feature's spread in the reference data (0.5-99.5% range; without a reference, the
contract's clip or valid range). Nudging a non-gameable amount by one unit per query, jittering
several of them a little, rounding, or swapping categories the model reads as one, do not
hide a walk. Values are compared before clipping, so a walk beyond a clip edge still shows.

Each query carries the signals it shows (logged with it). A client is *flagged* when, within
``window`` seconds, at least ``walk_min``/``gameable_min``/``boundary_min``/``ood_min`` of its
queries show a signal; the flag lasts ``cooldown`` seconds and ``action`` applies meanwhile:
``flag`` (log and metrics only), ``throttle`` (the client is limited to ``throttle``, 429 beyond),
``review`` or ``deny`` (its decisions are overridden). Nothing in the detector names a
feature or a value: it reads the contract (which features are gameable), the model's
transform and the reference profile.

State lives in process memory (``storage = "memory://"``: a ring of the last ``history``
queries per client with the signal counts kept up to date, so a query costs one compiled scan
and no copy; each worker process sees only the queries it served) or in Redis
(``redis://...``: one list of packed entries per client, shared by workers and replicas). If
Redis fails, detection is skipped for that request and counted; the request itself is never
refused for it.
"""

from __future__ import annotations

import bisect
import hashlib
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
    from tabguard.contract import Contract, FeatureTransform
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
_N_SIGNALS = len(SIGNALS)


def signal_bits(signals: Iterable[str]) -> int:
    """The bit mask of a set of signal names (unknown names are ignored)."""
    out = 0
    for s in signals:
        out |= SIGNAL_BITS.get(s, 0)
    return out


#: The signal names of each bit mask, in :data:`SIGNALS` order.
_SIGNAL_SETS: tuple[tuple[Signal, ...], ...] = tuple(
    tuple(s for i, s in enumerate(SIGNALS) if (bits >> i) & 1) for bits in range(1 << len(SIGNALS))
)


def _bit_counts(bits: int) -> list[int]:
    return [(bits >> i) & 1 for i in range(_N_SIGNALS)]


@dataclass(frozen=True)
class Entry:
    """One remembered query of a client (its vector in the compared space)."""

    at: float
    subject: str | None
    vector: np.ndarray
    signals: tuple[str, ...]


@dataclass
class ClientState:
    """A client's recent queries within the window and its flag expiry.

    The queries are rows ``(start + i) % len(vectors)`` for ``i < count`` (a ring in memory;
    plain rows, ``start = 0``, from Redis).

    Attributes
    ----------
    vectors : ndarray of shape (k, n_features)
        The queries in the compared space (:class:`ProbingSpace`).
    bits : ndarray of shape (k,)
        The signals each of them showed, as bits of :data:`SIGNAL_BITS`.
    flagged_until : float
        Epoch seconds until which the client stays flagged.
    start, count : int
        Where the live queries are (default: all rows).
    counts : list of int, optional
        Live queries with each signal (kept up to date by the memory store).
    """

    vectors: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    bits: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    flagged_until: float = 0.0
    start: int = 0
    count: int = -1
    counts: list[int] | None = None

    def __post_init__(self) -> None:
        if self.count < 0:
            self.count = len(self.bits)

    def signal_counts(self) -> list[int]:
        """Live queries with each signal."""
        if self.counts is not None:
            return self.counts
        bits = self.bits[: self.count] if self.start == 0 else self.live_bits()
        return [int(np.count_nonzero(bits & (1 << i))) for i in range(_N_SIGNALS)]

    def live_bits(self) -> np.ndarray:
        """The bits of the live queries."""
        cap = len(self.bits)
        idx = (self.start + np.arange(self.count)) % max(cap, 1)
        return self.bits[idx]


class _Ring:
    """A client's last ``size`` queries in preallocated arrays, with live signal counts.

    Queries arrive in time order; those older than the window leave from the oldest end, and
    the counts follow, so a query never rescans the history to count. ``meta`` holds the
    start, the count and the per-signal counts (int64), so that the compiled
    :func:`ring_observe` updates them in place.
    """

    def __init__(self, size: int, width: int) -> None:
        self.times = np.full(size, -np.inf)
        self.vectors = np.zeros((size, width))
        self.bits = np.zeros(size, dtype=np.int64)
        self.meta = np.zeros(2 + _N_SIGNALS, dtype=np.int64)
        self.flagged_until = 0.0

    @property
    def start(self) -> int:
        return int(self.meta[0])

    @property
    def count(self) -> int:
        return int(self.meta[1])

    @property
    def counts(self) -> list[int]:
        return [int(n) for n in self.meta[2:]]

    def _drop_oldest(self) -> None:
        meta = self.meta
        start = int(meta[0])
        b = int(self.bits[start])
        if b:
            for i in range(_N_SIGNALS):
                meta[2 + i] -= (b >> i) & 1
        meta[0] = (start + 1) % len(self.times)
        meta[1] -= 1

    def expire(self, now: float, window: float) -> None:
        times, meta = self.times, self.meta
        while meta[1] and now - times[meta[0]] > window:
            self._drop_oldest()

    def push(self, at: float, vector: np.ndarray, bits: int) -> None:
        size = len(self.times)
        if self.meta[1] == size:
            self._drop_oldest()
        meta = self.meta
        pos = (int(meta[0]) + int(meta[1])) % size
        self.times[pos] = at
        self.vectors[pos] = vector
        self.bits[pos] = bits
        meta[1] += 1
        if bits:
            for i in range(_N_SIGNALS):
                meta[2 + i] += (bits >> i) & 1

    def state(self) -> ClientState:
        return ClientState(
            self.vectors, self.bits, self.flagged_until, self.start, self.count, self.counts
        )


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
    """Probing state in this process (bounded: least recently seen clients are forgotten).

    :meth:`load` returns views of the client's ring (no copy): the detector reads them before
    its :meth:`save`, on the event loop, with nothing in between.
    """

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
            if ring is None:
                return ClientState()
            ring.expire(now, self.window)
            return ring.state()

    async def save(self, client: str, entry: Entry, flagged_until: float | None) -> None:
        """Append ``entry`` to the client's history."""
        with self._lock:
            ring = self._clients.get(client)
            if ring is None or ring.vectors.shape[1] != len(entry.vector):
                ring = self._clients[client] = _Ring(self.history, len(entry.vector))
            self._clients.move_to_end(client)
            ring.push(entry.at, entry.vector, signal_bits(entry.signals))
            if flagged_until is not None:
                ring.flagged_until = flagged_until
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)

    def ring(self, client: str, width: int) -> _Ring:
        """The client's ring, created (or replaced, for another width) and marked recent.

        For :meth:`ProbingDetector.observe`'s one-call path; the caller holds ``_lock``.
        """
        ring = self._clients.get(client)
        if ring is None or ring.vectors.shape[1] != width:
            ring = self._clients[client] = _Ring(self.history, width)
        self._clients.move_to_end(client)
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)
        return ring

    async def aclose(self) -> None:
        """Nothing to release."""


class RedisProbingStore:
    """Probing state in Redis, shared by every worker and replica.

    One list per client (newest first, trimmed to ``history``, expiring after ``window``) of
    packed entries (time, signal bits and the vector as float64 bytes, so a load is one
    ``frombuffer``), and one key holding the flag expiry. Two round trips per request.
    Entries of another width (another contract, an older format) are skipped.
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
        try:
            flagged_until = float(flag) if flag else 0.0
        except ValueError:
            flagged_until = 0.0
        return _unpack(raw, now, self.window, flagged_until)

    async def save(self, client: str, entry: Entry, flagged_until: float | None) -> None:
        """Push ``entry``, trim, refresh expiry; set the flag (one round trip)."""
        from redis.exceptions import RedisError

        qkey, fkey = self._keys(client)
        packed = np.empty(len(entry.vector) + 2)
        packed[0] = entry.at
        packed[1] = signal_bits(entry.signals)
        packed[2:] = entry.vector
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lpush(qkey, packed.tobytes())
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


def _unpack(items: list[bytes], now: float, window: float, flagged_until: float) -> ClientState:
    """The live entries of a Redis list (newest first); other widths are skipped."""
    sizes = [len(b) for b in items]
    if not items or sizes[0] % 8 or sizes[0] < 24:
        return ClientState(flagged_until=flagged_until)
    width = sizes[0]
    kept = [b for b, n in zip(items, sizes, strict=True) if n == width]
    table = np.frombuffer(b"".join(kept), dtype=np.float64).reshape(len(kept), width // 8)
    live = now - table[:, 0] <= window
    table = table[live]
    return ClientState(
        np.ascontiguousarray(table[:, 2:]), table[:, 1].astype(np.int64), flagged_until
    )


def open_probing_store(config: ProbingConfig) -> MemoryProbingStore | RedisProbingStore:
    """Open the store ``[probing] storage`` selects."""
    if store_kind(config.storage) == "redis":
        return RedisProbingStore(
            config.storage, config.window, config.history, config.key_prefix, config.timeout
        )
    return MemoryProbingStore(config.window, config.history)


class ProbingSpace:
    """Where queries are compared: the served model's view, a tolerance per feature.

    Built from the contract, the served model's transform and the reference profile, once.
    :meth:`project` turns a raw encoding (``RawEncoder``'s vector: categories as codes, no
    clipping) into the compared vector: binned features become their bin number. Two values of
    feature ``j`` differ when ``|a - b| > tolerance[j]``:

    * features the model never reads (dropped or always neutralised by its transform) have an
      infinite tolerance, and so do those the ``neutralize`` flag replaces (per request);
    * categories, booleans and bin numbers have tolerance 0 (any change is one);
    * numbers have ``share`` of their spread: the reference's 0.5-99.5% range, else the
      contract's clip range, else its valid range (0 when none is finite: exact).

    Parameters
    ----------
    contract : Contract
    transform : FeatureTransform, optional
        The served (main) model's transform: its dropped, neutralised and binned features.
    reference : ReferenceProfile, optional
    share : float
        ``[probing] tolerance``.
    """

    def __init__(
        self,
        contract: Contract,
        transform: FeatureTransform | None = None,
        reference: ReferenceProfile | None = None,
        share: float = 0.005,
    ) -> None:
        names = contract.model_features()
        self.feature_names = names
        options = transform.options if transform is not None else None
        unseen = set(options.drop) | set(options.neutralize) if options is not None else set()
        binned = set(options.bins) if options is not None else set()
        self.gameable = np.asarray([contract.features[n].gameable for n in names], dtype=bool)
        ref = {n: j for j, n in enumerate(reference.features)} if reference is not None else {}
        tolerance = np.zeros(len(names))
        self._bins: list[tuple[int, list[float]]] = []
        for j, name in enumerate(names):
            spec = contract.features[name]
            if name in unseen:
                tolerance[j] = math.inf
            elif name in binned and spec.bins:
                self._bins.append((j, [float(e) for e in spec.bins]))
            elif spec.is_numeric:
                tolerance[j] = share * _spread(spec, reference, ref.get(name))
        self.tolerance = tolerance
        self._index = {n: j for j, n in enumerate(names)}
        self._flagged: dict[frozenset[str], np.ndarray] = {}

    def project(self, raw: np.ndarray) -> np.ndarray:
        """The compared vector of a raw encoding."""
        if not self._bins:
            return raw
        out = raw.copy()
        for j, edges in self._bins:
            v = out[j]
            if v == v:  # NaN stays NaN
                out[j] = bisect.bisect_right(edges, v)
        return out

    def tolerance_for(self, ignore: Iterable[str]) -> np.ndarray:
        """The tolerances with the features in ``ignore`` (the neutralize flag) left out."""
        key = frozenset(n for n in ignore if n in self._index)
        if not key:
            return self.tolerance
        tol = self._flagged.get(key)
        if tol is None:
            tol = self.tolerance.copy()
            for n in key:
                tol[self._index[n]] = math.inf
            if len(self._flagged) < 64:
                self._flagged[key] = tol
        return tol


def _spread(spec: Any, reference: ReferenceProfile | None, j: int | None) -> float:
    if reference is not None and j is not None:
        width = float(reference.high[j] - reference.low[j])
        if math.isfinite(width) and width > 0:
            return width
    for lo, hi in (spec.clip or (None, None), (spec.min, spec.max)):
        if lo is not None and hi is not None and math.isfinite(hi - lo) and hi > lo:
            return float(hi - lo)
    return 0.0


_KERNELS: dict[str, Any] = {}


def _kernels() -> dict[str, Any]:
    """The compiled history scan and out-of-distribution count (numba, cached on disk).

    They live at the top level of :mod:`tabguard.serving._probing_kernels`, imported here on
    first use (importing numba costs the CLI time): numba keys its disk cache on a function's
    closure, so ``ring_observe`` defined as a closure over the other two kernels missed the
    cache in every new process and was compiled again (3-8 s per service start and worker).
    """
    if _KERNELS:
        return _KERNELS
    from tabguard.serving import _probing_kernels as k

    _KERNELS["scan"] = k.scan
    _KERNELS["out_count"] = k.out_count
    _KERNELS["ring_observe"] = k.ring_observe
    return _KERNELS


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
        Enables the out-of-distribution signal and sets the numeric tolerances.
    transform : FeatureTransform, optional
        The served model's transform (see :class:`ProbingSpace`).
    """

    def __init__(
        self,
        contract: Contract,
        config: ProbingConfig | None = None,
        store: ProbingStore | None = None,
        reference: ReferenceProfile | None = None,
        transform: FeatureTransform | None = None,
    ) -> None:
        from tabguard.serving._reference import RawEncoder

        self.config = config or ProbingConfig()
        self.store: ProbingStore = store if store is not None else open_probing_store(self.config)
        self.encoder = RawEncoder(contract)
        names = self.encoder.feature_names
        self.reference = (
            reference
            if reference is not None and reference.features == names and reference.matches(contract)
            else None
        )
        self.space = ProbingSpace(contract, transform, self.reference, self.config.tolerance)
        self.gameable = self.space.gameable
        self._split = bool(self.gameable.any() and (~self.gameable).any())
        c = self.config
        self._minimum = [c.walk_min, c.gameable_min, c.boundary_min, c.ood_min]
        self._ood: tuple[Any, ...] | None = None
        self._min_out = self.reference.min_out if self.reference is not None else 0
        if self.reference is not None:
            ref = self.reference
            codes = [int(v) for c in ref.common for v in c if v == v and v >= 0]
            common = np.zeros((len(names), max(codes, default=0) + 1), dtype=np.bool_)
            for j, values in enumerate(ref.common):
                for v in values:
                    if v == v and v >= 0 and float(v).is_integer():
                        common[j, int(v)] = True
            self._ood = (np.asarray(ref.numeric, dtype=np.bool_), ref.low, ref.high, common)
        self._kernels = _kernels()
        self._ring_observe = self._kernels["ring_observe"]
        # The out-of-distribution arrays as ring_observe takes them (empty without a reference).
        if self._ood is not None:
            self._ood_args: tuple[Any, ...] = (*self._ood, self._min_out, True)
        else:
            none = np.zeros(0, dtype=np.bool_)
            self._ood_args = (
                none, np.zeros(0), np.zeros(0), np.zeros((0, 0), dtype=np.bool_), 0, False
            )  # fmt: skip
        self.unavailable = 0
        if type(self.store) is MemoryProbingStore:
            # Compiled (or loaded from numba's cache) now, not on the first request: the
            # kernel is called with these types on every query.
            width = len(names)
            ring = _Ring(1, width)
            self._ring_observe(
                ring.times, ring.vectors, ring.bits, ring.meta, np.empty(_N_SIGNALS + 1, np.int64),
                0.0, 1.0, np.zeros(width), np.zeros(width), self.space.tolerance, self.gameable,
                int(c.max_changed), self._split, False, *self._ood_args,
            )  # fmt: skip

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
        ignore: Iterable[str] = (),
    ) -> ProbingResult:
        """Record one query of ``client`` and return its signals and the client's state.

        ``vector`` is the raw encoding (:meth:`encode`); ``ignore`` names features the model
        does not read for this request (the ``neutralize`` flag). Never raises for a store
        failure: the result then has ``available=False``.
        """
        now = time.time() if now is None else now
        store = self.store
        if type(store) is MemoryProbingStore:
            result = self._observe_ring(store, client, vector, score, threshold, now, ignore)
            if result is not None:
                return result
        try:
            state = await self.store.load(client, now)
        except BackendUnavailableError:
            self.unavailable += 1
            return ProbingResult(available=False)
        raw = np.asarray(vector, dtype=float)
        x = self.space.project(raw)
        signals = self._signals(state, raw, x, score, threshold, ignore)
        counts = state.signal_counts()
        this = signal_bits(signals)
        counts = [n + ((this >> i) & 1) for i, n in enumerate(counts)]
        n = state.count + 1
        c = self.config
        reasons = tuple(
            s
            for i, s in enumerate(SIGNALS)
            if (this >> i) & 1
            and counts[i] >= self._minimum[i]
            and (s != "boundary" or counts[i] >= c.boundary_share * n)
        )
        flagged_until = now + c.cooldown if reasons else None
        try:
            await self.store.save(client, Entry(now, subject, x, signals), flagged_until)
        except BackendUnavailableError:
            self.unavailable += 1
        flagged = bool(reasons) or state.flagged_until > now
        return ProbingResult(signals, flagged, reasons, dict(zip(SIGNALS, counts, strict=True)))

    def _observe_ring(
        self,
        store: MemoryProbingStore,
        client: str,
        vector: np.ndarray,
        score: float | None,
        threshold: float | None,
        now: float,
        ignore: Iterable[str],
    ) -> ProbingResult | None:
        """:meth:`observe` on a memory store in one compiled call (``ring_observe``).

        The same steps and result as load, :meth:`_signals` and save; ``None`` (take the
        general path) when the client's ring holds vectors of another width.
        """
        raw = np.asarray(vector, dtype=float)
        x = self.space.project(raw)
        c = self.config
        boundary = (
            score is not None
            and threshold is not None
            and abs(score - threshold) <= c.boundary_margin
        )
        tol = self.space.tolerance_for(ignore)
        out = np.empty(_N_SIGNALS + 1, dtype=np.int64)
        with store._lock:
            ring = store._clients.get(client)
            if ring is not None and ring.vectors.shape[1] != len(x):
                return None
            ring = store.ring(client, len(x))
            flagged_before = ring.flagged_until
            this = self._ring_observe(
                ring.times, ring.vectors, ring.bits, ring.meta, out, now, float(store.window),
                x, raw, tol, self.gameable, c.max_changed, self._split, boundary,
                *self._ood_args,
            )  # fmt: skip
            counts = out.tolist()
            n = counts.pop()
            reasons = tuple(
                s
                for i, s in enumerate(SIGNALS)
                if (this >> i) & 1
                and counts[i] >= self._minimum[i]
                and (s != "boundary" or counts[i] >= c.boundary_share * n)
            )
            if reasons:
                ring.flagged_until = now + c.cooldown
        flagged = bool(reasons) or flagged_before > now
        return ProbingResult(
            _SIGNAL_SETS[this], flagged, reasons, dict(zip(SIGNALS, counts, strict=True))
        )

    def _signals(
        self,
        state: ClientState,
        raw: np.ndarray,
        x: np.ndarray,
        score: float | None,
        threshold: float | None,
        ignore: Iterable[str],
    ) -> tuple[str, ...]:
        out: list[str] = []
        history = state.vectors
        if state.count and history.ndim == 2 and history.shape[1] == len(x):
            walk, variation = self._kernels["scan"](
                history,
                state.start,
                state.count,
                x,
                self.space.tolerance_for(ignore),
                self.gameable,
                self.config.max_changed,
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
        ood = self._ood
        if ood is not None and self._kernels["out_count"](raw, *ood) >= self._min_out:
            out.append("out_of_distribution")
        return tuple(out)

    async def aclose(self) -> None:
        """Release the store."""
        await self.store.aclose()
