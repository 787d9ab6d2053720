"""The scopes an API key can hold (a leaf: the CLI's help text reads it without the key store)."""

#: Scopes a key can hold.
SCOPES: dict[str, str] = {
    "decide": "ask for decisions (POST /v1/decisions, GET /v1/decisions/{id})",
    "score": "responses may include the model score",
    "monitor": "read the monitoring dashboard and its JSON API (/dashboard)",
    "admin": "operator endpoints (flags, metrics); implies every other scope",
}
#: Scopes of a key created without ``--scopes``.
DEFAULT_SCOPES: tuple[str, ...] = ("decide",)
