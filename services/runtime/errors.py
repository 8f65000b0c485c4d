"""Errors become gRPC statuses in one place: a domain exception carries its registered code (and through it its
status), and `ErrorInterceptor`, on every service's server, answers it with that status, its message and the code in
trailing metadata, so callers can pass the code on to their clients. Servicers hold no try/except of their own."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, NoReturn

import grpc

from services.runtime.error_codes import ERROR_CODE_KEY, ErrorCode

log = logging.getLogger("faceplane.server")

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Any]


class ServiceError(Exception):
    """A failure the caller is told about: `str(exc)` is the message it gets, `code` the machine code. A subclass
    whose every instance means the same declares `code`; otherwise the raise site passes it."""

    code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def status(self) -> grpc.StatusCode:
        return self.code.grpc_status or grpc.StatusCode.INTERNAL


async def abort(context: grpc.aio.ServicerContext, code: ErrorCode, message: str) -> NoReturn:
    """End the call with `code`'s gRPC status, `message` and the code in trailing metadata (raises AbortError)."""
    status = code.grpc_status or grpc.StatusCode.INTERNAL
    await context.abort(status, message, trailing_metadata=((ERROR_CODE_KEY, code.value),))
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Answers a `ServiceError`, or an exception of a type `mapped` names (one of another library, e.g. redis's),
    with its code. Anything else is a bug: logged with its traceback and answered INTERNAL `internal_error`, its
    details kept from the caller."""

    def __init__(self, mapped: Mapping[type[Exception], ErrorCode] | None = None) -> None:
        self.mapped = dict(mapped or {})

    def code_of(self, exc: Exception) -> ErrorCode | None:
        if isinstance(exc, ServiceError):
            return exc.code
        for kind, code in self.mapped.items():
            if isinstance(exc, kind):
                return code
        return None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method

        async def answer(exc: Exception, context: grpc.aio.ServicerContext) -> NoReturn:
            code = self.code_of(exc)
            if code is None:
                log.error("unexpected error", extra={"method": method}, exc_info=exc)
                await abort(context, ErrorCode.INTERNAL_ERROR, "the service failed to handle the call")
            else:
                await abort(context, code, str(exc))

        return handler_like(handler, _guarded(behaviour_of(handler), answer))


def _guarded(
    behaviour: Behaviour, answer: Callable[[Exception, grpc.aio.ServicerContext], Awaitable[NoReturn]]
) -> Behaviour:
    """`behaviour` with its exceptions answered by `answer`, and of the same kind: grpc.aio calls a coroutine
    function (its result, or its writes with context.write, are the answer) and iterates an async generator."""
    if inspect.isasyncgenfunction(behaviour):

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async for response in behaviour(request, context):
                    yield response
            except grpc.aio.AbortError:  # the behaviour ended the call itself
                raise
            except Exception as exc:
                await answer(exc, context)

        return streaming
    if inspect.iscoroutinefunction(behaviour):

        async def answering(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await behaviour(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await answer(exc, context)

        return answering
    return behaviour  # a synchronous behaviour (none of ours) runs on grpc's thread pool and keeps grpc's answers


def behaviour_of(handler: grpc.RpcMethodHandler) -> Behaviour:
    return handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream


def handler_like(handler: grpc.RpcMethodHandler, behaviour: Behaviour) -> grpc.RpcMethodHandler:
    """A handler of the same shape (request and response streaming) and serialisation as `handler`."""
    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    return make(
        behaviour, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
    )
