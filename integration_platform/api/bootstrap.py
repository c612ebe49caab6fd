"""What `make run` sets up before the API starts: the demo client and a local admin key.

The demo client (`demo`) reads its credentials from the platform's environment
(config/sandbox.env), so the demo needs no API call. Without `INTEGRATION_PLATFORM_ADMIN_KEY`
an admin API key is created once and its token written to `<data dir>/api-admin.key` (0600),
which the README's curl examples read.
"""

from __future__ import annotations

import os
from pathlib import Path

from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.clients.api_keys import ADMIN_KEY_VARIABLE, SCOPES, ApiKeys
from integration_platform.clients.errors import ClientExists
from integration_platform.clients.registry import ClientRegistry

ADMIN_KEY_FILE = "api-admin.key"


def ensure_demo_client(registry: ClientRegistry) -> bool:
    """Register `demo` unless it exists; True when it was registered now."""
    if registry.get(DEMO_CLIENT_ID) is not None:
        return False
    try:
        registry.create(DEMO_CLIENT_ID, "Demo (sandbox)", credentials_from_environment=True)
    except ClientExists:
        return False
    return True


def ensure_admin_key_file(api_keys: ApiKeys, data_dir: Path) -> Path | None:
    """The file holding a local admin token (None when the environment provides the key)."""
    if os.environ.get(ADMIN_KEY_VARIABLE):
        return None
    path = data_dir / ADMIN_KEY_FILE
    if path.exists():
        return path
    issued = api_keys.create("local admin (make run)", list(SCOPES))
    data_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(issued.token + "\n")
    return path
