"""The Redis flag store: flags shared by every replica through one Redis."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tabguard.flags._base import BaseFlagStore
from tabguard.flags._model import FLAG_SPECS, FlagChange, decode_value, encode_value
from tabguard.storage import backend_errors, create_redis_client, redact_url

# Atomic change: read the old value, write the new one, bump the version and push the audit
# entry in one script, so concurrent changes from several hosts never interleave.
# KEYS: values hash, version counter, history list. ARGV: name, new JSON, default JSON,
# actor, reason ('' = none), ISO time.
_SET_SCRIPT = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then old = ARGV[3] end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local v = redis.call('INCR', KEYS[2])
local entry = cjson.encode({version=v, name=ARGV[1], old=old, new=ARGV[2], actor=ARGV[4],
                            reason=ARGV[5], changed_at=ARGV[6]})
redis.call('LPUSH', KEYS[3], entry)
return {v, old}
"""


class RedisFlagStore(BaseFlagStore):
    """Flags in a Redis hash, a version counter and an audit-trail list.

    Parameters
    ----------
    url : str
        ``redis://host:port/db``.
    prefix : str, default "tabguard:"
        Prefix of every key, so several deployments (or tests) can share one Redis.
    """

    def __init__(self, url: str, prefix: str = "tabguard:") -> None:
        self.url = url
        self.prefix = prefix
        self._what = f"flag store {redact_url(url)}"
        self._client = create_redis_client(url)
        self._values_key = f"{prefix}flags"
        self._version_key = f"{prefix}flags:version"
        self._history_key = f"{prefix}flags:history"
        self._set = self._client.register_script(_SET_SCRIPT)

    def _read_values(self) -> dict[str, Any]:
        with backend_errors(self._what, "read flags"):
            raw: dict[str, str] = self._client.hgetall(self._values_key)
        return {name: decode_value(value) for name, value in raw.items()}

    def _write(
        self, name: str, value: Any, actor: str, reason: str | None, at: datetime
    ) -> FlagChange:
        args = [
            name,
            encode_value(value),
            encode_value(FLAG_SPECS[name].default),
            actor,
            reason or "",
            at.isoformat(),
        ]
        with backend_errors(self._what, f"set flag {name!r}"):
            version, old = self._set(
                keys=[self._values_key, self._version_key, self._history_key], args=args
            )
        return FlagChange(int(version), name, decode_value(old), value, actor, reason, at)

    def history(self, limit: int = 50, name: str | None = None) -> list[FlagChange]:
        """Return the audit trail, newest first."""
        if limit <= 0:
            return []
        # Filtering by name scans the list; the trail holds operator changes, so it is short.
        end = limit - 1 if name is None else -1
        with backend_errors(self._what, "read the flag history"):
            entries: list[str] = self._client.lrange(self._history_key, 0, end)
        changes = []
        for text in entries:
            e = json.loads(text)
            if name is not None and e["name"] != name:
                continue
            changes.append(
                FlagChange(
                    version=int(e["version"]),
                    name=e["name"],
                    old=decode_value(e["old"]),
                    new=decode_value(e["new"]),
                    actor=e["actor"],
                    reason=e["reason"] or None,
                    changed_at=datetime.fromisoformat(e["changed_at"]),
                )
            )
        return changes[:limit]

    def version(self) -> int:
        """Return the change counter (0 before the first)."""
        with backend_errors(self._what, "read the flag version"):
            value = self._client.get(self._version_key)
        return int(value or 0)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
