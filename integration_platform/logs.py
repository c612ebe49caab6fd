"""Structured JSON logs for connectors, loader and receiver, with every secret redacted.

`configure_logging()` routes structlog and the standard library's loggers (httpx, uvicorn,
dagster, ...) through one JSON renderer whose last step scrubs secrets: values of the
environment variables that specs mark as secrets, plus anything under a secret-looking key.
Context (source, endpoint, partition, request id, attempt) is bound with `bind_context` and
rides along on every line logged inside it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog

from integration_platform.http.redaction import ALWAYS_SECRET_PARAMS, REDACTED

# Not `client_id`: in this platform it names the integration client a line is about (which
# operators need to read); an OAuth client id is scrubbed by value instead, as every spec's
# client ids are registered when the spec is resolved (and `*_CLIENT_ID` variables at start).
SECRET_KEYS = re.compile(
    r"(authorization|api[_-]?key|token|secret|password|signature|cookie|credential)", re.I
)
# In free text (an error message quoting a URL): credentials in a URL's userinfo, and the
# values of query parameters that carry credentials, whatever secret values are registered.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s@]+@")
_SECRET_QUERY_VALUE = re.compile(
    r"(?i)([?&;](?:"
    + "|".join(
        map(
            re.escape,
            sorted(
                ALWAYS_SECRET_PARAMS
                | {"client_id", "refresh_token", "id_token", "code", "password"}
            ),
        )
    )
    + r")=)[^&#\s'\"<>)]+"
)
# Variables whose values are secrets even when no spec names them (the sandbox's own).
SECRET_VARIABLE = re.compile(r"(SECRET|TOKEN|API_KEY|PASSWORD|CLIENT_ID|KEY_ID)$")

HANDLER_NAME = "integration_platform_json"

_secrets: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Add values that must never appear in a log line (short ones are ignored: too common)."""
    _secrets.update(v for v in values if v and len(v) >= 6)


def secrets_from_environment(environ: MutableMapping[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    return [value for name, value in env.items() if SECRET_VARIABLE.search(name) and value]


def scrub_text(text: str) -> str:
    """`text` with every registered secret, URL userinfo and secret query value replaced."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "://" in text:
        text = _URL_USERINFO.sub(rf"\1{REDACTED}@", text)
    if "=" in text:
        text = _SECRET_QUERY_VALUE.sub(rf"\1{REDACTED}", text)
    return text


def _scrub(value: Any, key: str = "") -> Any:
    if key and SECRET_KEYS.search(key) and isinstance(value, str | bytes):
        return REDACTED
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the last word before rendering."""
    return {key: _scrub(value, key) for key, value in event.items()}


def configure_logging(level: str | None = None, stream: Any = None) -> None:
    """JSON lines on stderr (or `stream`) for structlog and stdlib loggers alike."""
    register_secrets(secrets_from_environment())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact_secrets,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != HANDLER_NAME]
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("LOG_LEVEL", "INFO"))
    # Our http_request lines say more (source, attempt, latency) than httpx's; gql logs whole
    # response bodies at debug, which would put customer data into logs; Alembic narrates each
    # plugin it loads on import and each migration step at INFO, on every start of the store.
    for chatty in ("httpx", "httpcore", "gql", "alembic"):
        logging.getLogger(chatty).setLevel(max(root.level, logging.WARNING))


def ensure_logging() -> None:
    """`configure_logging()` unless this process already has (servers call it on start)."""
    if not any(h.get_name() == HANDLER_NAME for h in logging.getLogger().handlers):
        configure_logging()


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


@contextmanager
def bind_context(**values: Any) -> Iterator[None]:
    """Attach fields (source, endpoint, partition, ...) to every line logged inside."""
    with structlog.contextvars.bound_contextvars(**values):
        yield
