"""The live and shadow models of a running service, swapped without a restart.

:class:`ModelDeployment` watches the deployment pointer (``_deploy.py``) every
``[server] model_interval`` seconds: one ``stat`` per turn, the file read only when it changed.
A new live model is loaded and verified in a worker thread (the digest recorded at promotion,
the signing key when configured), compiled, then swapped in on the event loop by replacing the
fields of the pipeline's :class:`~tabguard.serving._guards.Models` — between two requests'
steps, never inside one (the scoring steps do not yield to the loop). A directory that fails
verification, or whose contract or threshold differs from the running one, is refused: the
live model stays as it was and ``/health`` (admin) says why.

:class:`ShadowScore` is the pipeline step of shadow mode: it scores every decided request with
the challenger too and logs its score and decision as a guard action (``step: shadow``), while
the decision stays the champion's.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tabguard.serving._deploy import Deployment, pointer_path, read_deployment
from tabguard.serving._guards import Guard, Rejection, RequestContext

if TYPE_CHECKING:
    from tabguard.serving._app import ScoringService
    from tabguard.serving._decision import DecisionPolicy
    from tabguard.serving._scoring import FastScorer
    from tabguard.training import ModelBundle

log = logging.getLogger("tabguard.serving.models")


@dataclass(frozen=True)
class Loaded:
    """A verified, compiled model directory."""

    bundle: ModelBundle
    main: FastScorer
    fallback: FastScorer | None
    policy: DecisionPolicy

    @property
    def digest(self) -> str:
        """Its manifest digest."""
        return self.bundle.digest


def load_entry(entry: dict[str, Any], contract_sha256: str | None = None) -> Loaded:
    """Load and verify a pointer entry; compile its scorers (blocking: run it in a thread).

    Raises
    ------
    ArtifactIntegrityError
        Hashes, the recorded digest or the signature do not match.
    DataError
        Another contract than ``contract_sha256``.
    """
    from tabguard.contract import contract_hash
    from tabguard.errors import DataError
    from tabguard.serving._decision import DecisionPolicy
    from tabguard.serving._scoring import compile_scorer
    from tabguard.training import load_model

    bundle = load_model(Path(entry["path"]), expected_digest=entry["digest"])
    if contract_sha256 is not None and contract_hash(bundle.contract) != contract_sha256:
        raise DataError(
            f"{entry['path']}: trained under another contract than the running model; a "
            "contract change needs a restart"
        )
    return Loaded(
        bundle,
        compile_scorer(bundle.main),
        compile_scorer(bundle.fallback) if bundle.fallback is not None else None,
        DecisionPolicy.from_contract(bundle.contract.decision, bundle.threshold),
    )


class ModelDeployment:
    """Keeps a service's live and shadow models in line with the deployment pointer.

    Parameters
    ----------
    service : ScoringService
        Its ``models`` (the pipeline's) are updated in place; ``bundle`` follows the live model.
    path : Path, optional
        The pointer (default ``$TABGUARD_HOME/models.json`` of the service's configuration).
    interval : float, optional
        Seconds between checks (default ``[server] model_interval``; 0: never).
    """

    def __init__(
        self, service: ScoringService, path: Path | None = None, interval: float | None = None
    ) -> None:
        from tabguard.contract import contract_hash

        self.service = service
        self.path = path or pointer_path(service.config.home)
        self.interval = service.server.model_interval if interval is None else interval
        self.contract_sha256 = contract_hash(service.contract)
        self.start_bundle = service.bundle
        self.start_models = (service.models.version, service.models.main, service.models.fallback)
        self.live_digest: str | None = None  # None: the start model
        #: The challenger scored in shadow, read by :class:`ShadowScore` on every request.
        self.shadow: Loaded | None = None
        self.last_error: str | None = None
        self.swaps = 0
        self._stamp: tuple[int, int, int] | None = None
        self._lock = asyncio.Lock()

    # ---- reading the pointer ---------------------------------------------------------------

    def _changed(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            stamp = (0, 0, 0)
        except OSError as exc:
            self.last_error = f"{self.path}: {exc}"
            return False
        else:
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        return True

    def _plan(self, dep: Deployment) -> tuple[Any, Any]:
        """``(live, shadow)`` to load: an entry, ``"start"``, or ``None`` for no change."""
        live = dep.current
        want_live: Any = None
        if live is None and self.live_digest is not None:
            want_live = "start"
        elif live is not None and live["digest"] != self.live_digest:
            want_live = live
        shadow = dep.shadow
        want_shadow: Any = None
        if shadow is None and self.shadow is not None:
            want_shadow = "off"
        elif shadow is not None and (self.shadow is None or self.shadow.digest != shadow["digest"]):
            want_shadow = shadow
        return want_live, want_shadow

    def _load(self, want: Any) -> Loaded | None:
        return None if isinstance(want, str) else load_entry(want, self.contract_sha256)

    def sync(self) -> bool:
        """Apply the pointer now, blocking (at start-up, before requests are served)."""
        if self.interval <= 0 or not self._changed():
            return False
        want_live, want_shadow = self._plan(read_deployment(self.path))
        return self._apply(want_live, self._safe(want_live), want_shadow, self._safe(want_shadow))

    async def poll(self) -> bool:
        """Check the pointer once and apply a change; return whether a model changed.

        Loading runs in a worker thread; the swap itself on the event loop.
        """
        async with self._lock:
            if not self._changed():
                return False
            try:
                dep = await asyncio.to_thread(read_deployment, self.path)
            except Exception as exc:  # a broken pointer must not take decisions down
                self._refuse(f"{exc}")
                return False
            want_live, want_shadow = self._plan(dep)
            new_live = await asyncio.to_thread(self._safe, want_live)
            new_shadow = await asyncio.to_thread(self._safe, want_shadow)
            return self._apply(want_live, new_live, want_shadow, new_shadow)

    def _safe(self, want: Any) -> Loaded | Exception | None:
        try:
            return self._load(want)
        except Exception as exc:
            return exc

    def _refuse(self, message: str) -> None:
        self.last_error = message
        log.error("model deployment refused, the running models are unchanged: %s", message)

    def _apply(
        self,
        want_live: Any,
        new_live: Loaded | Exception | None,
        want_shadow: Any,
        new_shadow: Loaded | Exception | None,
    ) -> bool:
        changed = refused = False
        if want_live is not None:
            if isinstance(new_live, Exception):
                refused = True
                self._refuse(f"live {want_live['path']}: {new_live}")
            elif new_live is not None and self._threshold_differs(new_live):
                refused = True
                self._refuse(
                    f"live {want_live['path']}: threshold {new_live.bundle.threshold} differs "
                    f"from the running {self.service.policy.default_threshold}; needs a restart"
                )
            else:
                self._swap_live(new_live)
                changed = True
        if want_shadow is not None:
            if isinstance(new_shadow, Exception):
                refused = True
                self._refuse(f"shadow {want_shadow['path']}: {new_shadow}")
            else:
                self.shadow = new_shadow
                log.info("shadow model: %s", new_shadow.bundle.version if new_shadow else "none")
                changed = True
        if not refused:
            self.last_error = None
        return changed

    def _threshold_differs(self, new: Loaded) -> bool:
        return not math.isclose(new.bundle.threshold, self.service.policy.default_threshold)

    def _swap_live(self, new: Loaded | None) -> None:
        models = self.service.models
        if new is None:
            models.version, models.main, models.fallback = self.start_models
            self.service.bundle = self.start_bundle
            self.live_digest = None
        else:
            # One assignment each, all on the event loop between two requests' steps.
            models.version, models.main, models.fallback = (
                new.bundle.version,
                new.main,
                new.fallback,
            )
            self.service.bundle = new.bundle
            self.live_digest = new.digest
        self.swaps += 1
        for fast in (models.main, models.fallback):
            if fast is not None:
                self.service.metrics.model_info.labels(models.version, fast.name, fast.path).set(1)
        log.info("live model: %s (%s)", models.version, self.service.bundle.digest[:16])

    async def run(self) -> None:
        """Poll every ``interval`` seconds until cancelled (never raises)."""
        if self.interval <= 0:
            return
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.poll()
            except Exception:  # the watcher must never take the service down
                log.exception("checking %s failed", self.path)

    def describe(self) -> dict[str, Any]:
        """For ``/health`` (admin)."""
        return {
            "pointer": str(self.path),
            "live": {
                "version": self.service.models.version,
                "digest": self.service.bundle.digest,
                "from": "pointer" if self.live_digest else "start",
            },
            "shadow": None
            if self.shadow is None
            else {"version": self.shadow.bundle.version, "digest": self.shadow.digest},
            "swaps": self.swaps,
            "last_error": self.last_error,
        }


class ShadowScore(Guard):
    """Shadow mode: score the request with the challenger too; the champion decides."""

    name = "shadow"

    def __init__(self, deployment: ModelDeployment) -> None:
        self.deployment = deployment

    async def run(self, ctx: RequestContext) -> Rejection | None:
        """Log the challenger's score and decision beside the champion's."""
        shadow = self.deployment.shadow
        if shadow is None or ctx.features is None or ctx.score is None:
            return None
        try:
            transform = shadow.main.scorer.transform
            row, _ = transform.transform_record(ctx.features, ctx.flags.flags.neutralize)
            score = shadow.main.score_row(row[0])
            decision = shadow.policy.decide(score, ctx.threshold)
        except Exception as exc:  # the challenger must never break the champion's answer
            ctx.act(self.name, "error", version=shadow.bundle.version, error=str(exc)[:200])
            return None
        ctx.act(self.name, "score", version=shadow.bundle.version, score=score, decision=decision)
        return None
