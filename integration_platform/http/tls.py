"""One TLS context for every HTTP client of the process.

httpx builds a new `ssl.SSLContext` for each client or transport made without one, loading
certifi's CA bundle each time: 57 ms per client on this 2-core machine, and a raw run makes a
client per partition (and its GraphQL and OAuth2 token clients). py-spy of `make demo`: 43% of
the raw steps' time was `create_ssl_context`. An SSLContext is safe to share between clients,
threads and event loops, and this one is what httpx would build (`httpx.create_ssl_context()`:
certifi's bundle, or SSL_CERT_FILE / SSL_CERT_DIR when set), built once on first use.
"""

from __future__ import annotations

import ssl
from functools import cache

import httpx


@cache
def tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()
