"""One registry of error codes: every code the code can raise is in it, with the status the client gets."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gateway.error_codes import CODES, status_of
from gateway.errors import ApiError

REPO = Path(__file__).resolve().parents[2]
# Calls whose argument at this position is a client-visible machine code.
CODE_ARGUMENT = {"ApiError": 0, "ImageDecodeError": 0, "abort_invalid": 1, "abort_unavailable": 1, "abort": 2}


def raised_codes() -> set[str]:
    found = set()
    for folder in ("gateway", "services"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                position = CODE_ARGUMENT.get(name or "")
                if position is not None and len(node.args) > position:
                    argument = node.args[position]
                    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                        found.add(argument.value)
    return found


def test_every_literal_code_is_registered():
    codes = raised_codes()
    assert {"no_face", "invalid_crop", "corrupt_image", "model_unavailable"} <= codes, "the scan is broken"
    assert sorted(c for c in codes if status_of(c, 0) == 0) == []


def test_the_gallery_errors_are_registered():
    from services.embedder.servicer import _GALLERY_ERRORS

    assert all(code in CODES for _, _, code in _GALLERY_ERRORS)


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
