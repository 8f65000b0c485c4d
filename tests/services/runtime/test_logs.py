"""Log lines never hold a secret: API keys, `key=` query values and Authorization / X-API-Key headers are masked in
every line the process writes, whichever logger wrote it (uvicorn's access log among them)."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterator

import pytest

from services.runtime.logs import configure_logging

KEY = "fp_0a1b2c3d4e5f_s3cr3t-PART_of-the-key"
OTHERS = ["letmein-0123", "plain-header-secret", "basic-credentials-xyz"]


@pytest.fixture(params=[True, False], ids=["json", "text"])
def written(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], str]]:
    """What the process's logging writes to stderr, set up as every process sets it up."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("INFO", json_lines=request.param)
    yield out.getvalue
    root.handlers[:] = handlers
    root.setLevel(level)


def test_no_line_holds_a_secret(written: Callable[[], str]) -> None:
    access = logging.getLogger("uvicorn.access")
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/v1/stream?key={KEY}&features=age", "1.1", 101)
    logging.getLogger("uvicorn.error").info('%s - "WebSocket %s" [accepted]', ("127.0.0.1", 5000),
                                           f"/v1/stream?features=age&key={OTHERS[0]}")  # fmt: skip
    log = logging.getLogger("faceplane.test")
    log.warning("headers %s", [(b"authorization", f"Bearer {KEY}".encode()), (b"x-api-key", OTHERS[1].encode())])
    log.warning("headers %s", {"Authorization": f"Basic {OTHERS[2]}", "X-API-Key": KEY})
    log.info("request", extra={"path": f"/v1/detect?key={OTHERS[0]}", "auth": f"Bearer {OTHERS[1]}"})
    try:
        raise KeyError(KEY)
    except KeyError:
        log.exception("failed")
    text = written()
    assert text.count("\n") >= 6, text
    for secret in [KEY.split("_", 2)[2], *OTHERS]:
        assert secret not in text, text
    assert "fp_0a1b2c3d4e5f_[redacted]" in text  # the key's id stays: it names the key, it does not open it
    assert "/v1/stream?key=[redacted]&features=age" in text


def test_ordinary_lines_are_left_alone(written: Callable[[], str]) -> None:
    logging.getLogger("faceplane.test").info("key_id=%s keys=%d monkey=%s", "0a1b2c3d4e5f", 3, "banana")
    assert "key_id=0a1b2c3d4e5f keys=3 monkey=banana" in written()
