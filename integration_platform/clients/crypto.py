"""Credentials encrypted at rest with Fernet; keys from `INTEGRATION_PLATFORM_SECRET_KEY`.

The variable holds one or more Fernet keys separated by commas: the first encrypts, all
decrypt, so a key is rotated by putting the new one first (`rotate_all()` re-encrypts).
Without it (local `make run`), a key is generated once into `<data dir>/secret.key` with mode
0600, which `make run` names on start: fine on a laptop, not for a shared deployment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from integration_platform import environment
from integration_platform.logs import get_logger

SECRET_KEY_VARIABLE = "INTEGRATION_PLATFORM_SECRET_KEY"  # noqa: S105 (a name)
KEY_FILE_NAME = "secret.key"

_log = get_logger("integration_platform.clients")


class SecretKeyError(RuntimeError):
    """The encryption key is missing, malformed or does not open what the store holds."""


class CredentialCipher:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise SecretKeyError(f"no encryption key: set {SECRET_KEY_VARIABLE}")
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except ValueError as exc:
            raise SecretKeyError(
                f"{SECRET_KEY_VARIABLE} holds a value that is not a Fernet key (32 url-safe "
                "base64-encoded bytes). Generate one with: python -c 'from cryptography.fernet "
                "import Fernet; print(Fernet.generate_key().decode())'"
            ) from exc

    def encrypt(self, values: dict[str, str]) -> bytes:
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode())

    def decrypt(self, token: bytes) -> dict[str, str]:
        try:
            plain = self._fernet.decrypt(token)
        except InvalidToken:
            raise SecretKeyError(
                "stored credentials cannot be decrypted with the configured key(s): was "
                f"{SECRET_KEY_VARIABLE} changed? Put the old key after the new one "
                "(comma-separated) so both can decrypt."
            ) from None
        values: dict[str, str] = json.loads(plain)
        return values

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt with the first key (after a key rotation)."""
        return self._fernet.rotate(token)


def load_cipher(data_dir: Path | None = None) -> CredentialCipher:
    configured = os.environ.get(SECRET_KEY_VARIABLE, "").strip()
    if configured:
        return CredentialCipher([k.strip().encode() for k in configured.split(",") if k.strip()])
    return CredentialCipher([_local_key(data_dir or environment.data_dir())])


def local_key_file(data_dir: Path | None = None) -> Path | None:
    """The file the key is (or will be) kept in; None when the environment provides it."""
    if os.environ.get(SECRET_KEY_VARIABLE, "").strip():
        return None
    return (data_dir or environment.data_dir()) / KEY_FILE_NAME


def _local_key(data_dir: Path) -> bytes:
    path = data_dir / KEY_FILE_NAME
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        # O_EXCL: two processes starting at once must not each write a different key.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key + b"\n")
    # Expected on a first start, so not a warning: `make run` and `api serve` name the file.
    _log.info(
        "local_secret_key_created",
        path=str(path),
        detail=f"credentials are encrypted with a key kept in {path} (mode 0600); set "
        f"{SECRET_KEY_VARIABLE} to keep the key outside the data directory",
    )
    return key
