"""One registry of error codes (services/runtime/error_codes.py): every code the code can raise is in it, with the
HTTP status the client gets and, for a code a service sends, its gRPC status."""

from __future__ import annotations

import ast
from pathlib import Path

import grpc
import pytest

from gateway.error_codes import ErrorCode, status_of
from gateway.errors import ApiError
from services.detector.decode import ImageDecodeError
from services.embedder.gallery import InvalidId, ModelMismatch, NotFound
from services.embedder.servicer import GALLERY_ERRORS
from services.runtime.crops import CropSpecError
from services.runtime.errors import ServiceError
from services.runtime.server import RUNTIME_ERRORS

REPO = Path(__file__).resolve().parents[2]
# Calls whose argument at this position is a client-visible machine code, where it is still a string literal.
CODE_ARGUMENT = {"ApiError": 0, "ImageDecodeError": 0, "error_response": 1, "error_body": 0}


def raised_codes() -> tuple[set[str], set[str]]:
    """The string literals passed as codes, and the names of every `ErrorCode.<NAME>` the code refers to."""
    literals, names = set(), set()
    for folder in ("gateway", "services"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "ErrorCode":
                    names.add(node.attr)
                if not isinstance(node, ast.Call):
                    continue
                literals |= {
                    k.value.value
                    for k in node.keywords
                    if k.arg == "code" and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)
                }  # ServiceError(message, code=…)
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                position = CODE_ARGUMENT.get(name or "")
                if position is not None and len(node.args) > position:
                    argument = node.args[position]
                    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                        literals.add(argument.value)
    return literals, names


def test_every_code_raised_is_registered():
    literals, names = raised_codes()
    assert {"NO_FACE", "INVALID_CROP", "CORRUPT_IMAGE", "MODEL_UNAVAILABLE"} <= names, "the scan is broken"
    assert sorted(n for n in names if n not in ErrorCode.__members__ and not n.startswith("_")) == []
    assert sorted(c for c in literals if status_of(c, 0) == 0) == []


def subclasses(cls: type) -> list[type]:
    return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]


def test_every_code_a_service_sends_has_its_grpc_status():
    errors = subclasses(ServiceError)
    assert {NotFound, ModelMismatch, InvalidId, CropSpecError, ImageDecodeError} <= set(errors)
    assert [e.__name__ for e in errors if e.code.grpc_status is None] == []
    assert [c for c in [*GALLERY_ERRORS.values(), *RUNTIME_ERRORS.values()] if c.grpc_status is None] == []
    for code in ("empty_image", "invalid_image", "image_too_large", "unsupported_image", "corrupt_image"):
        assert ErrorCode(code).grpc_status == grpc.StatusCode.INVALID_ARGUMENT  # ImageDecodeError's codes


def test_the_registry_is_a_leaf_the_gateway_may_import():
    """The gateway imports services/runtime/error_codes.py (and no other service code): it must import nothing of
    ours, or the gateway would import service code through it."""
    tree = ast.parse((REPO / "services/runtime/error_codes.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "enum", "grpc"}


def test_status_comes_from_the_registry():
    assert ApiError("no_face", "x").status == 422
    assert ApiError("rate_limited", "x").status == 429
    assert ApiError("emotion_failed", "x").status == 502
    assert ApiError("embedder_unavailable", "x").status == 503
    assert ApiError("generator_not_configured", "x").status == 503


def test_an_unregistered_code_is_refused():
    with pytest.raises(KeyError, match="unregistered error code 'made_up'"):
        ApiError("made_up", "x")
    assert status_of("made_up", 422) == 422
