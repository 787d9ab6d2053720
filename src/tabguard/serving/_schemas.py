"""The API's documented shapes: response models and the request schema drawn from the contract.

The request body is not parsed by FastAPI (the guards must authenticate before they read it),
so its OpenAPI schema is written here from the feature contract: types, ranges, categories,
decimals. Clients and schemathesis read it from ``/openapi.json``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tabguard.contract import Contract


class DecisionResponse(BaseModel):
    """``200``: the decision (the score only for keys with the ``score`` scope)."""

    model_config = ConfigDict(extra="forbid")

    decision_id: str = Field(description="Id of the decision (and of its prediction-log record).")
    decision: Literal["approve", "deny", "review"]
    model_version: str = Field(description="The model (or rule policy) version that decided.")
    score: float | None = Field(
        default=None,
        description="P(positive label); present only for keys with the 'score' scope.",
    )


class DelayedResponse(BaseModel):
    """``202``: the decision is made but released at ``available_at``."""

    model_config = ConfigDict(extra="forbid")

    decision_id: str
    available_at: str = Field(description="ISO 8601 UTC time from which GET returns it.")


class ErrorItem(BaseModel):
    """One problem with a request."""

    field: str = Field(description="The feature or request field at fault.")
    rule: str = Field(description="Machine-readable rule id: type, min, max, category, ...")
    value: Any = Field(default=None, description="The value received.")
    message: str = Field(description="One sentence for people, with the allowed values.")


class ValidationErrorResponse(BaseModel):
    """``422`` (``413`` for an oversized body): every problem found."""

    errors: list[ErrorItem]
    decision_id: str | None = None


class ErrorResponse(BaseModel):
    """``401``, ``403``, ``404``, ``429``, ``500``, ``503``."""

    error: str
    reason: str | None = Field(
        default=None,
        description="client_limit, subject_limit, probing_throttle, flow_disabled, "
        "rate_limit_store_unavailable, key_store_unavailable, ...",
    )
    retry_after: int | None = Field(default=None, description="Seconds (429); also a header.")
    decision_id: str | None = None


class HealthResponse(BaseModel):
    """``GET /health``."""

    status: Literal["ok", "degraded"]
    model_version: str
    detail: dict[str, Any] | None = Field(
        default=None, description="Scorers, flags, log and probing state (admin keys only)."
    )


class LiveResponse(BaseModel):
    """``GET /livez``."""

    status: Literal["alive"]


class ReadyResponse(BaseModel):
    """``GET /readyz``: 200 ready, 503 not ready."""

    status: Literal["ready", "not_ready"]
    reason: str = Field(description="Why not ready, or which non-blocking store is degraded.")
    checks: dict[str, str] = Field(
        default_factory=dict,
        description="keys, limits, flags, log: ok | down | down (fail_open) | stale | spooling.",
    )


def feature_schema(contract: Contract) -> dict[str, Any]:
    """The JSON Schema of the ``features`` object of a request, from the contract."""
    props: dict[str, Any] = {}
    required: list[str] = []
    for name, spec in contract.items():
        s: dict[str, Any]
        if spec.type == "category":
            s = {"enum": list(spec.categories or [])}
        elif spec.type == "boolean":
            s = {"type": "boolean"}
        else:
            s = {"type": "integer" if spec.type == "integer" else "number"}
            if spec.min is not None:
                s["minimum"] = _num(spec.min)
            if spec.max is not None:
                s["maximum"] = _num(spec.max)
            if spec.type == "number" and spec.precision is not None:
                s["multipleOf"] = 1 if spec.precision == 0 else 10.0**-spec.precision
        if spec.description:
            s["description"] = spec.description
        if spec.nullable:
            s = {"anyOf": [s, {"type": "null"}]}
        else:
            required.append(name)
        props[name] = s
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
        "description": f"Attributes declared by contract '{contract.name}'.",
    }


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def request_schema(contract: Contract) -> dict[str, Any]:
    """The JSON Schema of a ``POST /v1/decisions`` body."""
    example = {
        "subject_id": "customer-17",
        "features": contract.neutral_record(),
        "segment": {"channel": "web"},
    }
    return {
        "type": "object",
        "required": ["subject_id", "features"],
        "additionalProperties": False,
        "properties": {
            "subject_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 256,
                "pattern": r"\S",
                "description": "The subject (customer) the decision is about; per-subject "
                "limits count on it.",
            },
            "features": feature_schema(contract),
            "segment": {
                "type": "object",
                "maxProperties": 32,
                "propertyNames": {"maxLength": 64},
                "additionalProperties": {
                    "anyOf": [
                        {"type": "string", "maxLength": 256},
                        {"type": "number"},
                        {"type": "boolean"},
                        {"type": "null"},
                    ]
                },
                "description": "Monitoring segment attributes (channel, region, product...).",
            },
        },
        "example": example,
    }
