"""Who may call what: the API key of a request (Authorization: Bearer … or X-API-Key), its scope for the route,
its collections, its rate limit and its concurrent requests. With auth off (make run, tests) every request is
let through as the `anonymous` key, and the audit log still says what was written."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as redis
from fastapi import Request, WebSocket

from gateway.error_codes import ErrorCode
from gateway.errors import ApiError
from gateway.keys import SLOT_TTL_S, Admission, ApiKey, KeyStore

log = logging.getLogger("faceplane.gateway")
ANONYMOUS = ApiKey("anonymous", "auth off", frozenset({"admin"}))


def key_store(request: Request | WebSocket) -> KeyStore:
    store: KeyStore = request.app.state.keys
    return store


def secret_of(request: Request | WebSocket) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


def check_collection(request: Request, collection: str) -> None:
    """403 unless the request's key may touch `collection` (for collections named outside the path)."""
    key: ApiKey = getattr(request.state, "api_key", ANONYMOUS)
    if not key.may_use(collection):
        raise ApiError(ErrorCode.FORBIDDEN, f"this API key may not use the collection '{collection}'")


async def consult(request: Request | WebSocket, secret: str | None, scope: str, collection: str | None) -> Admission:
    """The key store's answer for `secret`, `scope` and `collection`: admitted (a token and a concurrency slot
    taken; give the slot back with `release`) or refused. Raises 503 when the store cannot be reached."""
    if secret is None:
        return Admission("unauthenticated")
    try:
        return await key_store(request).admit(secret, scope, collection)
    except redis.RedisError as exc:
        raise ApiError(ErrorCode.AUTH_UNAVAILABLE, f"the key store cannot be reached: {exc}") from exc


def refusal(admission: Admission, scope: str, collection: str | None) -> ApiError:
    """The 401/403/429 a client sees for a refused admission."""
    key = admission.key
    if admission.refusal == "unauthenticated":
        return ApiError(ErrorCode.UNAUTHENTICATED, "send an API key: 'Authorization: Bearer <key>' or 'X-API-Key'")
    if admission.refusal == "forbidden_scope":
        return ApiError(ErrorCode.FORBIDDEN, f"this API key lacks the '{scope}' scope")
    if admission.refusal == "forbidden_collection":
        return ApiError(ErrorCode.FORBIDDEN, f"this API key may not use the collection '{collection}'")
    if admission.refusal == "rate_limited" and key is not None:
        return rate_limited(key, admission.wait_s)
    if admission.refusal == "too_many_concurrent" and key is not None:
        return ApiError(ErrorCode.TOO_MANY_CONCURRENT, f"this API key already has {key.max_concurrent} requests "
                        "running", headers={"Retry-After": "1"})  # fmt: skip
    return ApiError(ErrorCode.INVALID_API_KEY, "the API key is unknown or revoked")


def rate_limited(key: ApiKey, wait_s: float) -> ApiError:
    return ApiError(ErrorCode.RATE_LIMITED, f"rate limit of {key.rate_per_s:g}/s reached; retry in {wait_s:.1f} s",
                    headers={"Retry-After": str(math.ceil(wait_s))})  # fmt: skip


async def admit(request: Request | WebSocket, secret: str | None, scope: str, collection: str | None) -> Admission:
    """`consult`, raising the refusal a client should see."""
    admission = await consult(request, secret, scope, collection)
    if admission.refusal is not None:
        raise refusal(admission, scope, collection)
    return admission


async def release(request: Request | WebSocket, admission: Admission) -> None:
    assert admission.key is not None
    with contextlib.suppress(redis.RedisError):  # the slot expires by itself if Redis is gone
        await key_store(request).leave(admission.key, admission.slot)


async def spend_token(request: Request | WebSocket, key: ApiKey) -> None:
    """Count one more unit of work (a video frame) against the key's rate: 429 when it is used up."""
    try:
        wait = await key_store(request).take_token(key)
    except redis.RedisError as exc:
        raise ApiError(ErrorCode.AUTH_UNAVAILABLE, f"the key store cannot be reached: {exc}") from exc
    if wait > 0:
        raise rate_limited(key, wait)


async def hold(request: Request | WebSocket, admission: Admission) -> None:
    """Keep the slot of a long request (a video stream) from expiring while it runs; runs until cancelled."""
    assert admission.key is not None
    while True:
        await asyncio.sleep(SLOT_TTL_S / 3)
        with contextlib.suppress(redis.RedisError):  # the next renewal tries again before the slot expires
            await key_store(request).renew(admission.key, admission.slot)


def require(scope: str) -> Callable[[Request], AsyncIterator[ApiKey]]:
    """A route dependency: the request's key, checked for `scope`, the path's collection, rate and concurrency."""

    async def authorised(request: Request) -> AsyncIterator[ApiKey]:
        if not request.app.state.settings.auth:
            request.state.api_key = ANONYMOUS
            yield ANONYMOUS
            return
        collection = request.path_params.get("collection")
        admission = await consult(request, secret_of(request), scope, collection)
        if admission.refusal is not None:
            error = refusal(admission, scope, collection)
            if scope == "enrol":  # every route that wants `enrol` is a biometric write
                await audit_refused(request, admission.key, error.code)
            raise error
        assert admission.key is not None
        request.state.api_key = admission.key
        try:
            yield admission.key
        finally:
            await release(request, admission)

    return authorised


async def audit(request: Request, action: str, **what: Any) -> None:
    """Record a biometric write or delete the request made (after it succeeded)."""
    key: ApiKey = getattr(request.state, "api_key", ANONYMOUS)
    await _record(request, key.key_id, action, "ok", {k: str(v) for k, v in what.items()})


async def audit_refused(request: Request, key: ApiKey | None, outcome: str) -> None:
    """Record a biometric write refused before it ran: the route's action, the ids in its path, the client's
    address and the refusal's code (the key's id when the secret named a real key). Never the body."""
    route = request.scope.get("route")
    what = {name: str(value)[:64] for name, value in request.path_params.items()}
    if request.client:
        what["client"] = request.client.host
    await _record(request, key.key_id if key else "", getattr(route, "name", request.url.path), outcome, what)


async def _record(request: Request, who: str, action: str, outcome: str, what: dict[str, str]) -> None:
    # The write is done (or refused) either way: a failure to record it is logged loudly rather than turned into
    # an error the client would retry.
    try:
        await key_store(request).audit(who, action, outcome, **what)
    except redis.RedisError:
        log.exception("audit log write failed", extra={"key_id": who, "action": action, "outcome": outcome, **what})
