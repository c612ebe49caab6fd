"""Client ids: lowercase slugs that are also valid Dagster partition keys; the demo client's id.

Every layer names clients (partitions, landing folders, raw rows), so this sits at the bottom.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

CLIENT_ID_PATTERN = r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$"
_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)
DEMO_CLIENT_ID = "demo"


def is_client_id(value: str) -> bool:
    return bool(_CLIENT_ID.fullmatch(value))


def client_id_from_name(name: str) -> str:
    """`"Acme Corp."` → `acme-corp`; a name with too few Latin letters or digits for a slug
    (`"株式会社"`, `"X"`) → `client-` and 8 hex digits of its hash, the same for the same name."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    slug = re.sub(r"^[^a-z]+", "", slug)[:40].rstrip("-")
    if is_client_id(slug):
        return slug
    return f"client-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
