"""Authentication for the HTTP engine: one small `httpx.Auth` per scheme a source spec declares.

`build_auth(spec.auth, spec.base_url)` turns the spec's auth block into an object for
`httpx.AsyncClient(auth=...)`. Secrets stay pydantic `SecretStr` until the header or form body
that carries them is built; reprs, logs and error messages never show them.

Custom schemes plug in without touching the engine: name any `httpx.Auth` subclass in the spec,
and it is built with `options` as keyword arguments (option values may be `${VAR}` references)::

    # my_company/auth.py
    class SessionHeader(httpx.Auth):
        def __init__(self, header: str, value: str) -> None:
            self.header, self.value = header, value

        def auth_flow(self, request):
            request.headers[self.header] = self.value
            yield request

    # sources/vendor.yaml
    auth: {type: custom, class: "my_company.auth:SessionHeader",
           options: {header: X-Session, value: "${VENDOR_SESSION}"}}
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import importlib
import inspect
import logging
import math
import string
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from integration_platform.http.clock import Clock, SystemClock
from integration_platform.http.errors import (
    AuthError,
    ConnectionRefused,
    TransientHTTPError,
    is_connection_refused,
)
from integration_platform.http.ratelimit import parse_retry_after
from integration_platform.http.tls import tls_context
from integration_platform.redaction import origin, redact_url
from integration_platform.specs import models as spec_models
from integration_platform.specs.models import AuthSpec

logger = logging.getLogger(__name__)

_HIDDEN = "'***'"


def build_auth(
    spec: AuthSpec,
    base_url: str,
    clock: Clock | None = None,
    *,
    scrub: Callable[[str], str] | None = None,
) -> httpx.Auth | None:
    """The `httpx.Auth` for a source's auth block, or None when the source needs no auth.

    `scrub` hides the source's secrets in the messages of the errors it raises."""
    clock = clock or SystemClock()
    match spec:
        case spec_models.NoAuth():
            return None
        case spec_models.ApiKeyAuth():
            return ApiKey(spec.name, spec.value, spec.location)
        case spec_models.BearerAuth():
            return Bearer(spec.token)
        case spec_models.BasicAuth():
            return Basic(spec.username, spec.password)
        case spec_models.OAuth2ClientCredentials():
            return ClientCredentials(
                resolve_url(base_url, spec.token_url),
                spec.client_id,
                spec.client_secret,
                scope=spec.scope,
                client_auth=spec.client_auth,
                refresh_margin_seconds=spec.refresh_margin_seconds,
                clock=clock,
                scrub=scrub,
            )
        case spec_models.HmacAuth():
            return HmacSigner(
                spec.key_id,
                spec.secret,
                algorithm=spec.algorithm,
                canonical=spec.canonical,
                headers=spec.headers,
                encoding=spec.encoding,
                clock=clock,
            )
        case spec_models.CustomAuth():
            return load_custom_auth(spec.class_path, spec.options)
    raise TypeError(f"unsupported auth spec {type(spec).__name__}")  # pragma: no cover


def resolve_url(base_url: str, url: str) -> str:
    """`url` if absolute, else appended to `base_url`'s path (as httpx joins endpoint paths)."""
    if httpx.URL(url).is_absolute_url:
        return url
    return f"{base_url.rstrip('/')}/{url.lstrip('/')}"


# -- static credentials -----------------------------------------------------------------------


class ApiKey(httpx.Auth):
    """A fixed key in a header or a query parameter."""

    def __init__(
        self, name: str, value: SecretStr, location: Literal["header", "query"] = "header"
    ) -> None:
        self.name = name
        self.location = location
        self._value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.location == "query":
            request.url = request.url.copy_set_param(self.name, self._value.get_secret_value())
        else:
            request.headers[self.name] = self._value.get_secret_value()
        yield request

    def __repr__(self) -> str:
        return f"ApiKey(name={self.name!r}, location={self.location!r}, value={_HIDDEN})"


class Bearer(httpx.Auth):
    """A fixed token sent as `Authorization: Bearer <token>`."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return f"Bearer(token={_HIDDEN})"


class Basic(httpx.BasicAuth):
    """HTTP Basic, as httpx sends it, with a repr that shows only the user name."""

    def __init__(self, username: str, password: SecretStr) -> None:
        super().__init__(username, password.get_secret_value())
        self.username = username

    def __repr__(self) -> str:
        return f"Basic(username={self.username!r}, password={_HIDDEN})"


# -- OAuth2 client credentials ----------------------------------------------------------------


class ClientCredentials(httpx.Auth):
    """OAuth2 client-credentials grant: one cached token, shared refresh, one retry on 401.

    The token is renewed `refresh_margin_seconds` before it expires (never earlier than half
    its lifetime, so short-lived tokens are still reused). Concurrent requests wait for a single
    token request. A 401 from the API triggers one refresh and one retry of the request; a
    second 401 raises AuthError. Needs `httpx.AsyncClient`.
    """

    requires_request_body = True  # a request refused with 401 is sent again

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        *,
        scope: str | None = None,
        client_auth: Literal["body", "basic"] = "body",
        refresh_margin_seconds: float = 30.0,
        clock: Clock | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        scrub: Callable[[str], str] | None = None,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.scope = scope
        self.client_auth = client_auth
        self.refresh_margin_seconds = refresh_margin_seconds
        self.token_requests = 0
        self._client_secret = client_secret
        self._scrub = scrub
        # How messages name it: a token URL may carry credentials in its query or userinfo.
        self._shown_url = self._redact(redact_url(token_url))
        self._clock = clock or SystemClock()
        self._timeout = timeout
        self._transport = transport  # tests inject httpx.MockTransport here
        self._token: SecretStr | None = None
        self._refresh_at = -math.inf
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise TypeError("OAuth2 client credentials need httpx.AsyncClient, not httpx.Client")
        yield request  # pragma: no cover - makes this a generator, as httpx expects

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        token = await self._valid_token()
        request.headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        response = yield request
        if response.status_code != 401:
            return
        logger.info(
            "%s refused the access token (HTTP 401): fetching a new one",
            self._redact(_without_query(request.url)),
        )
        token = await self._replace_token(token)
        request.headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        response = yield request
        if response.status_code == 401:
            challenge = response.headers.get("www-authenticate")
            raise AuthError(
                f"{request.method} {self._redact(_without_query(request.url))} refused the access "
                "token from "
                f"{self._shown_url} even after a refresh (HTTP 401"
                f"{f', WWW-Authenticate: {challenge}' if challenge else ''}): check the client "
                f"credentials (client_id {self._redact(repr(self.client_id))} and the environment "
                "variable behind "
                "client_secret) and that the token's scope grants access to this endpoint"
            )

    async def _valid_token(self) -> SecretStr:
        if self._token is not None and self._clock.now() < self._refresh_at:
            return self._token
        async with self._refresh_lock():
            # Another request may have fetched one while this one waited for the lock.
            if self._token is None or self._clock.now() >= self._refresh_at:
                await self._fetch_token()
            assert self._token is not None
            return self._token

    async def _replace_token(self, rejected: SecretStr) -> SecretStr:
        async with self._refresh_lock():
            current = self._token
            if current is None or current.get_secret_value() == rejected.get_secret_value():
                await self._fetch_token()
            assert self._token is not None
            return self._token

    def _refresh_lock(self) -> asyncio.Lock:
        # An asyncio.Lock belongs to one event loop; a spec's auth may outlive a loop (one
        # asyncio.run per materialization), so each loop gets its own.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def _fetch_token(self) -> None:
        self.token_requests += 1
        secret = self._client_secret.get_secret_value()
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        basic: httpx.BasicAuth | None = None
        if self.client_auth == "basic":
            basic = httpx.BasicAuth(self.client_id, secret)
        else:
            form |= {"client_id": self.client_id, "client_secret": secret}
        requested_at = self._clock.now()
        client = httpx.AsyncClient(
            transport=self._transport, timeout=self._timeout, verify=tls_context()
        )
        try:
            response = await client.post(
                self.token_url,
                data=form,
                auth=basic or httpx.USE_CLIENT_DEFAULT,
                headers={"Accept": "application/json"},
            )
        except httpx.UnsupportedProtocol:
            raise AuthError(
                f"token_url {self.token_url!r} is not an http(s) URL: write an "
                "absolute URL, or a path relative to base_url"
            ) from None
        except httpx.TransportError as exc:
            failed = (
                f"could not reach the token endpoint {self._shown_url} "
                f"({type(exc).__name__}: {self._redact(str(exc))})"
            )
            if is_connection_refused(exc):
                raise ConnectionRefused(failed, origin(self.token_url)) from None
            raise TransientHTTPError(f"{failed}; it will be retried") from None
        finally:
            if self._transport is None:
                await client.aclose()
        self._token, lifetime = self._parse_token_response(response)
        if lifetime is None:
            self._refresh_at = math.inf  # no expires_in: keep it until the API refuses it
        else:
            margin = min(self.refresh_margin_seconds, lifetime / 2)
            self._refresh_at = requested_at + lifetime - margin
        logger.debug("fetched an access token from %s (expires in %s s)", self._shown_url, lifetime)

    def _parse_token_response(self, response: httpx.Response) -> tuple[SecretStr, float | None]:
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientHTTPError(
                f"the token endpoint {self._shown_url} answered HTTP {status}"
                f"{self._server_error(response)}; it will be retried",
                status_code=status,
                retry_after=parse_retry_after(
                    response.headers.get("retry-after"), self._clock.now()
                ),
            )
        if not response.is_success:
            raise AuthError(
                f"the token endpoint {self._shown_url} refused the client credentials: HTTP "
                f"{status}{self._server_error(response)}. Check client_id "
                f"{self._redact(repr(self.client_id))}, "
                "the environment variable behind client_secret, the scope, and client_auth "
                f"(now {self.client_auth!r}: credentials in the form body or HTTP Basic)"
            )
        try:
            body = response.json()
        except ValueError:
            if "json" in response.headers.get("content-type", ""):
                # Announced as JSON but does not parse: cut off on the way, worth another try.
                raise TransientHTTPError(
                    f"the token endpoint {self._shown_url} answered HTTP {status} with a JSON "
                    f"body that does not parse ({len(response.content)} bytes; probably cut "
                    "off); it will be retried",
                    status_code=status,
                ) from None
            body = None  # an HTML login page or the like: token_url is wrong (below)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError(
                f"the token endpoint {self._shown_url} answered HTTP {status} without "
                "an access_token: check that token_url points at the OAuth2 token "
                "endpoint"
            )
        expires_in = body.get("expires_in")
        try:
            lifetime = float(expires_in) if expires_in is not None else None
        except (TypeError, ValueError):
            lifetime = None
        return SecretStr(token), lifetime

    def _server_error(self, response: httpx.Response) -> str:
        """`: <error>: <description>` from an OAuth2 (or similar) error body, secrets removed."""
        try:
            body = response.json()
        except ValueError:
            text = response.text.strip()[:200]
            return f": {self._redact(text)}" if text else ""
        if not isinstance(body, dict):
            return ""
        parts = [
            str(body[key]) for key in ("error", "error_description", "message") if body.get(key)
        ]
        return f": {self._redact(': '.join(parts))}" if parts else ""

    def _redact(self, text: str) -> str:
        secret = self._client_secret.get_secret_value()
        text = text.replace(secret, "***") if secret else text
        return self._scrub(text) if self._scrub is not None else text

    def __repr__(self) -> str:
        return (
            f"ClientCredentials(token_url={self.token_url!r}, client_id={self.client_id!r}, "
            f"client_secret={_HIDDEN}, scope={self.scope!r}, "
            f"client_auth={self.client_auth!r})"
        )


def _without_query(url: httpx.URL) -> str:
    """The URL to name in messages: the query may carry keys, so it is left out."""
    return str(url.copy_with(query=None, fragment=None))


# -- HMAC request signing ---------------------------------------------------------------------

SIGNING_PLACEHOLDERS = frozenset(
    {"method", "path", "query", "path_query", "timestamp", "body_sha256", "key_id"}
)
DEFAULT_CANONICAL = "{method}\n{path_query}\n{timestamp}\n{body_sha256}"
DEFAULT_SIGNED_HEADERS = {
    "X-Key-Id": "{key_id}",
    "X-Timestamp": "{timestamp}",
    "X-Signature": "{signature}",
}


class HmacSigner(httpx.Auth):
    """Signs every request: HMAC of a canonical string built from a template, sent in headers.

    Placeholders: {method}, {path}, {query} (raw, without `?`), {path_query} (path and query
    exactly as on the wire), {timestamp} (epoch seconds), {body_sha256} (hex), {key_id}; header
    templates may also use {signature}. Write a literal brace as `{{` or `}}`.
    """

    requires_request_body = True

    def __init__(
        self,
        key_id: str,
        secret: SecretStr,
        *,
        algorithm: Literal["sha256", "sha512", "sha1"] = "sha256",
        canonical: str = DEFAULT_CANONICAL,
        headers: Mapping[str, str] | None = None,
        encoding: Literal["hex", "base64"] = "hex",
        clock: Clock | None = None,
    ) -> None:
        headers = dict(DEFAULT_SIGNED_HEADERS if headers is None else headers)
        _check_template("canonical", canonical, SIGNING_PLACEHOLDERS)
        for name, template in headers.items():
            _check_template(f"headers.{name}", template, SIGNING_PLACEHOLDERS | {"signature"})
        self.key_id = key_id
        self.algorithm = algorithm
        self.canonical = canonical
        self.headers = headers
        self.encoding = encoding
        self._secret = secret
        self._clock = clock or SystemClock()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self.signed_headers(request))
        yield request

    def signed_headers(self, request: httpx.Request) -> dict[str, str]:
        """The headers that authenticate `request` now (its body must already be read)."""
        path_query = request.url.raw_path.decode("ascii")
        path, _, query = path_query.partition("?")
        values = {
            "method": request.method.upper(),
            "path": path,
            "query": query,
            "path_query": path_query,
            "timestamp": str(int(self._clock.now())),
            "body_sha256": hashlib.sha256(request.content).hexdigest(),
            "key_id": self.key_id,
        }
        digest = hmac.new(
            self._secret.get_secret_value().encode(),
            self.canonical.format(**values).encode(),
            self.algorithm,
        ).digest()
        signature = (
            digest.hex() if self.encoding == "hex" else base64.b64encode(digest).decode("ascii")
        )
        return {
            name: template.format(**values, signature=signature)
            for name, template in self.headers.items()
        }

    def __repr__(self) -> str:
        return (
            f"HmacSigner(key_id={self.key_id!r}, secret={_HIDDEN}, "
            f"algorithm={self.algorithm!r}, encoding={self.encoding!r}, "
            f"headers={sorted(self.headers)!r})"
        )


def _check_template(where: str, template: str, allowed: frozenset[str]) -> None:
    """Fail at build time, not on the first request, when a template names an unknown field."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(
            f"hmac {where} {template!r} is not a valid template ({exc}): write a "
            "literal brace as {{ or }}"
        ) from None
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise ValueError(
            f"hmac {where} uses unknown placeholder(s) {unknown}: "
            f"the placeholders are {sorted(allowed)}"
        )


# -- custom -----------------------------------------------------------------------------------


def load_custom_auth(class_path: str, options: Mapping[str, Any]) -> httpx.Auth:
    """Import `module:Name` and build it with `options`; it must give an httpx.Auth."""
    module_name, _, attribute = class_path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(
            f"custom auth {class_path!r}: cannot import {module_name!r} ({exc}); "
            "is the module installed or on PYTHONPATH?"
        ) from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ValueError(f"custom auth {class_path!r}: {module_name} has no class {attribute!r}")
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:
        # bind() names parameters, never values: options may hold secrets from the environment.
        raise ValueError(
            f"custom auth {class_path!r}: options {sorted(options)} do not fit its "
            f"parameters ({exc})"
        ) from None
    except ValueError:
        pass  # no introspectable signature: let the call itself complain
    auth = factory(**options)
    if not isinstance(auth, httpx.Auth):
        raise ValueError(
            f"custom auth {class_path!r} built a {type(auth).__name__}, not an "
            "httpx.Auth: subclass httpx.Auth and implement auth_flow"
        )
    return auth
