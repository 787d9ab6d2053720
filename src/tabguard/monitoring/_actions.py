"""What an alert does: set a runtime flag, POST an Alertmanager-compatible webhook, log.

:class:`ActionRunner` runs the actions of a rule when its alert opens (and notifies webhooks
again when it resolves). With ``apply=False`` (``tabguard monitor replay`` without
``--apply``) flag changes are recorded as what *would* have been done, not made. Every outcome,
success or failure, is an event of the alert; nothing here raises into the loop: a webhook
receiver that is down is retried, then logged.

Flags are set through the flag store with the actor ``monitor:<rule>``, so the audit trail
(``tabguard flags history``) says which rule changed what and why. ``neutralize`` adds the
rule's features to the ones already neutralised; other flags are set to the rule's value.
Flags are never unset by the monitor when the alert resolves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from tabguard.monitoring._alerts import Alert, AlertEvent, AlertStore
from tabguard.monitoring._rules_config import (
    AlertingConfig,
    FlagAction,
    RuleSpec,
    WebhookAction,
    WebhookSpec,
)
from tabguard.storage import redact_text, redact_url

if TYPE_CHECKING:
    from tabguard.flags import FlagStore

log = logging.getLogger("tabguard.monitoring")
_LEVEL = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


def alertmanager_payload(alert: Alert, rule: RuleSpec) -> list[dict[str, Any]]:
    """The Alertmanager v2 ``POST /api/v2/alerts`` body for one alert (a JSON list)."""
    labels = {
        "alertname": rule.name,
        "severity": alert.severity,
        "segment_key": alert.segment[0],
        "segment_value": alert.segment[1],
        "service": "tabguard",
        **rule.labels,
    }
    annotations = {
        "summary": alert.message,
        "description": rule.description or rule.name,
        "alert_id": str(alert.id),
        "value": "" if alert.value is None else f"{alert.value:.6g}",
        "baseline": "" if alert.baseline is None else f"{alert.baseline:.6g}",
    }
    item: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations,
        "startsAt": alert.opened_at.isoformat(),
    }
    if alert.resolved_at is not None:
        item["endsAt"] = alert.resolved_at.isoformat()
    return [item]


class ActionRunner:
    """Runs the actions of alert events.

    Parameters
    ----------
    config : AlertingConfig
    alerts : AlertStore
        Where each action's outcome is recorded.
    flag_store : FlagStore, optional
        The service's flag store (flag actions are recorded as skipped without one).
    apply : bool
        Make flag changes (``True``) or only record them (replay without ``--apply``).
    http : httpx.Client, optional
        For webhooks (tests pass one with a mock transport).
    sleep : callable
        Waits between webhook retries (tests pass a no-op).
    """

    def __init__(
        self,
        config: AlertingConfig,
        alerts: AlertStore,
        flag_store: FlagStore | None = None,
        *,
        apply: bool = True,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.alerts = alerts
        self.flag_store = flag_store
        self.apply = apply
        self._http = http
        self.sleep = sleep

    def run(self, events: list[AlertEvent]) -> list[dict[str, Any]]:
        """Run the actions of ``events``; return one result per action (also recorded)."""
        results = []
        for event in events:
            rule = self.config.rule(event.alert.rule)
            for action in rule.actions:
                if event.kind != "opened" and not isinstance(action, WebhookAction):
                    continue  # flags and log lines on opening only
                try:
                    result = self._one(action, event, rule)
                except Exception as exc:  # an action must never take the loop down
                    log.exception("alert %s: action %r failed", event.alert.id, action)
                    result = {
                        "action": _kind(action),
                        "ok": False,
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                result = {"alert_id": event.alert.id, "event": event.kind, **result}
                results.append(result)
                try:
                    self.alerts.record(event.alert.id, event.at, "action", result)
                except Exception:
                    log.exception("alert %s: could not record the action's result", event.alert.id)
        return results

    def _one(self, action: Any, event: AlertEvent, rule: RuleSpec) -> dict[str, Any]:
        alert = event.alert
        if isinstance(action, FlagAction):
            return self._flag(action, alert, rule)
        if isinstance(action, WebhookAction):
            hooks = [w for w in self.config.notify.webhooks if action.webhook in ("*", w.name)]
            if not hooks:
                return {"action": "webhook", "ok": False, "error": "no webhook in notify.webhooks"}
            sent = [self._post(w, alert, rule) for w in hooks]
            return {"action": "webhook", "ok": all(s["ok"] for s in sent), "sent": sent}
        level = _LEVEL.get(alert.severity, logging.WARNING)
        log.log(
            level, "alert %s [%s] %s: %s", alert.id, rule.name, alert.segment_text, alert.message
        )
        return {"action": "log", "ok": True}

    def _flag(self, action: FlagAction, alert: Alert, rule: RuleSpec) -> dict[str, Any]:
        value = action.value
        out: dict[str, Any] = {"action": "flag", "flag": action.flag}
        if self.flag_store is None:
            return {
                **out,
                "value": value,
                "ok": False,
                "applied": False,
                "error": "no flag store configured",
            }
        if action.flag == "neutralize":
            current = tuple(self.flag_store.get("neutralize"))
            value = tuple(dict.fromkeys([*current, *value]))
        out["value"] = list(value) if isinstance(value, tuple) else value
        if not self.apply:
            return {**out, "ok": True, "applied": False}
        reason = (
            f"alert {alert.id} at {alert.opened_at:%Y-%m-%d %H:%M} UTC on "
            f"{alert.segment_text}: {alert.message}"
        )[:1000]
        change = self.flag_store.set(
            action.flag, value, actor=f"monitor:{rule.name}", reason=reason
        )
        return {**out, "ok": True, "applied": True, "old": change.old}

    def _post(self, hook: WebhookSpec, alert: Alert, rule: RuleSpec) -> dict[str, Any]:
        body = alertmanager_payload(alert, rule)
        client = self._http or httpx.Client()
        error = ""
        try:
            for attempt in range(hook.retries + 1):
                try:
                    r = client.post(
                        hook.url,
                        json=body,
                        headers=hook.headers,
                        timeout=hook.timeout.total_seconds(),
                    )
                    if r.status_code < 300:
                        return {
                            "webhook": hook.name,
                            "ok": True,
                            "status": r.status_code,
                            "attempts": attempt + 1,
                        }
                    error = f"HTTP {r.status_code}"
                    if r.status_code < 500 and r.status_code != 429:
                        break  # the receiver refuses this payload: retrying will not help
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                if attempt < hook.retries:
                    self.sleep(hook.backoff.total_seconds() * (2**attempt))
        finally:
            if self._http is None:
                client.close()
        log.warning(
            "alert %s: webhook %s (%s) failed: %s",
            alert.id,
            hook.name,
            redact_url(hook.url),
            redact_text(error),
        )
        return {"webhook": hook.name, "ok": False, "error": error, "attempts": attempt + 1}


def _kind(action: Any) -> str:
    return (
        "flag"
        if isinstance(action, FlagAction)
        else "webhook"
        if isinstance(action, WebhookAction)
        else "log"
    )
