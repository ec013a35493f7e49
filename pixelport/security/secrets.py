"""Secrets at rest: origin credentials the accounts API stores, sealed with Fernet.

The key is `[security] secrets_key` (or PIXELPORT_SECRETS_KEY), any string of 16 characters or
more; the Fernet key is derived from it with HKDF-SHA256, so a passphrase works as well as a
random key. Without it nothing secret is stored: the API refuses credentials, and a database
that holds sealed ones refuses to start (never a silent plain-text store).
"""

from __future__ import annotations

import base64
import json

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SALT = b"pixelport secrets at rest"


class WrongKey(Exception):
    """Sealed secrets that this key does not open."""


class SecretBox:
    """Seals and opens a mapping of secret fields."""

    def __init__(self, key: str) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT,
                       info=b"origin credentials").derive(key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, values: dict[str, str]) -> bytes:
        """The values, encrypted and authenticated."""
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode())

    def open(self, token: bytes) -> dict[str, str]:
        """The values sealed in `token` (WrongKey when this key did not seal them)."""
        try:
            values = json.loads(self._fernet.decrypt(token))
        except InvalidToken:
            raise WrongKey("the stored origin credentials do not open with this secrets_key "
                           "(was it changed?)") from None
        return {str(k): str(v) for k, v in values.items()}
