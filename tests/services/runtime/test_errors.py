"""Errors become statuses in one place: the error interceptor every service's server installs, seen from a real
gRPC client. A service of four methods, one of each streaming shape, raises what it is told to; the interceptor
answers a ServiceError or a mapped exception with its code's status, its message and the code in trailing metadata,
and a bug with INTERNAL `internal_error` and none of its details."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
import redis
from prometheus_client import REGISTRY

from deploy.local.stack import free_port
from services.runtime.backends import BackendError
from services.runtime.error_codes import ERROR_CODE_KEY, ErrorCode
from services.runtime.errors import ServiceError
from services.runtime.server import Registration, ServiceServer
from services.runtime.settings import ServiceSettings

SERVICE = "faceplane.test.Errors"
# What the methods raise, by the request's bytes.
FAILURES: dict[bytes, Callable[[], BaseException]] = {
    b"coded": lambda: ServiceError("count must be 1..64", code=ErrorCode.INVALID_COUNT),
    b"subclass": lambda: NotThere("no subject 'ada' in collection 'c'"),
    b"backend": lambda: BackendError("the model server did not answer"),
    b"redis": lambda: redis.ConnectionError("Connection refused"),
    b"bug": lambda: KeyError("a secret detail"),
}


class NotThere(ServiceError):
    code = ErrorCode.NOT_FOUND


def fail_if_told(request: bytes) -> None:
    if request in FAILURES:
        raise FAILURES[request]()


async def unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    if request == b"abort":  # a servicer may still end a call itself
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not you")
    fail_if_told(request)
    return b"ok:" + request


async def streamed(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    yield b"first"  # the failure comes after an answer has gone out
    fail_if_told(request)
    yield b"second"


async def written(request: bytes, context: grpc.aio.ServicerContext) -> None:
    """Streams with context.write, as grpc.aio lets a coroutine do (the health service's Watch does)."""
    await context.write(b"first")
    fail_if_told(request)
    await context.write(b"second")


async def collected(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
    seen = [r async for r in requests]
    for request in seen:
        fail_if_told(request)
    return b",".join(seen)


async def echoed(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    async for request in requests:
        fail_if_told(request)
        yield request


def registration() -> Registration:
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Streamed": grpc.unary_stream_rpc_method_handler(streamed),
            "Written": grpc.unary_stream_rpc_method_handler(written),
            "Collected": grpc.stream_unary_rpc_method_handler(collected),
            "Echoed": grpc.stream_stream_rpc_method_handler(echoed),
        },
    )

    def add(_servicer: Any, server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((handler,))

    # As the embedder declares redis's errors: an exception of another library that means a coded failure.
    return Registration(None, add, SERVICE, errors={redis.RedisError: ErrorCode.GALLERY_UNAVAILABLE})


@pytest.fixture
async def channel(request: pytest.FixtureRequest) -> AsyncIterator[grpc.aio.Channel]:
    settings = ServiceSettings(port=free_port(), **getattr(request, "param", {}))
    server = ServiceServer(settings, [registration()])
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield channel
    finally:
        await server.stop()


def answer(error: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str, str | None]:
    codes = [v for k, v in error.trailing_metadata() or () if k == ERROR_CODE_KEY]
    return error.code(), error.details() or "", codes[0] if codes else None


EXPECTED = {
    b"coded": (grpc.StatusCode.INVALID_ARGUMENT, "count must be 1..64", "invalid_count"),
    b"subclass": (grpc.StatusCode.NOT_FOUND, "no subject 'ada' in collection 'c'", "not_found"),
    b"backend": (grpc.StatusCode.UNAVAILABLE, "the model server did not answer", "model_unavailable"),
    b"redis": (grpc.StatusCode.UNAVAILABLE, "Connection refused", "gallery_unavailable"),
    b"bug": (grpc.StatusCode.INTERNAL, "the service failed to handle the call", "internal_error"),
}


async def test_an_answer_is_untouched(channel: grpc.aio.Channel) -> None:
    assert await channel.unary_unary(f"/{SERVICE}/Unary")(b"fine", timeout=5) == b"ok:fine"
    assert [r async for r in channel.unary_stream(f"/{SERVICE}/Streamed")(b"fine", timeout=5)] == [b"first", b"second"]
    assert [r async for r in channel.unary_stream(f"/{SERVICE}/Written")(b"fine", timeout=5)] == [b"first", b"second"]
    assert await channel.stream_unary(f"/{SERVICE}/Collected")(iter([b"a", b"b"]), timeout=5) == b"a,b"
    assert [r async for r in channel.stream_stream(f"/{SERVICE}/Echoed")(iter([b"a", b"b"]), timeout=5)] == [
        b"a",
        b"b",
    ]


@pytest.mark.parametrize("failure", list(EXPECTED))
async def test_a_unary_call_is_answered_with_its_code(channel: grpc.aio.Channel, failure: bytes) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await channel.unary_unary(f"/{SERVICE}/Unary")(failure, timeout=5)
    assert answer(err.value) == EXPECTED[failure]


@pytest.mark.parametrize("method", ["Streamed", "Written"])
@pytest.mark.parametrize("failure", [b"coded", b"redis", b"bug"])
async def test_a_streamed_answer_ends_with_its_code(channel: grpc.aio.Channel, method: str, failure: bytes) -> None:
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for response in channel.unary_stream(f"/{SERVICE}/{method}")(failure, timeout=5):
            received.append(response)
    assert received == [b"first"]
    assert answer(err.value) == EXPECTED[failure]


@pytest.mark.parametrize("failure", [b"subclass", b"bug"])
async def test_streamed_requests_are_answered_with_their_code(channel: grpc.aio.Channel, failure: bytes) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await channel.stream_unary(f"/{SERVICE}/Collected")(iter([b"a", failure]), timeout=5)
    assert answer(err.value) == EXPECTED[failure]
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for response in channel.stream_stream(f"/{SERVICE}/Echoed")(iter([b"a", failure]), timeout=5):
            received.append(response)
    assert received == [b"a"]
    assert answer(err.value) == EXPECTED[failure]


async def test_a_bug_is_logged_with_its_traceback_and_its_details_kept_from_the_caller(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="faceplane.server"), pytest.raises(grpc.aio.AioRpcError) as err:
        await channel.unary_unary(f"/{SERVICE}/Unary")(b"bug", timeout=5)
    assert "secret" not in str(err.value.details()) and "KeyError" not in str(err.value.details())
    (record,) = [r for r in caplog.records if r.getMessage() == "unexpected error"]
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert record.method == f"/{SERVICE}/Unary"  # type: ignore[attr-defined]


async def test_a_servicers_own_abort_passes_through(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await channel.unary_unary(f"/{SERVICE}/Unary")(b"abort", timeout=5)
    assert answer(err.value) == (grpc.StatusCode.PERMISSION_DENIED, "not you", None)


async def test_the_metrics_count_the_answered_status(channel: grpc.aio.Channel) -> None:
    labels = {"service": SERVICE, "method": "Unary", "code": "INTERNAL"}
    before = REGISTRY.get_sample_value("faceplane_grpc_server_errors_total", labels) or 0
    with pytest.raises(grpc.aio.AioRpcError):
        await channel.unary_unary(f"/{SERVICE}/Unary")(b"bug", timeout=5)
    assert REGISTRY.get_sample_value("faceplane_grpc_server_errors_total", labels) == before + 1


@pytest.mark.parametrize("channel", [{"auth_token": "the-token"}], indirect=True)
async def test_a_call_without_the_token_is_refused_through_the_same_interceptor(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await channel.unary_unary(f"/{SERVICE}/Unary")(b"fine", timeout=5)
    assert answer(err.value)[::2] == (grpc.StatusCode.UNAUTHENTICATED, "service_unauthenticated")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await channel.stream_stream(f"/{SERVICE}/Echoed")(iter([b"a"]), timeout=5).read()
    assert answer(err.value)[::2] == (grpc.StatusCode.UNAUTHENTICATED, "service_unauthenticated")
