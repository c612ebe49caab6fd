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

from integration_platform.environment import SettingError
from integration_platform.redaction import ALWAYS_SECRET_PARAMS, REDACTED, Scrubber

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
# Variables whose values are secrets even when no spec names them (the sandbox's own, a cloud
# provider's): a secret-sounding word anywhere in the name (AWS_SECRET_ACCESS_KEY, GCP_CRED,
# SLACK_BOT_TOKEN, AZURE_STORAGE_KEY, MYSQL_PWD), unless the name ends in a word that says
# the value only points at or describes one (CRM_TOKEN_URL, SECRET_KEY_FILE).
SECRET_VARIABLE = re.compile(
    r"(?:^|_)(?:SECRETS?|TOKENS?|PASSWORDS?|PASSWD|PASSPHRASE|CREDS?|CREDENTIALS?|APIKEY|"
    r"API_KEY|KEY|PRIVATE_KEY|CLIENT_ID|KEY_ID|CONNECTION_STRING)(?:_|$)"
    r"|._PWD$|^PGPASSWORD$"  # MYSQL_PWD, not the shell's PWD
)
_NOT_A_SECRET_VALUE = re.compile(
    r"_(?:URL|URI|PATH|FILE|DIR|NAME|TYPE|HEADER|PARAM|ENDPOINT|HOST|PORT|TTL|SECONDS|VARIABLE)$"
)

HANDLER_NAME = "integration_platform_json"
# Values shorter than this are too common to scrub from every log line.
MIN_LOGGED_SECRET_LENGTH = 6

_secrets = Scrubber()


def register_secrets(values: Iterable[str]) -> None:
    """Add values that must never appear in a log line, in any encoding (short ones are
    ignored: too common)."""
    _secrets.add(v for v in values if v and len(v) >= MIN_LOGGED_SECRET_LENGTH)


def is_secret_variable(name: str) -> bool:
    """Whether an environment variable's name says its value is a credential."""
    upper = name.upper()
    return bool(SECRET_VARIABLE.search(upper)) and not _NOT_A_SECRET_VALUE.search(upper)


def secrets_from_environment(environ: MutableMapping[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    return [value for name, value in env.items() if value and is_secret_variable(name)]


def scrub_text(text: str) -> str:
    """`text` with every registered secret (in every encoding), URL userinfo and secret query
    value replaced."""
    text = _secrets(text)
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
    handler = logging.StreamHandler(stream) if stream is not None else _CurrentStderrHandler()
    handler.setFormatter(formatter)
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != HANDLER_NAME]
    root.addHandler(handler)
    root.setLevel(log_level(level))
    # Our http_request lines say more (source, attempt, latency) than httpx's; gql logs whole
    # response bodies at debug, which would put customer data into logs; Alembic narrates each
    # plugin it loads on import and each migration step at INFO, on every start of the store;
    # Faker (the sandbox's, imported when a command starts it) says at import it is not in a REPL.
    for chatty in ("httpx", "httpcore", "gql", "alembic", "faker"):
        logging.getLogger(chatty).setLevel(max(root.level, logging.WARNING))


LOG_LEVEL_VARIABLE = "LOG_LEVEL"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(level: str | None = None) -> str:
    """`level`, else LOG_LEVEL, else INFO; in any case (`warning` is WARNING)."""
    chosen = level or os.environ.get(LOG_LEVEL_VARIABLE) or "INFO"
    if chosen.upper() not in LEVELS:
        raise SettingError(
            f"{LOG_LEVEL_VARIABLE}={chosen!r} is not a log level: set it to one of "
            f"{', '.join(LEVELS)}, or unset it (INFO)"
        )
    return chosen.upper()


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a line is logged, not when logging was set up:
    a command that sends a run's output to a log file (`contextlib.redirect_stderr`) gets that
    run's lines there too, instead of on the console it left."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


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
