"""API keys, rate limits and the audit log, kept in Redis (the galleries' Redis, its own key prefix).

A key is shown once at creation (`fp_<id>_<secret>`); only its sha256 is stored. Each key has scopes (read,
enrol, admin), the collections it may touch (`*` = all), a token-bucket rate limit and a cap on concurrent
requests — both kept in Redis so they hold across gateway replicas.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis

SCOPES = ("read", "enrol", "admin")
PREFIX = "fp:auth"
AUDIT_STREAM = "fp:audit"
AUDIT_MAX_ENTRIES = 1_000_000

# Token bucket: KEYS[1] the bucket hash; ARGV rate/s, burst, now (s). Returns 0 when a token was taken, else the
# seconds until one will be there.
_TAKE_TOKEN = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return tostring(wait)
"""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    scopes: frozenset[str]
    collections: tuple[str, ...] = ("*",)
    rate_per_s: float = 10.0
    burst: int = 20
    max_concurrent: int = 8
    revoked: bool = False
    created: float = field(default_factory=time.time)

    def may(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def may_use(self, collection: str) -> bool:
        return "*" in self.collections or collection in self.collections

    def public(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "name": self.name, "scopes": sorted(self.scopes),
                "collections": list(self.collections), "rate_per_s": self.rate_per_s, "burst": self.burst,
                "max_concurrent": self.max_concurrent, "revoked": self.revoked, "created": self.created}  # fmt: skip


class KeyStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._take = client.register_script(_TAKE_TOKEN)

    async def create(
        self,
        name: str,
        scopes: list[str],
        collections: list[str] | None = None,
        rate_per_s: float = 10.0,
        burst: int = 20,
        max_concurrent: int = 8,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret (shown once; only its hash is stored)."""
        unknown = set(scopes) - set(SCOPES)
        if unknown or not scopes:
            raise ValueError(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}")
        if rate_per_s <= 0 or burst < 1 or max_concurrent < 1:
            raise ValueError("rate_per_s must be > 0, burst and max_concurrent ≥ 1")
        key_id = secrets.token_hex(6)
        secret = f"fp_{key_id}_{secrets.token_urlsafe(24)}"
        key = ApiKey(key_id, name, frozenset(scopes), tuple(collections or ["*"]), rate_per_s, burst, max_concurrent)
        record = {**key.public(), "hash": digest(secret)}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(f"{PREFIX}:hash:{record['hash']}", key_id)
            pipe.set(f"{PREFIX}:key:{key_id}", json.dumps(record))
            await pipe.execute()
        return key, secret

    async def _load(self, key_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(f"{PREFIX}:key:{key_id}")
        return json.loads(raw) if raw else None

    @staticmethod
    def _key(record: dict[str, Any]) -> ApiKey:
        return ApiKey(record["key_id"], record["name"], frozenset(record["scopes"]), tuple(record["collections"]),
                      record["rate_per_s"], record["burst"], record["max_concurrent"], record["revoked"],
                      record["created"])  # fmt: skip

    async def lookup(self, secret: str) -> ApiKey | None:
        key_id = await self.redis.get(f"{PREFIX}:hash:{digest(secret)}")
        record = await self._load(key_id.decode() if isinstance(key_id, bytes) else key_id) if key_id else None
        return self._key(record) if record else None

    async def revoke(self, key_id: str) -> bool:
        record = await self._load(key_id)
        if record is None:
            return False
        record["revoked"] = True
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(f"{PREFIX}:key:{key_id}", json.dumps(record))
            pipe.delete(f"{PREFIX}:hash:{record['hash']}")
            await pipe.execute()
        return True

    async def all(self) -> list[ApiKey]:
        keys = [k async for k in self.redis.scan_iter(match=f"{PREFIX}:key:*")]
        records = [json.loads(r) for r in await self.redis.mget(keys)] if keys else []
        return sorted((self._key(r) for r in records if r), key=lambda k: k.created)

    async def take_token(self, key: ApiKey) -> float:
        """0 if the request may go, else seconds until the key's bucket holds a token again."""
        wait = await self._take(keys=[f"{PREFIX}:bucket:{key.key_id}"], args=[key.rate_per_s, key.burst, time.time()])
        return float(wait)

    async def enter(self, key: ApiKey) -> bool:
        """Count a request in; False (and nothing counted) when the key already has max_concurrent running."""
        name = f"{PREFIX}:running:{key.key_id}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, 300)  # a gateway that died mid-request cannot hold the slots forever
            running, _ = await pipe.execute()
        if running > key.max_concurrent:
            await self.redis.decr(name)
            return False
        return True

    async def leave(self, key: ApiKey) -> None:
        await self.redis.decr(f"{PREFIX}:running:{key.key_id}")

    async def audit(self, who: str, action: str, **what: str) -> None:
        """One biometric write or delete: who, what, when. Never the image."""
        entry = {"ts": f"{time.time():.3f}", "key_id": who, "action": action, **what}
        await self.redis.xadd(AUDIT_STREAM, entry, maxlen=AUDIT_MAX_ENTRIES, approximate=True)

    async def audit_log(self, count: int = 100) -> list[dict[str, str]]:
        entries = await self.redis.xrevrange(AUDIT_STREAM, count=count)
        return [{k.decode(): v.decode() for k, v in fields.items()} | {"id": i.decode()} for i, fields in entries]
