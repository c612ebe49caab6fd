"""Keeps secrets out of anything a person or a log can read: URLs, messages, metadata.

A secret is hidden in every form it takes on the wire or in an API's echo of a request: as
written, percent-encoded (as httpx, `quote` and `quote_plus` write it, upper- or lower-case
hex), and base64-encoded (an HTTP Basic header carries `base64(user:password)`). Which values
of a spec are secrets is the spec's to say (`specs.secrets`); this module knows no spec.
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit, urlunsplit

import httpx

REDACTED = "***"
# Query parameters that carry credentials in the wild, whatever the spec calls them.
ALWAYS_SECRET_PARAMS = frozenset(
    {
        "api_key",
        "apikey",
        "key",
        "token",
        "access_token",
        "client_secret",
        "signature",
        "sig",
        "password",
    }
)
# Shorter values are too common to replace in free text (a "2024" would vanish everywhere).
MIN_SECRET_LENGTH = 4
# A base64 fragment shorter than this could occur by chance in other base64 text.
_MIN_BASE64_FRAGMENT = 8
_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def redact_url(url: httpx.URL | str, secret_params: Iterable[str] = ALWAYS_SECRET_PARAMS) -> str:
    """The URL with secret query values replaced and any userinfo dropped; the rest as it was
    written (the standard library's split: every request passes here, and building an
    httpx.URL cost ten times more, 0.3 ms per call)."""
    text = str(url)
    split = urlsplit(text)
    hidden = {name.lower() for name in secret_params}
    parts = split.query.split("&") if split.query else []
    query = "&".join(
        f"{name}={REDACTED}" if sep and unquote_plus(name).lower() in hidden else part
        for part in parts
        for name, sep, _ in [part.partition("=")]
    )
    netloc = split.netloc.rpartition("@")[2]
    if query == split.query and netloc == split.netloc:
        return text
    return urlunsplit(split._replace(netloc=netloc, query=query))


def origin(url: httpx.URL | str) -> str:
    """`scheme://host[:port]` of a URL: where it points, with no path, query or userinfo."""
    parsed = httpx.URL(str(url))
    port = f":{parsed.port}" if parsed.port is not None else ""
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{parsed.scheme}://{host}{port}"


def basic_credentials(username: str, password: str) -> str:
    """The value of an HTTP Basic header for these credentials, as httpx builds it."""
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def encoded_forms(secret: str) -> set[str]:
    """`secret` as it may show up in text: as is, percent-encoded, and base64-encoded.

    Base64 of a longer text (a Basic header's `user:password`) holds a run of characters that
    depends on the secret alone, one for each of the three positions the secret can start at
    modulo 3; those runs are masked wherever the secret sits in the encoded text.
    """
    forms = {secret}
    if len(secret) < MIN_SECRET_LENGTH:
        return forms
    escaped = {quote(secret, safe=""), quote(secret), quote_plus(secret)}
    if "?" not in secret and "#" not in secret:  # a path as httpx sends it
        # Control characters: httpx refuses to send such a path, so it has no such form.
        with contextlib.suppress(httpx.InvalidURL):
            escaped.add(httpx.URL("http://x/" + secret.lstrip("/")).raw_path.decode("ascii")[1:])
    for form in escaped:
        forms |= {form, _PERCENT_ESCAPE.sub(lambda m: m.group().lower(), form)}
    raw = secret.encode()
    for skip in range(3):
        aligned = raw[skip:]
        aligned = aligned[: len(aligned) - len(aligned) % 3]
        if len(aligned) * 4 // 3 >= _MIN_BASE64_FRAGMENT:
            forms.add(base64.b64encode(aligned).decode("ascii"))
            forms.add(base64.urlsafe_b64encode(aligned).decode("ascii"))
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


class Scrubber:
    """Replaces every form of a set of secrets in free text (an API's error body, a message)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_LENGTH:
                self._forms |= encoded_forms(secret)
        # Longest first, so a form inside a longer one cannot break the longer one's match. One
        # pattern for all: every log line passes here, and one search cost a third less than a
        # substring test per form (measured with the sandbox's 49 forms).
        ordered = sorted(self._forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text) if self._pattern is not None else text
