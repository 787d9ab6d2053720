"""A black-box probing attacker (requirement L2, seed 002): flip my own decision by trial and error.

The attacker holds one application that the service denies and controls only the gameable
fields of it (the contract's ``gameable`` features: what an applicant self-declares). It sends
variants of the application and watches the answers, until one is approved or its budget is
spent. It sees only what a client sees: the decision, the score if the API returns it, status
codes and ``Retry-After``.

Strategies
----------
``greedy`` (needs scores)
    Coordinate descent: try the values of a grid on one gameable field, move to the one that
    lowers the risk score most, go on with the next field, repeat; random jumps when stuck.
``walk`` then ``random`` (decision only)
    First one field at a time through its grid (the cheapest search when one field decides),
    then random combinations of all gameable fields.
``bisect`` (decision only)
    For one field at a time, try the two ends of its range; when one is approved, bisect
    between the application's own value and that end down to one unit (the field's
    resolution): the approval boundary, bracketed exactly, with the smallest change.
``auto``
    ``greedy`` when the first answer carries a score, else ``walk``.

Disguises (any strategy): ``nudge`` adds ``step × i`` to a field on the i-th query (a
non-gameable amount moved by one unit per query, so no two queries are equal), ``jitter``
adds a random amount up to ``± size`` to fields on every query, ``swap`` cycles a field
through its categories. They are what an attacker adds to hide a walk from a detector that
compares queries for equality.

Adaptation to defences: a ``subject_limit`` 429 makes it switch to a new subject id (farmed
accounts) while it has some left (``max_subjects``); a wait (``Retry-After``, a delayed
decision) is accepted while the total stays within ``max_wait`` seconds: it sleeps for real
(``sleep=True``) or, by default, stops and reports the wait it would need — the service's
clock cannot be skipped from outside. The result counts queries, subjects and waits, so the
cost of an attack can be compared with and without each defence (``benchmarks/attacker.py``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import numpy as np

from tabguard.contract import Contract, FeatureSpec

Strategy = Literal["auto", "greedy", "walk", "random", "bisect"]


@dataclass(frozen=True)
class Answer:
    """What the service answered to one query.

    Attributes
    ----------
    status : int
        HTTP status (200 decision, 429 throttled, ...).
    decision : str or None
        ``approve``, ``deny`` or ``review`` when one was returned.
    score : float or None
        The score, when the API shows it.
    reason : str or None
        The refusal reason (``client_limit``, ``subject_limit``, ``probing_throttle``, ...).
    retry_after : float or None
        Seconds to wait before retrying (429), when given.
    waited : float
        Seconds spent waiting for a delayed decision.
    """

    status: int
    decision: str | None = None
    score: float | None = None
    reason: str | None = None
    retry_after: float | None = None
    waited: float = 0.0


class DecisionTarget(Protocol):
    """Anything that answers decision requests: the HTTP API, an in-process client."""

    def decide(self, subject_id: str, features: Mapping[str, Any]) -> Answer:
        """Ask for a decision about ``subject_id`` with ``features``."""
        ...


class HttpTarget:
    """``POST /v1/decisions`` (and ``GET`` for delayed decisions) with an API key.

    Parameters
    ----------
    client : httpx.Client or str
        A base URL, or a ready client (e.g. FastAPI's ``TestClient`` for an in-process app).
    key : str
        The attacker's API key.
    max_delay : float
        Longest delay (s) the target waits for a delayed decision before giving up.
    sleep : callable
        ``time.sleep`` (injectable for tests).
    """

    def __init__(
        self,
        client: Any,
        key: str,
        *,
        max_delay: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if isinstance(client, str):
            import httpx

            client = httpx.Client(base_url=client, timeout=30.0)
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"}
        self.max_delay = max_delay
        self.sleep = sleep

    def decide(self, subject_id: str, features: Mapping[str, Any]) -> Answer:
        """Send one application; follow a delayed decision until it is released."""
        r = self.client.post(
            "/v1/decisions",
            json={"subject_id": subject_id, "features": dict(features)},
            headers=self.headers,
        )
        body = _json(r)
        if r.status_code == 202:
            return self._await(body)
        if r.status_code == 200:
            return Answer(200, body.get("decision"), body.get("score"))
        retry = r.headers.get("Retry-After")
        return Answer(
            r.status_code,
            reason=body.get("reason") or body.get("error"),
            retry_after=float(retry) if retry and retry.replace(".", "", 1).isdigit() else None,
        )

    def _await(self, ticket: Mapping[str, Any]) -> Answer:
        waited = 0.0
        url = f"/v1/decisions/{ticket.get('decision_id')}"
        while True:
            available = datetime.fromisoformat(str(ticket["available_at"]))
            wait = max(0.0, (available - datetime.now(UTC)).total_seconds())
            if waited + wait > self.max_delay:
                return Answer(202, reason="delayed", retry_after=wait, waited=waited)
            self.sleep(wait + 0.001)
            waited += wait
            r = self.client.get(url, headers=self.headers)
            body = _json(r)
            if r.status_code == 200:
                return Answer(200, body.get("decision"), body.get("score"), waited=waited)
            if r.status_code != 202:
                return Answer(r.status_code, reason=body.get("error"), waited=waited)
            ticket = body


def _json(response: Any) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class AttackConfig:
    """Budget and behaviour of the attacker.

    Attributes
    ----------
    max_queries : int
        Decision requests the attacker is willing to send.
    max_subjects : int
        Subject ids it can use (1: its own; more: farmed accounts against per-subject limits).
    max_wait : float
        Total seconds of waiting (Retry-After, delays) it accepts.
    sleep : bool
        Really sleep through waits (else stop at the first wait and report it).
    strategy : {'auto', 'greedy', 'walk', 'random'}
    grid : int
        Candidate values per numeric field.
    features : tuple of str, optional
        Fields it controls (default: the contract's gameable features).
    goal : str
        The decision it wants (``approve``).
    seed : int
    nudge : dict of str to float
        Field -> step: the i-th query sends ``value + step * i`` (clamped to the valid range).
    jitter : dict of str to float
        Field -> size: every query adds a uniform random amount in ``[-size, size]``.
    swap : tuple of str
        Category fields cycled through their categories, one step per query.
    """

    max_queries: int = 300
    max_subjects: int = 1
    max_wait: float = 3600.0
    sleep: bool = False
    strategy: Strategy = "auto"
    grid: int = 8
    features: tuple[str, ...] | None = None
    goal: str = "approve"
    seed: int = 0
    nudge: dict[str, float] = field(default_factory=dict)
    jitter: dict[str, float] = field(default_factory=dict)
    swap: tuple[str, ...] = ()


@dataclass
class AttackResult:
    """The outcome of one attack.

    Attributes
    ----------
    success : bool
        Whether a variant got the goal decision.
    queries : int
        Decision requests sent (refused ones included) until success or the end.
    answered : int
        Requests that returned a decision.
    subjects : int
        Subject ids used.
    waited : float
        Seconds waited (Retry-After slept, delayed decisions).
    wait_needed : float or None
        When it stopped at a wait: the seconds the service asked it to wait.
    stopped : str
        ``success``, ``max_queries``, ``max_subjects``, ``max_wait``, ``refused:<status>``.
    strategy : str
        The strategy used.
    final : dict or None
        The approved variant.
    """

    success: bool
    queries: int
    answered: int
    subjects: int
    waited: float
    wait_needed: float | None
    stopped: str
    strategy: str
    final: dict[str, Any] | None = None
    trace: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the trace)."""
        out = asdict(self)
        out.pop("trace")
        return out


class _StopAttackError(Exception):
    def __init__(self, reason: str, wait: float | None = None) -> None:
        self.reason, self.wait = reason, wait


class ProbingAttacker:
    """Trial-and-error attacker on the gameable fields of one application.

    Parameters
    ----------
    target : DecisionTarget
    contract : Contract
        Tells the attacker which fields are self-declared and their plausible ranges (what a
        real applicant knows about the form it fills).
    config : AttackConfig, optional

    Examples
    --------
    >>> attacker = ProbingAttacker(HttpTarget(client, key), contract)  # doctest: +SKIP
    >>> result = attacker.attack(denied_record, subject_prefix="mallory")  # doctest: +SKIP
    >>> result.success, result.queries  # doctest: +SKIP
    (True, 37)
    """

    def __init__(
        self, target: DecisionTarget, contract: Contract, config: AttackConfig | None = None
    ) -> None:
        self.target = target
        self.contract = contract
        self.config = config or AttackConfig()
        names = self.config.features or tuple(contract.gameable_features())
        unknown = [n for n in names if n not in contract.features]
        if unknown or not names:
            raise ValueError(
                f"attack features must be features of contract {contract.name!r}; got "
                f"{list(names)} (unknown: {unknown})"
            )
        self.features = list(names)
        # The attacker wants a lower P(positive) when a positive label means a denial.
        self.sign = 1.0 if contract.decision.positive_means == "deny" else -1.0
        self.grids = {n: _grid(contract.features[n], self.config.grid) for n in self.features}
        disguised = [*self.config.nudge, *self.config.jitter, *self.config.swap]
        unknown = [n for n in disguised if n not in contract.features]
        if unknown:
            raise ValueError(
                f"nudge, jitter and swap must name features of contract {contract.name!r}; "
                f"got unknown {unknown}"
            )
        self._noise = np.random.default_rng(self.config.seed + 1)

    def disguise(self, features: Mapping[str, Any], query: int) -> dict[str, Any]:
        """The features as sent on query number ``query`` (1-based), disguises applied."""
        out = dict(features)
        cfg = self.config
        for name, step in cfg.nudge.items():
            out[name] = _moved(self.contract.features[name], out.get(name), step * query)
        for name, size in cfg.jitter.items():
            delta = float(self._noise.uniform(-size, size))
            out[name] = _moved(self.contract.features[name], out.get(name), delta)
        for name in cfg.swap:
            cats = self.contract.features[name].categories or []
            if cats and out.get(name) in cats:
                out[name] = cats[(cats.index(out[name]) + query) % len(cats)]
        return out

    def attack(self, record: Mapping[str, Any], subject_prefix: str = "attacker") -> AttackResult:
        """Attack one application until the goal decision or the end of the budget."""
        rng = np.random.default_rng(self.config.seed)
        state = _State(self, dict(record), subject_prefix)
        strategy = self.config.strategy
        try:
            first = state.ask(dict(record))
            if first.decision == self.config.goal:
                return state.result(True, "success", "none", dict(record))
            if strategy == "auto":
                strategy = "greedy" if first.score is not None else "walk"
            if strategy == "greedy":
                found = self._greedy(state, dict(record), first, rng)
            elif strategy == "walk":
                found = self._walk(state, dict(record), rng) or self._random(state, record, rng)
            elif strategy == "bisect":
                found = self._bisect(state, dict(record), rng) or self._random(state, record, rng)
            else:
                found = self._random(state, record, rng)
        except _StopAttackError as stop:
            return state.result(False, stop.reason, strategy, None, stop.wait)
        if found is None:
            return state.result(False, "max_queries", strategy, None)
        return state.result(True, "success", strategy, found)

    # ---- strategies -----------------------------------------------------------------------

    def _greedy(
        self, state: _State, current: dict[str, Any], first: Answer, rng: np.random.Generator
    ) -> dict[str, Any] | None:
        if first.score is None:
            return self._walk(state, current, rng) or self._random(state, current, rng)
        best = self.sign * first.score
        while True:
            improved = False
            # coordinate descent: scan one field's grid, move to its best value at once
            for name in (str(n) for n in rng.permutation(self.features)):
                step: tuple[float, Any] | None = None
                for value in self.grids[name]:
                    if _same(current.get(name), value):
                        continue
                    candidate = {**current, name: value}
                    ans = state.ask(candidate)
                    if ans.decision == self.config.goal:
                        return candidate
                    if ans.score is not None and self.sign * ans.score < (
                        best if step is None else step[0]
                    ):
                        step = (self.sign * ans.score, value)
                if step is not None:
                    best, current = step[0], {**current, name: step[1]}
                    improved = True
            if improved:
                continue
            # stuck in a local minimum: jump on two random fields and go on from there
            current = dict(current)
            for name in rng.choice(self.features, size=min(2, len(self.features)), replace=False):
                grid = self.grids[str(name)]
                current[str(name)] = grid[int(rng.integers(len(grid)))]
            ans = state.ask(current)
            if ans.decision == self.config.goal:
                return current
            best = self.sign * ans.score if ans.score is not None else best

    def _walk(
        self, state: _State, record: dict[str, Any], rng: np.random.Generator
    ) -> dict[str, Any] | None:
        for name in rng.permutation(self.features):
            for value in self.grids[str(name)]:
                if _same(record.get(str(name)), value):
                    continue
                candidate = {**record, str(name): value}
                if state.ask(candidate).decision == self.config.goal:
                    return candidate
        return None

    def _bisect(
        self, state: _State, record: dict[str, Any], rng: np.random.Generator
    ) -> dict[str, Any] | None:
        for name in (str(n) for n in rng.permutation(self.features)):
            spec = self.contract.features[name]
            grid = self.grids[name]
            if not spec.is_numeric or len(grid) < 2 or record.get(name) is None:
                continue
            start = float(record[name])
            for end in (grid[-1], grid[0]):
                if _same(start, end):
                    continue
                candidate = {**record, name: end}
                if state.ask(candidate).decision != self.config.goal:
                    continue
                # denied at `start`, approved at `end`: halve the interval to one unit
                denied, approved = start, float(end)
                unit = 1.0 if spec.type == "integer" else 10.0 ** -(spec.decimals or 2)
                while abs(approved - denied) > unit:
                    mid = _value(spec, (denied + approved) / 2)
                    if _same(mid, denied) or _same(mid, approved):
                        break
                    if state.ask({**record, name: mid}).decision == self.config.goal:
                        approved = float(mid)
                    else:
                        denied = float(mid)
                return {**record, name: _value(spec, approved)}
        return None

    def _random(
        self, state: _State, record: Mapping[str, Any], rng: np.random.Generator
    ) -> dict[str, Any] | None:
        while True:
            candidate = dict(record)
            for name in self.features:
                grid = self.grids[name]
                candidate[name] = grid[int(rng.integers(len(grid)))]
            if state.ask(candidate).decision == self.config.goal:
                return candidate


class _State:
    """Query accounting: budget, subjects, waits, trace."""

    def __init__(self, attacker: ProbingAttacker, record: dict[str, Any], prefix: str) -> None:
        self.attacker = attacker
        self.config = attacker.config
        self.prefix = prefix
        self.subject_index = 0
        self.queries = 0
        self.answered = 0
        self.waited = 0.0
        self.trace: list[dict[str, Any]] = []

    @property
    def subject(self) -> str:
        return f"{self.prefix}-{self.subject_index}"

    def ask(self, features: dict[str, Any]) -> Answer:
        while True:
            if self.queries >= self.config.max_queries:
                raise _StopAttackError("max_queries")
            self.queries += 1
            sent = self.attacker.disguise(features, self.queries)
            ans = self.attacker.target.decide(self.subject, sent)
            self.waited += ans.waited
            self.trace.append({"q": self.queries, "subject": self.subject, **asdict(ans)})
            if ans.status == 200:
                self.answered += 1
                return ans
            farm = ans.status == 429 and ans.reason == "subject_limit"
            if farm and self.subject_index + 1 < self.config.max_subjects:
                self.subject_index += 1  # a fresh (farmed) account
                continue
            if ans.status in (429, 202):
                wait = ans.retry_after if ans.retry_after is not None else 1.0
                if not self.config.sleep or self.waited + wait > self.config.max_wait:
                    reason = "max_subjects" if ans.reason == "subject_limit" else "max_wait"
                    raise _StopAttackError(reason, wait)
                time.sleep(wait)
                self.waited += wait
                continue
            raise _StopAttackError(f"refused:{ans.status}")

    def result(
        self,
        success: bool,
        stopped: str,
        strategy: str,
        final: dict[str, Any] | None,
        wait_needed: float | None = None,
    ) -> AttackResult:
        return AttackResult(
            success=success,
            queries=self.queries,
            answered=self.answered,
            subjects=self.subject_index + 1,
            waited=self.waited,
            wait_needed=wait_needed,
            stopped=stopped,
            strategy=strategy,
            final=final,
            trace=self.trace,
        )


def _value(spec: FeatureSpec, x: float) -> Any:
    """``x`` as the field's type (integers rounded, numbers to their precision)."""
    if spec.type == "integer":
        return round(x)
    return round(x, spec.decimals) if spec.decimals is not None else x


def _moved(spec: FeatureSpec, value: Any, delta: float) -> Any:
    """A numeric value moved by ``delta`` and kept within the valid range."""
    if value is None or not spec.is_numeric:
        return value
    x = float(value) + delta
    if spec.min is not None:
        x = max(x, float(spec.min))
    if spec.max is not None:
        x = min(x, float(spec.max))
    return _value(spec, x)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) or (float(a) == float(b))
    except (TypeError, ValueError):
        return False


def _grid(spec: FeatureSpec, n: int) -> list[Any]:
    """Plausible values of a field: its categories, or ``n`` values over its valid range.

    Ranges spanning several orders of magnitude (amounts) get a log-spaced grid with zero, so
    small and large values are both tried.
    """
    if spec.type == "category":
        return list(spec.categories or [])
    if spec.type == "boolean":
        return [False, True]
    lo, hi = spec.clip if spec.clip is not None else (spec.min, spec.max)
    lo = 0.0 if lo is None else float(lo)
    hi = lo + 1000.0 if hi is None else float(hi)
    if lo >= 0 and hi > 1000 * max(lo, 1.0):
        inner = np.geomspace(max(lo, 1.0), hi, n - 1)
        values: Sequence[float] = [lo, *inner]
    else:
        values = list(np.linspace(lo, hi, n))
    if spec.type == "integer":
        out = sorted({round(float(v)) for v in values})
        return [v for v in out if lo <= v <= hi]
    decimals = spec.decimals
    return sorted({round(float(v), decimals) if decimals is not None else float(v) for v in values})


def denied_applications(
    records: Sequence[Mapping[str, Any]],
    score: Callable[[Mapping[str, Any]], tuple[str, float]],
    *,
    margin: float | None = None,
    threshold: float = 0.5,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """Pick denied applications (optionally within ``margin`` above the threshold) to attack.

    ``score(record) -> (decision, score)``. Applications denied by a small margin are the
    realistic attackers: they have most to gain and least to change.
    """
    out = []
    for record in records:
        decision, s = score(record)
        if decision != "deny":
            continue
        if margin is not None and not (math.isfinite(s) and s - threshold <= margin):
            continue
        out.append(dict(record))
        if len(out) >= limit:
            break
    return out
