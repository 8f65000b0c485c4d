"""Structured logging: one JSON object per line on stderr (or plain text for a developer's terminal), with
secrets masked in every line, whichever library wrote it."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

# What a log line must never hold, however it was printed (a URL, a dict or list of headers, JSON with its quotes
# escaped): an API key's secret (`fp_<id>_<secret>`: the id stays, it is no secret), the value of a `key=` query
# parameter (uvicorn logs a websocket's path with its query), an Authorization or X-API-Key header's value.
_QUOTE = r"""(?:\\?["'])?"""
_VALUE = r"""[^\s"'\\,;&)\]]+"""
_SECRETS = [
    (re.compile(r"""([?&;](?:api_?)?key=)[^&\s"'\\#;]+""", re.IGNORECASE), r"\1[redacted]"),
    (
        re.compile(rf"((?:authorization|x-api-key){_QUOTE}\s*[:=,]\s*b?{_QUOTE})(?:\w+\s+)?{_VALUE}", re.IGNORECASE),
        r"\1[redacted]",
    ),
    (re.compile(rf"(\bbearer\s+){_VALUE}", re.IGNORECASE), r"\1[redacted]"),
    (re.compile(r"\b(fp_[A-Za-z0-9]+_)[A-Za-z0-9_-]+"), r"\1[redacted]"),  # last: the others take whole values
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class Redacting(logging.Formatter):
    """Another formatter's lines with `redact` applied: the whole line, message, extra fields and traceback."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def formatter(json_lines: bool = True) -> logging.Formatter:
    plain = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    return Redacting(JsonFormatter() if json_lines else plain)


def configure_logging(level: str = "INFO", json_lines: bool = True) -> None:
    """Every record reaches the root's one handler (uvicorn's loggers too: the gateway runs it with
    `log_config=None`, so they propagate), which writes it through `formatter`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(json_lines))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
