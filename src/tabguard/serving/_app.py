"""The scoring service: :class:`ScoringService` (guards, stores, model) and its FastAPI app.

``create_app(MODEL_DIR)`` loads and verifies the model directory, compiles the fast scoring
path, and returns a FastAPI app whose lifespan opens the configured stores *inside the serving
process* (each uvicorn worker has its own connection pools, flag watcher, log writer and
limiter; they share state through the stores):

=====================================  ======================================================
route                                  what
=====================================  ======================================================
``POST /v1/decisions``                 a decision through the guards pipeline
``GET /v1/decisions/{decision_id}``    a (delayed) decision of the calling client
``GET /livez``                         liveness: 200 while the process serves
``GET /readyz``                        readiness: 503 until started, or while a fail-closed store
                                       is down
``GET /health``                        status summary; details for ``admin`` keys
``GET /metrics``                       Prometheus exposition
``GET /dashboard/``                     the monitoring dashboard (``[server] dashboard``; its
                                       API needs a key with the ``monitor`` scope)
``GET /docs``, ``GET /openapi.json``   API reference (request schema from the contract)
=====================================  ======================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from tabguard import __version__
from tabguard.contract import RecordValidator
from tabguard.errors import BackendUnavailableError, DataError
from tabguard.serving._authlimit import AuthThrottle
from tabguard.serving._config import (
    DecisionsConfig,
    ProbingConfig,
    ServerConfig,
    ServingConfig,
    load_config,
    redacted,
)
from tabguard.serving._decision import DecisionPolicy, DelayedDecisions
from tabguard.serving._guards import (
    Authenticate,
    ClientLimit,
    Clock,
    Decide,
    DetectProbing,
    FlowGate,
    GuardPipeline,
    Models,
    ParseBody,
    Rejection,
    RequestContext,
    Respond,
    Sanitise,
    Score,
    SubjectLimit,
    Validate,
    guarded_authenticate,
    system_clock,
)
from tabguard.serving._keys import KeyCache, new_key
from tabguard.serving._limits import AsyncRateLimiter
from tabguard.serving._metrics import SegmentLabels, ServiceMetrics
from tabguard.serving._models import ModelDeployment, ShadowScore
from tabguard.serving._probing import ProbingDetector, ProbingStore
from tabguard.serving._reference import ReferenceProfile, profile_path
from tabguard.serving._refusals import RefusalSummary
from tabguard.serving._rules import RulePolicy
from tabguard.serving._scoring import compile_scorer
from tabguard.serving._source import SourceResolver
from tabguard.serving._stores import open_flags, open_keys, open_limiter, open_log
from tabguard.storage import driver_message, redact_url, store_kind

if TYPE_CHECKING:
    import pandas as pd

    from tabguard.flags import BaseFlagStore, FlagWatcher
    from tabguard.serving._keys import ApiClient, KeyStore
    from tabguard.serving._log import PredictionLog
    from tabguard.training import ModelBundle

log = logging.getLogger("tabguard.serving")

#: Environment variable naming the model directory of ``app_from_env`` (uvicorn workers).
MODEL_ENV = "TABGUARD_SERVE_MODEL"
#: Seconds a readiness answer is reused (see :meth:`ScoringService.readiness`).
READY_TTL = 1.0


# --------------------------------------------------------------------------------------------
# Settings: validated once by load_config; these names stay for callers of earlier versions.

#: ``[server]`` (validated by :func:`load_config`).
ServerSettings = ServerConfig
#: ``[decisions]`` (validated by :func:`load_config`).
DecisionSettings = DecisionsConfig


def service_settings(config: ServingConfig) -> tuple[ServerConfig, DecisionsConfig, ProbingConfig]:
    """Return ``[server]``, ``[decisions]`` and ``[probing]`` (already validated)."""
    return config.server, config.decisions, config.probing


# --------------------------------------------------------------------------------------------
# The reference profile


def settle_heap() -> None:
    """Collect once, then keep what start-up built out of later collections (``gc.freeze``).

    The model, numba, pandas and the stores leave about a million objects behind. Without
    this, every full collection (one every few hundred requests) walks all of them: a pause
    of tens of milliseconds in the p99. Frozen objects are never collected; objects built per
    request still are.
    """
    import gc

    gc.collect()
    gc.freeze()


def resolve_reference(
    bundle: ModelBundle,
    config: ServingConfig,
    reference: str | os.PathLike[str] | pd.DataFrame | ReferenceProfile | None = None,
) -> ReferenceProfile | None:
    """The reference profile of a model: computed from data given now, else the stored one.

    Data given (a path, a DataFrame, or ``[server] reference``) is profiled and saved under
    ``$TABGUARD_HOME/reference/`` keyed by the model digest, so workers and later starts find
    it without the data. Returns ``None`` when there is neither (out-of-distribution detection
    and the monotone rule are then off, as ``/health`` says).
    """
    import pandas as pd

    if isinstance(reference, ReferenceProfile):
        return reference
    source = reference if reference is not None else config.server.reference
    stored = profile_path(config.home, bundle.digest or "unversioned")
    if source is not None:
        from tabguard.io import file_sha256, read_table

        if isinstance(source, pd.DataFrame):
            df, info = source, {"data": "DataFrame"}
        else:
            df = read_table(Path(source), contract=bundle.contract)
            info = {"data": str(source), "data_sha256": file_sha256(Path(source))}
        profile = ReferenceProfile.from_frame(df, bundle.contract, source=info)
        profile.save(stored)
        log.info("reference profile of %d rows saved to %s", profile.n_rows, stored)
        return profile
    if stored.is_file():
        try:
            profile = ReferenceProfile.load(stored)
        except DataError as exc:
            log.warning("ignoring the reference profile %s: %s", stored, exc)
            return None
        if profile.matches(bundle.contract):
            return profile
        log.warning("ignoring %s: computed under another contract", stored)
    return None


# --------------------------------------------------------------------------------------------
# The service


class ScoringService:
    """The model, its guards and the stores they use; independent of the web framework.

    Parameters
    ----------
    bundle : ModelBundle
        A loaded (hash-verified) model directory.
    config : ServingConfig
        ``tabguard.toml``.
    reference : ReferenceProfile, optional
        Enables out-of-distribution probing signals and the monotone rule.
    key_store, flag_store, prediction_log, limiter, probing_store : optional
        Ready-made stores (tests, benchmarks); by default :meth:`start` opens the configured
        ones. Stores passed in are not closed by :meth:`aclose`.
    metrics : ServiceMetrics, optional
    clock : callable, optional
        Returns the time of a request (aware UTC datetime); default the real time. Only the
        Python API sets it (the traffic simulator's simulated clock): no header, body field or
        configuration key can.
    """

    def __init__(
        self,
        bundle: ModelBundle,
        config: ServingConfig,
        *,
        reference: ReferenceProfile | None = None,
        key_store: KeyStore | None = None,
        flag_store: BaseFlagStore | None = None,
        prediction_log: PredictionLog | None = None,
        limiter: AsyncRateLimiter | None = None,
        probing_store: ProbingStore | None = None,
        metrics: ServiceMetrics | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.bundle = bundle
        self.clock = clock
        self.config = config
        self.server, self.decisions = config.server, config.decisions
        self.probing_config = config.probing
        contract = bundle.contract
        self.contract = contract
        self.validator = RecordValidator(contract)
        self.policy = DecisionPolicy.from_contract(contract.decision, bundle.threshold)
        self.reference = reference
        self.rules = RulePolicy(
            contract,
            reference,
            default=self.decisions.rules_default,
            deny_above=self.decisions.rules_deny_above,
            approve_below=self.decisions.rules_approve_below,
        )
        self.models = Models(
            version=bundle.version,
            main=compile_scorer(bundle.main),
            fallback=compile_scorer(bundle.fallback) if bundle.fallback is not None else None,
            rules=self.rules,
        )
        self._compile()
        self.metrics = metrics or ServiceMetrics()
        self._given: dict[str, Any] = {
            "keys": key_store,
            "flags": flag_store,
            "log": prediction_log,
            "limiter": limiter,
            "probing": probing_store,
        }
        self.segment_features = [
            n
            for n in contract.segments
            if n in contract.features and contract.features[n].type in ("category", "boolean")
        ]
        self.started = False
        self._refresher: asyncio.Task[None] | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._models_task: asyncio.Task[None] | None = None
        self._sleep = asyncio.sleep  # the in-process monitor's wait (tests replace it)
        #: Seconds a readiness answer is reused: probes (and anyone flooding /readyz, which
        #: needs no key) cost at most one store check per interval.
        self.ready_ttl = READY_TTL
        self._ready: tuple[float, tuple[bool, dict[str, Any]]] | None = None
        self._ready_lock = asyncio.Lock()
        self._probe_key = new_key()[1]  # well formed, never stored: a key-store round trip
        self.sources = SourceResolver(self.server.trusted_proxies)
        for name in ("main", "fallback"):
            fast = getattr(self.models, name)
            if fast is not None:
                self.metrics.model_info.labels(bundle.version, name, fast.path).set(1)

    def _compile(self) -> None:
        """Compile the contract check and the models' transforms (checked; else the library)."""
        from tabguard.serving._compiled import compile_contract

        transforms = [f.scorer.transform for f in (self.models.main, self.models.fallback) if f]
        record, compiled, reason = compile_contract(self.contract, transforms)
        self.compiled_record = record
        self.compiled_transforms = {
            id(t): c for t, c in zip(transforms, compiled, strict=True) if c is not None
        }
        if reason:
            log.warning("request path: the contract library decides (%s)", reason)

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Open the stores and build the pipeline (blocking; once per serving process)."""
        from tabguard.flags import FlagWatcher

        if self.started:
            return
        cfg, given = self.config, self._given
        key_store = given["keys"] or open_keys(cfg)
        self.keys = KeyCache(key_store, ttl=self.server.key_cache_ttl)
        flag_store = given["flags"] or open_flags(cfg)
        self.watcher: FlagWatcher = FlagWatcher(flag_store, interval=self.server.flag_interval)
        self.watcher.start()
        self.log: PredictionLog = given["log"] or open_log(cfg)
        if self.log.number_layout is None:
            from tabguard.monitoring._numbers import NumberLayout

            self.log.number_layout = NumberLayout.from_contract(self.contract)
        self.limiter: AsyncRateLimiter = given["limiter"] or open_limiter(cfg)
        pc = self.probing_config
        self.detector: ProbingDetector | None = None
        self.throttle: AsyncRateLimiter | None = None
        if pc.enabled:
            self.detector = ProbingDetector(
                self.contract,
                pc,
                store=given["probing"],
                reference=self.reference,
                transform=self.models.main.scorer.transform,
            )
            if pc.action == "throttle":
                # A flagged client's allowance lives where its probing state lives: with a
                # shared probing store, every worker counts against the same allowance.
                shared = store_kind(pc.storage) == "redis"
                self.throttle = AsyncRateLimiter.from_config(
                    cfg.limits,
                    per_client=pc.throttle,
                    per_subject=None,
                    key_prefix=f"{cfg.limits.key_prefix}-probing",
                    **({"storage": pc.storage, "timeout": pc.timeout} if shared else {}),
                )
        self.deployment = ModelDeployment(self)
        self.deployment.sync()  # a model promoted before this start serves from the first request
        self.delayed = DelayedDecisions(self.log)
        self.auth_throttle = AuthThrottle.from_config(cfg.limits)
        self.refusals = RefusalSummary(
            self.log.append,
            samples=cfg.log.refusal_samples,
            sample_bytes=cfg.log.refusal_sample_bytes,
        )
        steps = [
            Authenticate(self.keys, throttle=self.auth_throttle),
            FlowGate(),
            ParseBody(self.server.max_body_bytes),
            ClientLimit(self.limiter),
            Validate(self.validator, self.compiled_record),
            SubjectLimit(self.limiter),
            Sanitise(self.models, self.compiled_transforms),
            Score(self.models, {n: s.neutral for n, s in self.contract.items()}),
            Decide(self.policy),
            ShadowScore(self.deployment),
        ]
        if self.detector is not None:
            steps.append(DetectProbing(self.detector, self.throttle))
        steps.append(Respond(self.delayed, self.decisions.delay_seconds))
        self.pipeline = GuardPipeline(
            steps,
            self.log,
            self.metrics,
            self.segment_features,
            refusals=self.refusals,
            segment_labels=self.segment_labels(),
        )
        self._owned = [
            s for s, g in ((key_store, given["keys"]), (flag_store, given["flags"])) if g is None
        ]
        self._own_log = given["log"] is None
        self.started = True
        self.refresh_gauges()
        log.info(
            "serving %s: main %s, fallback %s, reference %s, probing %s",
            self.bundle.version,
            self.models.main.path,
            self.models.fallback.path if self.models.fallback else "none",
            f"{self.reference.n_rows} rows" if self.reference else "none",
            f"{pc.action} ({redact_url(pc.storage)})" if pc.enabled else "off",
        )

    def segment_labels(self) -> SegmentLabels:
        """The bounded segment labels of the per-segment metrics (docs/serving.md)."""
        from tabguard.monitoring._parse import canonical_label

        features = {}
        for name in self.segment_features:
            spec = self.contract.features[name]
            cats = spec.categories if spec.type == "category" else (True, False)
            features[name] = tuple(str(canonical_label(c)) for c in cats or ())
        request = {k: tuple(v) for k, v in self.server.metrics_segments.items()}
        return SegmentLabels(features, request)

    async def astart(self) -> None:
        """Start in a worker thread (store connections block) and refresh gauges every second."""
        await asyncio.to_thread(self.start)
        settle_heap()
        self._refresher = asyncio.create_task(self._refresh_loop())
        self._models_task = asyncio.create_task(self.deployment.run())
        if self.server.monitor:
            self._monitor = asyncio.create_task(self._monitor_loop())

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self.refusals.flush()  # the summaries of minutes that are over
                await asyncio.to_thread(self.refresh_gauges)
            except Exception:  # gauges must never take the service down
                log.exception("refreshing the state gauges failed")

    async def _monitor_loop(self) -> None:
        """``[server] monitor``: update the monitor store and evaluate the rules, every period."""
        from tabguard.monitoring import load_monitor_config
        from tabguard.monitoring._loop import run_once

        path = Path(self.config.home) / str(self.server.monitor)
        try:
            monitor = load_monitor_config(path, home=self.config.home)
        except Exception as exc:  # a bad monitor.yaml must not take decisions down
            log.error("in-process monitor off: %s", exc)
            return
        log.info("in-process monitor: %s every %g s", path, self.server.monitor_every)
        while True:
            await self._sleep(self.server.monitor_every)
            try:
                await asyncio.to_thread(run_once, monitor)
            except Exception as exc:  # logged; the next turn retries (the watermark is safe)
                log.error(
                    "in-process monitor turn failed, retrying next period: %s", driver_message(exc)
                )

    def refresh_gauges(self) -> None:
        """Update the flag and prediction-log gauges."""
        if not self.started:
            return
        snap = self.watcher.current()
        self.metrics.observe_flags(
            snap,
            self.policy.threshold(snap.flags.threshold),
            snap.flags.delay or self.decisions.delay_seconds,
            self.watcher.stale,
        )
        spool = self.log.spool
        self.metrics.observe_log(
            self.log.stats, spool.pending_records(), spool.dead_letter_records()
        )

    async def aclose(self) -> None:
        """Stop the background work, drain the log, close the stores this service opened."""
        for task in (self._refresher, self._monitor, self._models_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if not self.started:
            return
        self.watcher.stop()
        if self.detector is not None and self._given["probing"] is None:
            await self.detector.aclose()
        self.refusals.flush(everything=True)  # before the log drains
        if self._own_log:
            await asyncio.to_thread(self.log.close)
        for store in self._owned:
            with contextlib.suppress(Exception):
                store.close()
        self.started = False

    # ---- requests ---------------------------------------------------------------------------

    async def decide(
        self,
        authorization: str | None,
        body: bytes,
        *,
        too_large: bool = False,
        peer: str | None = None,
        forwarded_for: str | None = None,
    ) -> RequestContext:
        """Run one decision request through the guards; the context holds the response.

        ``peer`` is the TCP peer address and ``forwarded_for`` the ``X-Forwarded-For``
        header (read only from ``[server] trusted_proxies``): the source that
        failed-authentication limits count (``_source.py``).
        """
        if not self.started:
            raise RuntimeError("ScoringService.start() (or the app lifespan) has not run")
        ctx = RequestContext.new(
            authorization,
            body,
            self.watcher.current(),
            too_large=too_large,
            clock=self.clock,
            source=self.sources.source(peer, forwarded_for),
        )
        return await self.pipeline.run(ctx)

    async def authenticate(
        self, authorization: str | None, scope: str, source: str | None = None
    ) -> tuple[ApiClient | None, Rejection | None]:
        """Check a key for ``scope`` behind the failed-authentication limit (GET routes)."""
        return await guarded_authenticate(
            self.keys, self.auth_throttle, authorization, scope, source
        )

    async def read_decision(
        self, authorization: str | None, decision_id: str, source: str | None = None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """``GET /v1/decisions/{id}``: 200 decision, 202 not yet, 401/403/404/429/503."""
        client, rejection = await self.authenticate(authorization, "decide", source)
        if rejection is not None or client is None:
            r = rejection
            return (r.http_status, r.body, dict(r.headers)) if r else (401, {}, {})
        # Polls count against the client's limit: a flood of unknown ids would otherwise be a
        # flood of log-database reads.
        limit = await self.limiter.hit(client.name, None)
        if not limit.allowed:
            code = 503 if limit.reason == "backend_unavailable" else 429
            body = {"error": "rate limit reached; retry later", "reason": limit.reason,
                    "retry_after": int(limit.retry_after_header)}  # fmt: skip
            return code, body, {"Retry-After": limit.retry_after_header}
        try:
            item = await self.delayed.lookup(decision_id, client.name)
        except BackendUnavailableError:
            return 503, {"error": "the prediction log is unreachable; retry later",
                         "reason": "log_store_unavailable"}, {"Retry-After": "1"}  # fmt: skip
        if item is None:
            return 404, {"error": f"no decision {decision_id!r} for this client"}, {}
        now = self.clock()
        if item.available_at is not None and not self.delayed.is_available(item, now):
            wait = max(1, int((item.available_at - now).total_seconds() + 0.999))
            body = {"decision_id": item.decision_id, "available_at": item.available_at.isoformat()}
            return 202, body, {"Retry-After": str(wait)}
        out: dict[str, Any] = {
            "decision_id": item.decision_id,
            "decision": item.decision,
            "model_version": item.model_version,
        }
        if client.can("score") and item.score is not None:
            out["score"] = item.score
        return 200, out, {}

    async def is_admin(self, authorization: str | None, source: str | None = None) -> bool:
        """Whether the header carries a valid ``admin`` key."""
        client, rejection = await self.authenticate(authorization, "admin", source)
        return rejection is None and client is not None

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether this process should get traffic, and why (``GET /readyz``).

        Not ready until :meth:`start` has run (and after :meth:`aclose`), and while a store
        that refuses requests when down is unreachable: the key store (uncached keys get 503)
        and, with ``on_backend_error = "fail_closed"``, the rate-limit store. Stores the service
        works around (flags: last ones kept; log: spooled; limits with ``fail_open``) are
        reported in ``checks`` but keep it ready. Answers are reused for :attr:`ready_ttl`
        seconds.

        Returns
        -------
        ready : bool
        body : dict
            ``{"status": "ready" | "not_ready", "reason": str, "checks": {...}}``.
        """
        cached = self._ready
        if cached is not None and time.monotonic() - cached[0] < self.ready_ttl:
            return cached[1]
        async with self._ready_lock:
            cached = self._ready
            if cached is not None and time.monotonic() - cached[0] < self.ready_ttl:
                return cached[1]
            result = await self._check_ready()
            self._ready = (time.monotonic(), result)
            return result

    async def _check_ready(self) -> tuple[bool, dict[str, Any]]:
        if not self.started:
            reason = "not started: the stores are opening (or closing)"
            return False, {"status": "not_ready", "reason": reason, "checks": {}}
        checks: dict[str, str] = {}
        blocking: list[str] = []
        try:
            await asyncio.wait_for(asyncio.to_thread(self.keys.store.verify, self._probe_key), 3)
            checks["keys"] = "ok"
        except Exception:  # unreachable or too slow: uncached keys would get 503
            checks["keys"] = "down"
            blocking.append("the key store is unreachable")
        if await self.limiter.check():
            checks["limits"] = "ok"
        elif self.config.limits.on_backend_error == "fail_closed":
            checks["limits"] = "down"
            blocking.append("the rate-limit store is unreachable (fail_closed)")
        else:
            checks["limits"] = "down (fail_open)"
        checks["flags"] = "stale" if self.watcher.stale else "ok"
        checks["log"] = "ok" if self.log.stats.backend_up else "spooling"
        if blocking:
            return False, {"status": "not_ready", "reason": "; ".join(blocking), "checks": checks}
        degraded = [name for name, state in checks.items() if state != "ok"]
        reason = f"ready; degraded: {', '.join(degraded)}" if degraded else "ready"
        return True, {"status": "ready", "reason": reason, "checks": checks}

    def health(self, detail: bool = False) -> dict[str, Any]:
        """Liveness, and with ``detail`` the scorers, flags, log and probing state."""
        degraded = self.started and (self.watcher.stale or not self.log.stats.backend_up)
        out: dict[str, Any] = {
            "status": "degraded" if degraded else "ok",
            "model_version": self.bundle.version,
        }
        if detail and self.started:
            snap = self.watcher.current()
            stats = self.log.stats
            out["detail"] = {
                "pid": os.getpid(),
                "model_digest": self.bundle.digest,
                "model_signature": self.bundle.signature,
                "scorers": [
                    f.describe() for f in (self.models.main, self.models.fallback) if f is not None
                ],
                "rules": self.rules.describe(),
                "flags": {**snap.flags.to_dict(), "version": snap.version},
                "flags_stale": self.watcher.stale,
                "log": {
                    "backend_up": stats.backend_up,
                    "queued": stats.queued,
                    "spooled": stats.spooled,
                    "written": stats.written,
                },
                "reference": None
                if self.reference is None
                else {
                    "rows": self.reference.n_rows,
                    "min_out": self.reference.min_out,
                    **self.reference.source,
                },
                "probing": redacted(self.probing_config) if self.probing_config.enabled else None,
                "limits": redacted(self.config.limits),
                "deployment": self.deployment.describe(),
            }
        return out


# --------------------------------------------------------------------------------------------
# The FastAPI app


def create_app(
    model: str | os.PathLike[str] | ModelBundle | None = None,
    *,
    config: ServingConfig | None = None,
    home: str | os.PathLike[str] | None = None,
    reference: str | os.PathLike[str] | pd.DataFrame | ReferenceProfile | None = None,
    service: ScoringService | None = None,
    **stores: Any,
) -> FastAPI:
    """Build the scoring app for a model directory.

    Parameters
    ----------
    model : path or ModelBundle
        The model directory (verified by :func:`~tabguard.training.load_model`).
    config : ServingConfig, optional
        Default: ``load_config(home)``.
    home : path, optional
        ``TABGUARD_HOME`` (when ``config`` is not given).
    reference : path, DataFrame or ReferenceProfile, optional
        Reference data for the probing detector (see :func:`resolve_reference`).
    service : ScoringService, optional
        A ready service (then the other arguments are ignored).
    **stores
        ``key_store``, ``flag_store``, ``prediction_log``, ``limiter``, ``probing_store``,
        ``metrics`` passed to :class:`ScoringService`.

    Returns
    -------
    FastAPI
        The stores open in its lifespan (``with TestClient(app)`` or a uvicorn server).
    """
    from tabguard.training import ModelBundle, load_model

    if service is None:
        if model is None:
            raise ValueError("create_app needs a model directory (or a ScoringService)")
        cfg = config or load_config(home)
        bundle = model if isinstance(model, ModelBundle) else load_model(Path(model))
        profile = resolve_reference(bundle, cfg, reference)
        service = ScoringService(bundle, cfg, reference=profile, **stores)
    return _build_app(service)


def app_from_env() -> FastAPI:
    """The app of ``$TABGUARD_SERVE_MODEL`` (the factory uvicorn workers import)."""
    model = os.environ.get(MODEL_ENV)
    if not model:
        raise RuntimeError(f"{MODEL_ENV} must name the model directory to serve")
    return create_app(Path(model))


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), allow_nan=False),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


DECISIONS_PATH = "/v1/decisions"


class ScoringApp(FastAPI):
    """The service's FastAPI app, with ``POST /v1/decisions`` answered in plain ASGI.

    FastAPI's routing, request object, dependency solving and response classes cost about as
    much CPU per request as every guard together (measured: 176 µs per request through the
    FastAPI route against 88 µs for ``ScoringService.decide`` alone; docs/benchmarks.md).
    The decision route does not need them: it reads the body up to ``[server]
    max_body_bytes``, two headers and the peer, and answers JSON. :meth:`__call__` sends that
    one route to :func:`_asgi_decision` and everything else (the other routes, the docs, the
    lifespan) to FastAPI. The FastAPI route stays registered, for the OpenAPI schema and for
    a request the plain path does not take (``decisions_asgi = None``); a test holds both to
    the same answers.
    """

    #: ``(scope, receive, send)`` handler of ``POST /v1/decisions``; None: FastAPI routes it.
    decisions_asgi: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Route ``POST /v1/decisions`` to the plain handler, the rest through FastAPI."""
        handler = self.decisions_asgi
        if (
            handler is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and _route_path(scope) == DECISIONS_PATH
        ):
            await handler(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _route_path(scope: Any) -> str:
    """The path the router would match (without a ``root_path`` prefix, as Starlette)."""
    path: str = scope["path"]
    root = scope.get("root_path") or ""
    if root and path.startswith(root):
        return path[len(root) :]
    return path


def _json_bytes(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


async def _asgi_decision(
    service: ScoringService, max_body: int, scope: Any, receive: Any, send: Any
) -> None:
    """``POST /v1/decisions`` in plain ASGI: the same reads and answer as the FastAPI route."""
    chunks: list[bytes] = []
    size = 0
    too_large = False
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return  # gone before its body arrived: never a decision request (as the route)
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > max_body:  # read no further than the limit (as _read_body)
                chunks.append(chunk[: max(0, max_body - (size - len(chunk)))])
                too_large = True
                break
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    authorization = forwarded = None
    for name, value in scope["headers"]:  # the first of each, as Starlette's Headers.get
        if name == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif name == b"x-forwarded-for" and forwarded is None:
            forwarded = value.decode("latin-1")
    client = scope.get("client")
    ctx = await service.decide(
        authorization,
        chunks[0] if len(chunks) == 1 else b"".join(chunks),
        too_large=too_large,
        peer=client[0] if client else None,
        forwarded_for=forwarded,
    )
    content = _json_bytes(ctx.response)
    # Starlette's Response order: the route's headers, then length and type.
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in ctx.headers.items()]
    headers += [
        (b"content-length", str(len(content)).encode()),
        (b"content-type", b"application/json"),
    ]
    await send({"type": "http.response.start", "status": ctx.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def _build_app(service: ScoringService) -> FastAPI:
    from tabguard.serving import _schemas as sch

    max_body = service.server.max_body_bytes

    dashboard = _dashboard(service)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.astart()
        try:
            yield
        finally:
            await service.aclose()
            if dashboard is not None:
                dashboard.store.close()

    contract = service.contract
    app = ScoringApp(
        title=f"tabguard scoring service — {contract.name}",
        version=__version__,
        description=(
            f"Guarded real-time decisions of model **{service.bundle.version}** "
            f"(contract `{contract.name}`). Every request passes authentication, rate limits, "
            "contract validation, sanitisation, the model, the decision layer and probing "
            "detection, and is written to the prediction log. See docs/serving.md."
        ),
        lifespan=lifespan,
    )
    app.state.service = service
    problems: dict[int | str, dict[str, Any]] = {
        401: {"model": sch.ErrorResponse, "description": "Missing, bad or revoked key."},
        403: {"model": sch.ErrorResponse, "description": "The key lacks the 'decide' scope."},
        422: {"model": sch.ValidationErrorResponse, "description": "Breaks the contract."},
        503: {"model": sch.ErrorResponse, "description": "Flow off, or a fail-closed store down."},
    }

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ())[1:]) or "request",
                "rule": str(e.get("type", "invalid")),
                "value": _jsonable(e.get("input")),
                "message": str(e.get("msg", "invalid value")),
            }
            for e in exc.errors()
        ]
        return _json(422, {"errors": errors})

    @app.post(
        "/v1/decisions",
        summary="Decide on one application",
        response_model=sch.DecisionResponse,
        response_model_exclude_none=True,
        responses={
            202: {"model": sch.DelayedResponse, "description": "Delayed: poll GET later."},
            413: {"model": sch.ValidationErrorResponse, "description": "Body too large."},
            429: {"model": sch.ErrorResponse, "description": "Rate limited (see Retry-After)."},
            500: {"model": sch.ErrorResponse, "description": "Internal error (logged)."},
            **problems,
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": sch.request_schema(contract)}},
            },
            "security": [{"bearer": []}],
        },
    )
    async def post_decision(request: Request) -> Response:
        body, too_large = await _read_body(request, max_body)
        ctx = await service.decide(
            request.headers.get("authorization"),
            body,
            too_large=too_large,
            peer=request.client.host if request.client else None,
            forwarded_for=request.headers.get("x-forwarded-for"),
        )
        return _json(ctx.http_status, ctx.response, ctx.headers)

    async def decisions_asgi(scope: Any, receive: Any, send: Any) -> None:
        await _asgi_decision(service, max_body, scope, receive, send)

    app.decisions_asgi = decisions_asgi

    @app.get(
        "/v1/decisions/{decision_id}",
        summary="Read a decision (delayed decisions: 202 until available)",
        response_model=sch.DecisionResponse,
        response_model_exclude_none=True,
        responses={
            202: {"model": sch.DelayedResponse, "description": "Not yet available."},
            404: {"model": sch.ErrorResponse, "description": "Unknown id, or another client's."},
            429: {"model": sch.ErrorResponse, "description": "Client rate limit (Retry-After)."},
            **problems,
        },
        openapi_extra={"security": [{"bearer": []}]},
    )
    async def get_decision(
        request: Request,
        decision_id: str = PathParam(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$"),
    ) -> Response:
        status, body, headers = await service.read_decision(
            request.headers.get("authorization"), decision_id, _source(service, request)
        )
        return _json(status, body, headers)

    @app.get(
        "/livez", summary="Liveness: 200 while the process serves", response_model=sch.LiveResponse
    )
    async def livez() -> Response:
        return _json(200, {"status": "alive"})

    @app.get(
        "/readyz",
        summary="Readiness: 503 until started or while a fail-closed store is down",
        response_model=sch.ReadyResponse,
        responses={503: {"model": sch.ReadyResponse, "description": "Not ready (reason)."}},
    )
    async def readyz() -> Response:
        ready, body = await service.readiness()
        return _json(200, body) if ready else _json(503, body, {"Retry-After": "1"})

    @app.get(
        "/health",
        summary="Status summary (details for admin keys); probes use /livez and /readyz",
        response_model=sch.HealthResponse,
    )
    async def health(request: Request) -> Response:
        auth = request.headers.get("authorization")
        detail = bool(auth) and await service.is_admin(auth, _source(service, request))
        return _json(200, service.health(detail))

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}, 401: {"model": sch.ErrorResponse}},
    )
    async def metrics(request: Request) -> Response:
        if service.server.metrics_require_key and not await service.is_admin(
            request.headers.get("authorization"), _source(service, request)
        ):
            return _json(401, {"error": "an admin API key is required for /metrics"},
                         {"WWW-Authenticate": "Bearer"})  # fmt: skip
        await asyncio.to_thread(service.refresh_gauges)
        text, content_type = service.metrics.render()
        return Response(text, media_type=content_type)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes,
            )  # fmt: skip
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key from `tabguard keys create NAME`.",
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if dashboard is not None:
        from tabguard.monitoring._dashboard_app import install, key_authorizer

        install(app, dashboard, key_authorizer(lambda: service.keys))
    return app


def _source(service: ScoringService, request: Request) -> str:
    peer = request.client.host if request.client else None
    return service.sources.source(peer, request.headers.get("x-forwarded-for"))


def _dashboard(service: ScoringService) -> Any:
    """The data of ``/dashboard`` when ``[server] dashboard`` names a monitor.yaml, else None.

    A bad file or an unreachable store is logged and leaves the dashboard off: it must never
    take decisions down.
    """
    if not service.server.dashboard:
        return None
    from tabguard.monitoring import load_monitor_config
    from tabguard.monitoring._dashboard import open_dashboard

    path = Path(service.config.home) / service.server.dashboard
    try:
        return open_dashboard(load_monitor_config(path, home=service.config.home))
    except Exception as exc:
        log.error("dashboard off: %s", exc)
        return None


async def _read_body(request: Request, limit: int) -> tuple[bytes, bool]:
    """Read at most ``limit`` bytes of the body; say whether there was more."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            chunks.append(chunk[: max(0, limit - (size - len(chunk)))])
            return b"".join(chunks), True
        chunks.append(chunk)
    return b"".join(chunks), False


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)[:200]
    return value
