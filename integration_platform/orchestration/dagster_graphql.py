"""A small synchronous client for the Dagster webserver's GraphQL API (httpx, explicit timeouts).

Two failures matter to callers and are told apart: Dagster cannot be reached (retry later) and
Dagster answered but refused (a request that will not work as it is).
"""

from __future__ import annotations

import os
from typing import Any

import httpx

WEBSERVER_URL_VARIABLE = "DAGSTER_WEBSERVER_URL"
UI_URL_VARIABLE = "DAGSTER_UI_URL"
DEFAULT_WEBSERVER_URL = "http://127.0.0.1:3000"


class DagsterUnavailable(RuntimeError):
    """The webserver did not answer, or answered with a server error: try again later."""


class DagsterRefused(RuntimeError):
    """The webserver answered, and said no (GraphQL errors or an error result type)."""


def webserver_url() -> str:
    return os.environ.get(WEBSERVER_URL_VARIABLE, DEFAULT_WEBSERVER_URL).rstrip("/")


class DagsterGraphQL:
    def __init__(
        self, url: str | None = None, *, timeout: float = 15.0, ui_url: str | None = None
    ) -> None:
        self.url = (url or webserver_url()).rstrip("/")
        # The UI's address for links (behind a proxy it may differ from the API's).
        self.ui_url = (ui_url or os.environ.get(UI_URL_VARIABLE) or self.url).rstrip("/")
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=3.0))

    def close(self) -> None:
        self._http.close()

    def execute(
        self, query: str, variables: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """`timeout`: seconds for this call instead of the client's (a launch may take long)."""
        try:
            response = self._http.post(
                f"{self.url}/graphql",
                json={"query": query, "variables": variables or {}},
                timeout=httpx.Timeout(timeout, connect=3.0)
                if timeout
                else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise DagsterUnavailable(
                f"the Dagster webserver at {self.url} did not answer ({type(exc).__name__}: "
                f"{exc}); is it running? (make run starts it; {WEBSERVER_URL_VARIABLE} "
                "points elsewhere)"
            ) from None
        if response.status_code >= 500:
            raise DagsterUnavailable(
                f"the Dagster webserver at {self.url} answered {response.status_code}"
            )
        try:
            body = response.json()
        except ValueError:
            raise DagsterUnavailable(
                f"the Dagster webserver at {self.url} answered {response.status_code} without JSON"
            ) from None
        if body.get("errors"):
            messages = "; ".join(str(e.get("message", e)) for e in body["errors"])
            raise DagsterRefused(f"Dagster refused the request: {messages}")
        data: dict[str, Any] = body.get("data") or {}
        return data

    def check_reachable(self) -> None:
        """Raise DagsterUnavailable unless the webserver answers its info route."""
        try:
            response = self._http.get(f"{self.url}/server_info", timeout=3.0)
        except httpx.HTTPError as exc:
            raise DagsterUnavailable(
                f"the Dagster webserver at {self.url} did not answer ({type(exc).__name__})"
            ) from None
        if response.status_code != 200:
            raise DagsterUnavailable(
                f"the Dagster webserver at {self.url} answered "
                f"{response.status_code} on /server_info"
            )

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_url}/runs/{run_id}"
