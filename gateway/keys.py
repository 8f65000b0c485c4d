"""API keys, rate limits and the audit log, kept in Redis (the galleries' Redis, its own key prefix).

A key is shown once at creation (`fp_<id>_<secret>`); only its sha256 is stored. Each key has scopes (read,
enrol, admin), the collections it may touch (`*` = all), a token-bucket rate limit and a cap on concurrent
requests — both kept in Redis so they hold across gateway replicas.

Admitting a request is one round trip: a Lua script finds the key, checks its scope and collection, takes a token
and a concurrency slot. Giving the slot back is a second. Nothing is cached, so a revoked key stops at once.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis

SCOPES = ("read", "enrol", "admin")
PREFIX = "fp:auth"
AUDIT_STREAM = "fp:audit"
AUDIT_MAX_ENTRIES = 1_000_000
# Refused writes go to a stream of their own: a flood of them cannot trim the record of writes that happened.
REFUSED_STREAM = "fp:audit:refused"
REFUSED_MAX_ENTRIES = 100_000
# A concurrency slot expires this long after it was taken or last renewed: the slots of a gateway that died
# mid-request come back by themselves. A stream renews its slot while it is open.
SLOT_TTL_S = 300
CLIENT_NAME = "faceplane-gateway"  # how the key store's connections show in Redis's CLIENT LIST
_SECRET = re.compile(r"fp_([A-Za-z0-9]+)_[A-Za-z0-9_-]+")

# Lua shared by the scripts: the server's clock (one clock for every gateway replica) and the token bucket, which
# returns 0 when a token was taken, else the seconds until one will be there.
_BUCKET = """
local function now_s()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1e6
end
local function take_token(bucket, rate, burst, now)
  local state = redis.call('HMGET', bucket, 'tokens', 'at')
  local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
  local wait = 0
  if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
  redis.call('HSET', bucket, 'tokens', tokens, 'at', now)
  redis.call('EXPIRE', bucket, math.ceil(burst / rate) + 60)
  return wait
end
"""

# KEYS: the secret's hash, the key's record, its bucket, its slots (a sorted set: slot id → expiry). ARGV: the key
# id the secret names, the scope, the collection ('' for none), a new slot id, the slot's TTL. Returns {outcome,
# record, wait}: outcome 'ok' (the token and the slot are taken) or the refusal's code. A refusal renews nothing.
_ADMIT = (
    _BUCKET
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'invalid_api_key'} end
local raw = redis.call('GET', KEYS[2])
if not raw then return {'invalid_api_key'} end
local decoded, key = pcall(cjson.decode, raw)
if not decoded or type(key) ~= 'table' or key.revoked ~= false or type(key.scopes) ~= 'table'
  or type(key.collections) ~= 'table' or type(key.rate_per_s) ~= 'number' or type(key.burst) ~= 'number'
  or type(key.max_concurrent) ~= 'number' then
  return {'invalid_api_key'}  -- revoked, or not a record this code wrote
end
local function has(list, value)
  for _, v in ipairs(list) do if v == value then return true end end
  return false
end
if not (has(key.scopes, ARGV[2]) or has(key.scopes, 'admin')) then return {'forbidden_scope', raw} end
if ARGV[3] ~= '' and not (has(key.collections, '*') or has(key.collections, ARGV[3])) then
  return {'forbidden_collection', raw}
end
local now = now_s()
local wait = take_token(KEYS[3], key.rate_per_s, key.burst, now)
if wait > 0 then return {'rate_limited', raw, tostring(wait)} end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
if redis.call('ZCARD', KEYS[4]) >= key.max_concurrent then return {'too_many_concurrent', raw} end
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), ARGV[4])
redis.call('EXPIRE', KEYS[4], ARGV[5])
return {'ok', raw}
"""
)

# KEYS: a key's bucket; ARGV: rate/s, burst. The seconds until a token is there, 0 when one was taken.
_TAKE_TOKEN = (
    _BUCKET
    + """
return tostring(take_token(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now_s()))
"""
)

# KEYS: a key's slots; ARGV: the slot id, its TTL. Pushes the slot's expiry back, if the slot is still held.
_RENEW = """
local t = redis.call('TIME')
if redis.call('ZADD', KEYS[1], 'XX', 'CH', tonumber(t[1]) + tonumber(ARGV[2]), ARGV[1]) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
"""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def connect(url: str, size: int, wait_s: float) -> redis.Redis:
    """A client of the key store holding at most `size` connections: a command that finds them all busy waits up to
    `wait_s` for one. (redis-py's default pool fails at once instead, `Too many connections`: 503s under a burst.)"""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=size,
        timeout=wait_s,
        socket_timeout=5,
        socket_connect_timeout=5,
        client_name=CLIENT_NAME,
    )
    return redis.Redis.from_pool(pool)


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


@dataclass(frozen=True)
class Admission:
    """What the key store said about a request: `refusal` is None when it was admitted (its token and `slot`
    taken), else the refusal's code; `key` is the key when the secret named one."""

    refusal: str | None
    key: ApiKey | None = None
    slot: str = ""
    wait_s: float = 0.0


class KeyStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._admit = client.register_script(_ADMIT)
        self._take = client.register_script(_TAKE_TOKEN)
        self._renew = client.register_script(_RENEW)

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

    async def admit(self, secret: str, scope: str, collection: str | None) -> Admission:
        """One round trip: may `secret`'s key do `scope` (on `collection`) now? Takes a token and a slot if so."""
        named = _SECRET.fullmatch(secret)
        if named is None:  # not a key's shape: no need to ask
            return Admission("invalid_api_key")
        key_id, slot = named.group(1), secrets.token_hex(8)
        keys = [f"{PREFIX}:hash:{digest(secret)}", f"{PREFIX}:key:{key_id}", f"{PREFIX}:bucket:{key_id}",
                f"{PREFIX}:slots:{key_id}"]  # fmt: skip
        outcome, *rest = await self._admit(keys=keys, args=[key_id, scope, collection or "", slot, SLOT_TTL_S])
        key = self._key(json.loads(rest[0])) if rest else None
        if outcome == b"ok":
            return Admission(None, key, slot)
        refusal = outcome.decode()
        return Admission(refusal, key, wait_s=float(rest[1]) if len(rest) > 1 else 0.0)

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
        """0 if one more unit of work (a video frame) may go, else seconds until the key's bucket holds a token."""
        return float(await self._take(keys=[f"{PREFIX}:bucket:{key.key_id}"], args=[key.rate_per_s, key.burst]))

    async def renew(self, key: ApiKey, slot: str) -> None:
        """Push back the expiry of a slot held for long (a video stream)."""
        await self._renew(keys=[f"{PREFIX}:slots:{key.key_id}"], args=[slot, SLOT_TTL_S])

    async def leave(self, key: ApiKey, slot: str) -> None:
        await self.redis.zrem(f"{PREFIX}:slots:{key.key_id}", slot)

    async def audit(self, who: str, action: str, outcome: str = "ok", **what: str) -> None:
        """One biometric write or delete, or (outcome: the refusal's code) one refused: who, what, when. Never the
        image."""
        entry = {"ts": f"{time.time():.3f}", "key_id": who, "action": action, "outcome": outcome, **what}
        stream, cap = (AUDIT_STREAM, AUDIT_MAX_ENTRIES) if outcome == "ok" else (REFUSED_STREAM, REFUSED_MAX_ENTRIES)
        await self.redis.xadd(stream, entry, maxlen=cap, approximate=True)

    async def audit_log(self, count: int = 100, refused: bool = False) -> list[dict[str, str]]:
        entries = await self.redis.xrevrange(REFUSED_STREAM if refused else AUDIT_STREAM, count=count)
        return [{k.decode(): v.decode() for k, v in fields.items()} | {"id": i.decode()} for i, fields in entries]
