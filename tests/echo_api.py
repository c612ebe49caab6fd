"""An API on loopback that echoes each request back, as careless real APIs do in error bodies.

It answers `status` (401 by default) with a text body quoting the request target exactly as
received (percent-encoded) and its Authorization header (base64 for Basic), so whatever a
client sent comes back in the encodings it was sent in. With status 200 it answers one record.
`ECHO_SPEC` is a source with credentials in every part of a request; `leaked_forms` finds any
form of them in a text.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, quote_plus

import httpx


class EchoAPI:
    """`with EchoAPI() as api:` serves on `api.url` until the block ends."""

    def __init__(self, status: int = 401) -> None:
        self.status = status
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                if outer.status == 200:
                    body = json.dumps({"data": [{"id": "r1", "name": "one record"}]}).encode()
                    content_type = "application/json"
                else:
                    body = (
                        f"refused {self.command} {self.path} "
                        f"(Authorization: {self.headers.get('Authorization')})"
                    ).encode()
                    content_type = "text/plain"
                self.send_response(outer.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> EchoAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# A source whose credentials sit everywhere a request carries them: a Basic password, an API key
# in the query, a token in the path and another query value. The variables are named like
# nothing secret, so only the spec (and what the engine makes of it) can hide them.
ECHO_SECRETS = {
    "ECHO_PASS": "basic-pass+word/42",
    "ECHO_Q": "SeCrEtA+/=x&y",
    "ECHO_TENANT": "tenant+path 7f3",
    "ECHO_REF": "ref token&=/9c",
}
ECHO_USER = "echo-user"
ECHO_SPEC = """
source: echo
kind: rest
base_url: BASE
auth: {type: basic, username: echo-user, password: "${ECHO_PASS}"}
endpoints:
  customers:
    path: /v1/tenants/${ECHO_TENANT}/customers
    params: {api_key: "${ECHO_Q}", ref: "${ECHO_REF}"}
    records: data
    primary_key: id
"""


def leaked_forms(text: str) -> list[str]:
    """Every form of an echo secret found in `text`: as is, URL-encoded (quote, quote_plus,
    upper- and lower-case hex, as httpx writes a path), and the Basic header's base64."""
    forms = {base64.b64encode(f"{ECHO_USER}:{ECHO_SECRETS['ECHO_PASS']}".encode()).decode()}
    for value in ECHO_SECRETS.values():
        encoded = {value, quote(value, safe=""), quote(value), quote_plus(value)}
        encoded.add(httpx.URL("http://x/" + value).raw_path.decode()[1:])
        forms |= encoded | {re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), e) for e in encoded}
    return sorted(form for form in forms if form in text)
