"""Keyed hashes of identifiers: how a suppression recognises a person without naming them.

Each workspace has its own HMAC key, derived from `CLIENTELE_PRIVACY_SECRET` and the
workspace id (HMAC-SHA256 as the derivation function). The secret lives in the deployment's
settings, never in the database: a copy of the database alone cannot be used to test guesses
of e-mail addresses against the stored hashes, and one workspace's hashes say nothing about
another's. The hashed text is the *normalised* identifier, `type:value` (e.g.
`email:ann@example.com`), exactly as identity resolution keys it, so any spelling that
resolves to the person is recognised.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable

from app.core.config import get_settings

_DERIVATION_LABEL = b"clientele/suppression/v1/"
_keys: dict[tuple[bytes, uuid.UUID], bytes] = {}


def workspace_key(workspace_id: uuid.UUID) -> bytes:
    secret = get_settings().privacy_secret.get_secret_value().encode()
    cached = _keys.get((secret, workspace_id))
    if cached is None:
        if len(_keys) > 10_000:
            _keys.clear()
        cached = _keys[(secret, workspace_id)] = hmac.digest(secret, _DERIVATION_LABEL + workspace_id.bytes, "sha256")
    return cached


def identifier_hash(workspace_id: uuid.UUID, type_: str, value: str) -> bytes:
    """The HMAC of one normalised identifier under the workspace's key."""
    return hmac.digest(workspace_key(workspace_id), f"{type_}:{value}".encode(), hashlib.sha256)


def identifier_hashes(workspace_id: uuid.UUID, pairs: Iterable[tuple[str, str]]) -> list[bytes]:
    key = workspace_key(workspace_id)
    digest = hmac.digest
    return [digest(key, f"{t}:{v}".encode(), "sha256") for t, v in pairs]
