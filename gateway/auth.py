"""Who may call what: the API key of a request (Authorization: Bearer … or X-API-Key), its scope for the route,
its collections, its rate limit and its concurrent requests. With auth off (make run, tests) every request is
let through as the `anonymous` key, and the audit log still says what was written."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as redis
from fastapi import Request, WebSocket

from gateway.errors import ApiError
from gateway.keys import ApiKey, KeyStore

log = logging.getLogger("faceplane.gateway")
ANONYMOUS = ApiKey("anonymous", "auth off", frozenset({"admin"}))


def key_store(request: Request | WebSocket) -> KeyStore:
    return request.app.state.keys


def secret_of(request: Request | WebSocket) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


def check_collection(request: Request, collection: str) -> None:
    """403 unless the request's key may touch `collection` (for collections named outside the path)."""
    key: ApiKey = getattr(request.state, "api_key", ANONYMOUS)
    if not key.may_use(collection):
        raise ApiError("forbidden", f"this API key may not use the collection '{collection}'")


async def admit(request: Request | WebSocket, secret: str | None, scope: str, collection: str | None) -> ApiKey:
    """The key for `secret` if it may do `scope` (on `collection`) now; its concurrency slot is taken (give it
    back with `release`). Raises the 401/403/429/503 a client should see."""
    if secret is None:
        raise ApiError("unauthenticated", "send an API key: 'Authorization: Bearer <key>' or 'X-API-Key'")
    store = key_store(request)
    try:
        key = await store.lookup(secret)
    except redis.RedisError as exc:
        raise ApiError("auth_unavailable", f"the key store cannot be reached: {exc}") from exc
    if key is None or key.revoked:
        raise ApiError("invalid_api_key", "the API key is unknown or revoked")
    if not key.may(scope):
        raise ApiError("forbidden", f"this API key lacks the '{scope}' scope")
    if collection is not None and not key.may_use(collection):
        raise ApiError("forbidden", f"this API key may not use the collection '{collection}'")
    try:
        wait = await store.take_token(key)
        admitted = wait == 0 and await store.enter(key)
    except redis.RedisError as exc:
        raise ApiError("auth_unavailable", f"the key store cannot be reached: {exc}") from exc
    if wait > 0:
        raise ApiError("rate_limited", f"rate limit of {key.rate_per_s:g}/s reached; retry in {wait:.1f} s",
                       headers={"Retry-After": str(math.ceil(wait))})  # fmt: skip
    if not admitted:
        raise ApiError("too_many_concurrent", f"this API key already has {key.max_concurrent} requests "
                       "running", headers={"Retry-After": "1"})  # fmt: skip
    return key


async def release(request: Request | WebSocket, key: ApiKey) -> None:
    with contextlib.suppress(redis.RedisError):  # the slot expires by itself if Redis is gone
        await key_store(request).leave(key)


def require(scope: str) -> Callable[[Request], AsyncIterator[ApiKey]]:
    """A route dependency: the request's key, checked for `scope`, the path's collection, rate and concurrency."""

    async def authorised(request: Request) -> AsyncIterator[ApiKey]:
        if not request.app.state.settings.auth:
            request.state.api_key = ANONYMOUS
            yield ANONYMOUS
            return
        key = await admit(request, secret_of(request), scope, request.path_params.get("collection"))
        request.state.api_key = key
        try:
            yield key
        finally:
            await release(request, key)

    return authorised


async def audit(request: Request, action: str, **what: Any) -> None:
    """Record a biometric write or delete the request made (after it succeeded). The write is done: a failure
    to record it is logged loudly rather than turned into an error the client would retry."""
    key: ApiKey = getattr(request.state, "api_key", ANONYMOUS)
    try:
        await key_store(request).audit(key.key_id, action, **{k: str(v) for k, v in what.items()})
    except redis.RedisError:
        log.exception("audit log write failed", extra={"key_id": key.key_id, "action": action, **what})
