"""gRPC errors with a machine-readable code in trailing metadata, so callers can pass it on to their clients."""

from __future__ import annotations

from typing import NoReturn

import grpc

ERROR_CODE_KEY = "faceplane-error-code"


async def abort(context: grpc.aio.ServicerContext, status: grpc.StatusCode, code: str, message: str) -> NoReturn:
    await context.abort(status, message, trailing_metadata=((ERROR_CODE_KEY, code),))
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


async def abort_invalid(context: grpc.aio.ServicerContext, code: str, message: str) -> NoReturn:
    await abort(context, grpc.StatusCode.INVALID_ARGUMENT, code, message)


async def abort_unavailable(context: grpc.aio.ServicerContext, code: str, message: str) -> NoReturn:
    await abort(context, grpc.StatusCode.UNAVAILABLE, code, message)
