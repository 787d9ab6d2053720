"""Simulated production traffic with a known attack, through the real scoring pipeline.

:func:`simulate_traffic` replays applications drawn from a data set (the bundled credit data by
default) against a :class:`~tabguard.serving.ScoringService` over weeks of **simulated** time:
every request takes the path a live one takes (authentication, contract validation,
sanitisation, scoring, the decision layer, probing detection, the prediction log), only its
clock is simulated. The traffic has what makes naive monitoring page all day:

* daily seasonality (quiet nights whose applicants are riskier) and a weekly one (weekends with
  another channel mix: branches are mostly closed);
* segments of very different sizes (request ``segment`` ``channel``: online / branch / partner,
  each with its own applicant mix; the contract's segment features come with the rows);
* a public holiday (low volume, a Sunday-like mix) that later weeks use as a baseline;
* then, from a known onset, an attack: a share of one segment's applicants sets one gameable
  feature to the value that lowers their risk score most (found by trial, as an attacker
  would), so that the segment's denial rate falls.

The ground truth (onset, segment, feature, value) is returned and written as JSON.

Time on the request path
------------------------
The clock is injected through the Python API only (``ScoringService(clock=...)``); a client
cannot set it. What else reads time on the request path, and what the simulator does about it:

* **rate limits** count in real-time windows of the ``limits`` library: the simulator runs the
  service with limits off (its clients are honest load spread over simulated weeks; limits are
  measured by the probing attacker against a live service);
* **flag changes** are picked up by the service's watcher every ``flag_interval`` real seconds:
  the simulator refreshes the watcher explicitly after every monitoring step, so a flag set by
  an alert is in force from the next simulated request on;
* **probing detection** and **delayed decisions** take the request's (simulated) time from the
  context, so they behave as they would live;
* **latency** stays real (it is the service's own cost).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tabguard._plain import plain
from tabguard.errors import TabguardError

if TYPE_CHECKING:
    from tabguard.contract import Contract
    from tabguard.flags import BaseFlagStore
    from tabguard.serving import PredictionLog, ScoringService, ServingConfig
    from tabguard.training import ModelBundle

#: A day's shape of the arrival rate, hour 0..23 (UTC): quiet nights, a working-day plateau
#: and an evening peak of online applications. Only the proportions matter.
DEFAULT_HOURLY = (
    0.25, 0.15, 0.1, 0.1, 0.1, 0.2, 0.4, 0.8, 1.2, 1.5, 1.6, 1.6,
    1.5, 1.5, 1.6, 1.6, 1.5, 1.4, 1.4, 1.5, 1.4, 1.1, 0.8, 0.45,
)  # fmt: skip


class TrafficError(TabguardError, ValueError):
    """An option of the traffic simulator breaks its rule (names the option and the value)."""

    def __init__(self, option: str, rule: str, value: Any) -> None:
        self.option, self.rule, self.value = option, rule, value
        super().__init__(f"traffic option {option!r}: {rule}; got {value!r}")


@dataclass(frozen=True)
class Channel:
    """One value of the request segment ``channel``.

    Attributes
    ----------
    name : str
        The segment value (``online``, ``branch``, ``partner``).
    share : float
        Share of a weekday's applications (shares are normalised over channels).
    weekend : float
        Volume on Saturdays, Sundays and holidays relative to a weekday.
    risk : float
        Tilt of the channel's applicants towards high scores (0 = drawn like the data; +0.5
        draws applicants ``e^{0.5 z}`` times as often for a score ``z`` standard deviations
        above the mean): channels differ in their legitimate denial rates.
    """

    name: str
    share: float
    weekend: float = 1.0
    risk: float = 0.0


DEFAULT_CHANNELS = (
    Channel("online", 0.62, weekend=1.1, risk=0.0),
    Channel("branch", 0.28, weekend=0.2, risk=-0.3),
    Channel("partner", 0.10, weekend=0.7, risk=0.4),
)


@dataclass(frozen=True)
class AttackSpec:
    """The attack: from ``onset``, applicants of one segment game one feature.

    Attributes
    ----------
    onset : timedelta
        Time after the start of the simulation when the attack begins.
    segment : str
        The attacked channel.
    feature : str
        The feature the attackers set (a gameable one in a real attack).
    value : Any, optional
        The value they all set; ``None`` (default) = each applicant's own best value: the
        candidate that moves *their* score furthest towards approval (what trial and error
        finds, as the probing attacker does).
    share : float
        Share of the segment's applicants who game the feature once the attack started.
    """

    onset: timedelta
    segment: str
    feature: str
    value: Any = None
    share: float = 0.6


@dataclass(frozen=True)
class TrafficOptions:
    """What traffic :func:`simulate_traffic` sends (validated at construction).

    Attributes
    ----------
    start : datetime
        Simulated time of the first request (aware; default Monday 2026-01-05 00:00 UTC).
    days : int
        Simulated days (>= 14: a week for the seed rule's baseline, "the same 6 h last
        week", and a week to watch; a median-of-weeks baseline needs more, the proof of
        issue 8 runs four weeks).
    per_day : float
        Mean applications on a weekday (all channels).
    channels : tuple of Channel
        The ``channel`` segment values, their sizes, weekend factors and risk tilts.
    hourly : tuple of 24 floats
        Shape of a day's arrival rate.
    night_risk : float
        Extra risk tilt of applicants between 00:00 and 06:00 (the denial rate has a daily
        pattern, not only the volume).
    holidays : tuple of date
        Public holidays (volume ``holiday_volume`` of a weekend day, weekend mix).
    holiday_volume : float
    attack : AttackSpec or None
    seed : int
        Seeds arrivals, applicants and attackers: the same options give the same traffic.
    """

    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)
    days: int = 42
    per_day: float = 2000.0
    channels: tuple[Channel, ...] = DEFAULT_CHANNELS
    hourly: tuple[float, ...] = DEFAULT_HOURLY
    night_risk: float = 0.3
    holidays: tuple[date, ...] = (date(2026, 1, 22),)
    holiday_volume: float = 0.4
    attack: AttackSpec | None = field(
        default_factory=lambda: AttackSpec(
            onset=timedelta(days=37, hours=11), segment="partner", feature="PAY_AMT1"
        )
    )
    seed: int = 0

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise TrafficError("start", "must be timezone-aware (UTC)", self.start)
        if not isinstance(self.days, int) or self.days < 14:
            raise TrafficError("days", "must be an integer >= 14 (two weeks)", self.days)
        if not (self.per_day > 0 and math.isfinite(self.per_day)):
            raise TrafficError("per_day", "must be a positive number", self.per_day)
        if not self.channels:
            raise TrafficError("channels", "must name at least one channel", self.channels)
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise TrafficError("channels", "channel names must be distinct", names)
        for c in self.channels:
            if not (c.share > 0 and c.weekend >= 0):
                raise TrafficError(f"channels.{c.name}", "share > 0 and weekend >= 0", c)
        if len(self.hourly) != 24 or min(self.hourly) < 0 or sum(self.hourly) <= 0:
            raise TrafficError("hourly", "must be 24 non-negative weights", self.hourly)
        if not 0 <= self.holiday_volume <= 1:
            raise TrafficError("holiday_volume", "must be in [0, 1]", self.holiday_volume)
        a = self.attack
        if a is not None:
            if a.segment not in names:
                raise TrafficError("attack.segment", f"must be one of {names}", a.segment)
            if not timedelta(0) < a.onset < timedelta(days=self.days):
                raise TrafficError(
                    "attack.onset", f"must fall inside the {self.days} simulated days", a.onset
                )
            if not 0 < a.share <= 1:
                raise TrafficError("attack.share", "must be in (0, 1]", a.share)

    @property
    def end(self) -> datetime:
        """Simulated time right after the last request."""
        return self.start + timedelta(days=self.days)


@dataclass
class TrafficResult:
    """What was sent and decided, and the ground truth of the attack.

    Attributes
    ----------
    requests : DataFrame
        One row per request: ``time``, ``channel``, ``decision_id``, ``attacked``,
        ``http_status``, ``status``, ``decision``, ``score``, ``flags_version``.
    truth : dict
        ``onset`` (ISO time), ``segment`` (``{"channel": ...}``), ``feature``, ``value``,
        ``share``, plus the options; ``None`` values when there is no attack.
    steps : list of datetime
        Simulated times at which ``on_step`` ran.
    """

    requests: pd.DataFrame
    truth: dict[str, Any]
    steps: list[datetime] = field(default_factory=list)

    def denial_rate(
        self,
        start: datetime,
        end: datetime,
        channel: str | None = None,
        *,
        attacked_only: bool = False,
    ) -> tuple[float, int]:
        """Denied share of decided requests in ``[start, end)``, and how many there were."""
        df = self.requests
        m = (df["time"] >= start) & (df["time"] < end) & df["decision"].notna()
        if channel is not None:
            m &= df["channel"] == channel
        if attacked_only:
            m &= df["attacked"]
        n = int(m.sum())
        return (float((df.loc[m, "decision"] == "deny").mean()) if n else float("nan")), n

    def write_truth(self, path: str | Path) -> Path:
        """Write the ground truth as JSON; returns the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.truth, indent=2, default=str) + "\n", encoding="utf-8")
        return p


class SimulatedClock:
    """A clock the simulator moves; pass it as ``ScoringService(clock=...)``."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        """Move the clock (simulated time never goes backwards)."""
        if at < self.at:
            raise ValueError(f"simulated time cannot go back from {self.at} to {at}")
        self.at = at


#: Called at every step boundary with the simulated time and the service (after the log was
#: flushed): run the monitor there. The flags are refreshed after it returns.
StepHook = Callable[[datetime, "ScoringService"], None]


def attack_value(
    bundle: ModelBundle, population: pd.DataFrame, feature: str, *, sample: int = 400, seed: int = 0
) -> Any:
    """The one value of ``feature`` that moves the mean score furthest towards approval.

    Candidates (:func:`_candidates`) are the contract's categories, or for a number its bin
    edges, neutral value and quantiles of the data inside the contract's range.
    """
    rows = population.sample(min(sample, len(population)), random_state=seed)
    towards_approval = -1.0 if bundle.contract.decision.positive_means == "deny" else 1.0
    best, best_gain = None, -math.inf
    for value in _candidates(bundle.contract, population, feature):
        trial = rows.copy()
        trial[feature] = value
        gain = towards_approval * float(np.mean(bundle.main.positive_proba(trial)))
        if gain > best_gain:
            best, best_gain = value, gain
    return best


def _candidates(contract: Contract, population: pd.DataFrame, feature: str) -> list[Any]:
    """Values an attacker tries: categories, or bin edges, the neutral value and quantiles."""
    spec = contract.features.get(feature)
    if spec is None:
        raise TrafficError("attack.feature", "must be a feature of the contract", feature)
    if spec.type in ("category", "boolean"):
        return list(spec.categories or [False, True])
    col = pd.to_numeric(population[feature], errors="coerce").dropna()
    qs = col.quantile([0.0, 0.05, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0]).tolist()
    extra = [*(spec.bins or []), *([spec.neutral] if spec.neutral is not None else [])]
    values = sorted({float(v) for v in [*qs, *extra] if math.isfinite(float(v))})
    lo = spec.min if spec.min is not None else -math.inf
    hi = spec.max if spec.max is not None else math.inf
    values = [v for v in values if lo <= v <= hi]
    if spec.type == "integer":
        return sorted({round(v) for v in values})
    return values


def best_values(
    bundle: ModelBundle,
    population: pd.DataFrame,
    feature: str,
    candidates: Sequence[Any] | None = None,
) -> list[Any]:
    """Each applicant's best value of ``feature``: the candidate moving their score furthest
    towards approval (ties keep their own value).

    ``candidates`` default to :func:`_candidates` of ``population``; pass those of the whole
    population to search a part of it (each applicant's answer depends on their row only).
    """
    towards_approval = -1.0 if bundle.contract.decision.positive_means == "deny" else 1.0
    best = towards_approval * bundle.main.positive_proba(population)
    values: list[Any] = population[feature].tolist()
    if candidates is None:
        candidates = _candidates(bundle.contract, population, feature)
    for v in candidates:
        trial = population.copy()
        trial[feature] = v
        gain = towards_approval * bundle.main.positive_proba(trial)
        better = gain > best + 1e-12
        best = np.where(better, gain, best)
        for i in np.flatnonzero(better):
            values[i] = v
    return [plain(v) for v in values]


def _records(population: pd.DataFrame, contract: Contract) -> list[dict[str, Any]]:
    cols = [c for c in contract.features if c in population.columns]
    out = []
    for row in population[cols].to_dict(orient="records"):
        rec: dict[str, Any] = {}
        for k, v in row.items():
            if isinstance(v, float) and math.isnan(v):
                continue
            rec[str(k)] = plain(v)
        out.append(rec)
    return out


def simulate_traffic(
    bundle: ModelBundle,
    config: ServingConfig,
    options: TrafficOptions | None = None,
    *,
    population: pd.DataFrame | None = None,
    flag_store: BaseFlagStore | None = None,
    prediction_log: PredictionLog | None = None,
    on_step: StepHook | None = None,
    step: timedelta = timedelta(hours=1),
) -> TrafficResult:
    """Send simulated weeks of applications through the scoring service of ``bundle``.

    Parameters
    ----------
    bundle : ModelBundle
        The model served (its contract validates the requests).
    config : ServingConfig
        ``tabguard.toml`` of the home whose stores receive the traffic (its prediction log and
        flag store, unless given). Rate limits are off (see the module notes).
    options : TrafficOptions, optional
    population : DataFrame, optional
        Applicants to draw from (default: the bundled credit data).
    flag_store, prediction_log : optional
        Ready stores (default: the configured ones, opened and closed here).
    on_step : callable, optional
        ``on_step(time, service)`` at every ``step`` boundary of simulated time, after the log
        was flushed (the monitor runs there); the service's flags are re-read right after.
    step : timedelta
        Simulated time between ``on_step`` calls.

    Returns
    -------
    TrafficResult
    """
    return asyncio.run(
        _simulate(
            bundle,
            config,
            options or TrafficOptions(),
            population,
            flag_store,
            prediction_log,
            on_step,
            step,
        )
    )


async def _simulate(
    bundle: ModelBundle,
    config: ServingConfig,
    opts: TrafficOptions,
    population: pd.DataFrame | None,
    flag_store: BaseFlagStore | None,
    prediction_log: PredictionLog | None,
    on_step: StepHook | None,
    step: timedelta,
) -> TrafficResult:
    from tabguard.datasets import load_credit_default
    from tabguard.serving import AsyncRateLimiter, MemoryKeyStore, ScoringService

    if step <= timedelta(0) or step > timedelta(days=1):
        raise TrafficError("step", "must be a positive duration of at most a day", step)
    contract = bundle.contract
    pop = (population if population is not None else load_credit_default()).reset_index(drop=True)
    missing = [f for f in contract.features if f not in pop.columns]
    if missing:
        raise TrafficError("population", f"lacks the contract's features {missing[:5]}", None)
    records = _records(pop, contract)
    rng = np.random.default_rng(opts.seed)
    scores = bundle.main.positive_proba(pop)
    z = (scores - scores.mean()) / (scores.std() or 1.0)
    z = np.clip(z, -3, 3)
    weights: dict[float, np.ndarray] = {}

    def draw(risk: float, n: int) -> np.ndarray:
        key = round(risk, 6)
        if key not in weights:
            w = np.exp(key * z)
            weights[key] = np.cumsum(w / w.sum())
        idx = np.searchsorted(weights[key], rng.random(n), side="right")
        return np.minimum(idx, len(records) - 1)

    attack = opts.attack
    value: Any = None
    # Each attacker's own best value, searched when they first arrive (in one batch per
    # simulated hour): the answer depends on their row only, and most applicants never attack.
    per_applicant: dict[int, Any] | None = None
    candidates: list[Any] = []
    if attack is not None:
        if attack.feature not in contract.features:
            raise TrafficError(
                "attack.feature", "must be a feature of the contract", attack.feature
            )
        value = attack.value
        if value is None:
            per_applicant = {}
            candidates = _candidates(contract, pop, attack.feature)
    onset = opts.start + attack.onset if attack is not None else None

    keys = MemoryKeyStore()
    tokens = {c.name: keys.create(f"{c.name}-client", "decide,score")[1] for c in opts.channels}
    clock = SimulatedClock(opts.start)
    service = ScoringService(
        bundle,
        config,
        key_store=keys,
        flag_store=flag_store,
        prediction_log=prediction_log,
        limiter=AsyncRateLimiter(per_client=None, per_subject=None),
        clock=clock,
    )
    service.start()
    # The background watcher would pick a flag change up after some *real* time, which is an
    # arbitrary amount of simulated time: the simulator refreshes explicitly instead.
    service.watcher.stop()
    shares = np.array([c.share for c in opts.channels], dtype=float)
    shares /= shares.sum()
    hourly = np.array(opts.hourly, dtype=float)
    hourly /= hourly.sum()
    holidays = set(opts.holidays)
    rows: dict[str, list[Any]] = {
        k: []
        for k in ("time", "channel", "decision_id", "attacked", "http_status", "status",
                  "decision", "score", "flags_version")
    }  # fmt: skip
    steps: list[datetime] = []
    next_step = opts.start + step
    n_sent = 0

    def _plan_hour(hour: int) -> tuple[datetime, list[tuple[float, int, int]], list[bool]]:
        """One simulated hour's arrivals ``(second, channel, applicant)`` and who games."""
        t0 = opts.start + timedelta(hours=hour)
        day = t0.date()
        off = t0.weekday() >= 5 or day in holidays
        arrivals: list[tuple[float, int, int]] = []
        for ci, ch in enumerate(opts.channels):
            lam = opts.per_day * hourly[t0.hour] * shares[ci]
            if off:
                lam *= ch.weekend
            if day in holidays:
                lam *= opts.holiday_volume
            n = int(rng.poisson(lam))
            if n == 0:
                continue
            risk = ch.risk + (opts.night_risk if t0.hour < 6 else 0.0)
            who = draw(risk, n)
            at = np.sort(rng.random(n)) * 3600.0
            arrivals.extend((float(s), ci, int(r)) for s, r in zip(at, who, strict=True))
        arrivals.sort()
        gaming = [
            attack is not None
            and onset is not None
            and t0 + timedelta(seconds=seconds) >= onset
            and opts.channels[ci].name == attack.segment
            and rng.random() < attack.share
            for seconds, ci, _ in arrivals
        ]
        return t0, arrivals, gaming

    try:
        for first in range(0, opts.days * 24, 24):
            # A day's arrivals and who games are drawn first (the random draws in the order
            # deciding hour by hour, request by request would take: the requests draw nothing),
            # so each day's new attackers are searched for their best value in one batch.
            day_plan = [_plan_hour(first + h) for h in range(24)]
            if per_applicant is not None and attack is not None:
                new = sorted(
                    {
                        r
                        for _, arrivals, gaming in day_plan
                        for (_, _, r), g in zip(arrivals, gaming, strict=True)
                        if g
                    }
                    - per_applicant.keys()
                )
                if new:
                    found = best_values(bundle, pop.iloc[new], attack.feature, candidates)
                    per_applicant.update(zip(new, found, strict=True))
            for t0, arrivals, gaming in day_plan:
                for (seconds, ci, r), attacked in zip(arrivals, gaming, strict=True):
                    t = t0 + timedelta(seconds=seconds)
                    while t >= next_step:
                        steps.append(next_step)
                        _run_step(service, on_step, next_step)
                        next_step += step
                    ch = opts.channels[ci]
                    features = records[r]
                    if attacked and attack is not None:
                        chosen = per_applicant[r] if per_applicant is not None else value
                        features = {**features, attack.feature: chosen}
                    n_sent += 1
                    body = json.dumps(
                        {
                            "subject_id": f"sim-{opts.seed}-{n_sent}",
                            "features": features,
                            "segment": {"channel": ch.name},
                        }
                    ).encode()
                    clock.set(t)
                    ctx = await service.decide(f"Bearer {tokens[ch.name]}", body)
                    rows["time"].append(t)
                    rows["channel"].append(ch.name)
                    rows["decision_id"].append(ctx.decision_id)
                    rows["attacked"].append(bool(attacked))
                    rows["http_status"].append(ctx.http_status)
                    rows["status"].append(ctx.status)
                    rows["decision"].append(ctx.decision)
                    rows["score"].append(ctx.score)
                    rows["flags_version"].append(ctx.flags.version)
        while next_step <= opts.end:
            clock.set(next_step)
            steps.append(next_step)
            _run_step(service, on_step, next_step)
            next_step += step
    finally:
        await service.aclose()
    requests = pd.DataFrame(rows)
    truth = {
        "start": opts.start.isoformat(),
        "end": opts.end.isoformat(),
        "onset": onset.isoformat() if onset is not None else None,
        "segment": {"channel": attack.segment} if attack is not None else None,
        "feature": attack.feature if attack is not None else None,
        "value": value if per_applicant is None else "per applicant (their best candidate)",
        "share": attack.share if attack is not None else None,
        "requests": len(requests),
        "attacked_requests": int(requests["attacked"].sum()) if len(requests) else 0,
        "options": _options_json(opts),
    }
    return TrafficResult(requests, truth, steps)


def _run_step(service: ScoringService, on_step: StepHook | None, at: datetime) -> None:
    if on_step is None:
        return
    service.log.flush()
    on_step(at, service)
    service.watcher.refresh()


def _options_json(opts: TrafficOptions) -> dict[str, Any]:
    out = asdict(opts)
    out["start"] = opts.start.isoformat()
    out["holidays"] = [d.isoformat() for d in opts.holidays]
    if opts.attack is not None:
        out["attack"]["onset"] = str(opts.attack.onset)
    return out


def parse_channels(items: Sequence[str]) -> tuple[Channel, ...]:
    """Parse ``["online:0.6:1.1:0", "partner:0.1"]`` (name:share[:weekend[:risk]])."""
    out = []
    for item in items:
        parts = item.split(":")
        if not 2 <= len(parts) <= 4 or not parts[0]:
            raise TrafficError("channel", "must be NAME:SHARE[:WEEKEND[:RISK]]", item)
        try:
            nums = [float(p) for p in parts[1:]]
        except ValueError:
            raise TrafficError("channel", "SHARE, WEEKEND and RISK must be numbers", item) from None
        out.append(Channel(parts[0], *nums))
    return tuple(out)
