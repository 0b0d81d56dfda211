"""API keys.

- Write keys only ingest (they are the Segment write key: HTTP Basic username, empty password,
  or `writeKey` in the JSON body). They are public by nature: they ship inside web pages.
- Secret keys carry scopes and are sent as `Authorization: Bearer <key>` to everything else.
  Scopes nest: `admin` includes `write`, `write` includes `read`.
- The instance admin token (CLIENTELE_ADMIN_TOKEN) only creates workspaces.

Keys are shown once, stored as SHA-256 hashes, and resolved with one indexed lookup. The
lookup belongs to the workspaces domain, which owns the keys' table: `create_app` hands it to
this module as `app.state.find_key` (a `KeyLookup`), so `core` imports no domain.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import SessionDep
from app.core.errors import Forbidden, Unauthorized


class Scope(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"


_IMPLIED = {Scope.read: {Scope.read}, Scope.write: {Scope.read, Scope.write}, Scope.admin: set(Scope)}

WRITE_KEY_PREFIX = "cl_wk_"
SECRET_KEY_PREFIX = "cl_sk_"
DISPLAY_PREFIX_LEN = 12


def generate_key(kind: str) -> str:
    return (WRITE_KEY_PREFIX if kind == "write" else SECRET_KEY_PREFIX) + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def expand_scopes(scopes: list[str]) -> set[str]:
    out: set[str] = set()
    for s in scopes:
        out |= {str(x) for x in _IMPLIED.get(Scope(s), set())}
    return out


@dataclass(frozen=True, slots=True)
class Principal:
    workspace_id: uuid.UUID
    key_id: uuid.UUID
    kind: str
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class StoredKey:
    """An unrevoked key as its store knows it, with its workspace's settings."""

    key_id: uuid.UUID
    workspace_id: uuid.UUID
    kind: str
    scopes: list[str]
    workspace_settings: dict


class KeyLookup(Protocol):
    """Finds the unrevoked key with this SHA-256 hash (app.workspaces.service.find_key)."""

    async def __call__(self, session: AsyncSession, key_hash: str) -> StoredKey | None: ...


def _key_lookup(request: Request) -> KeyLookup:
    return request.app.state.find_key


async def resolve_key(request: Request, session: AsyncSession, key: str) -> Principal | None:
    stored = await _key_lookup(request)(session, hash_key(key))
    if stored is None:
        return None
    return Principal(workspace_id=stored.workspace_id, key_id=stored.key_id, kind=stored.kind,
                     scopes=frozenset(expand_scopes(stored.scopes)))


_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="clientele"'}
_BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="clientele"'}


_bearer = HTTPBearer(auto_error=False, scheme_name="secretKey", description="A secret key: `Authorization: Bearer cl_sk_...`")
_instance_bearer = HTTPBearer(
    auto_error=False, scheme_name="instanceAdminToken", description="The instance admin token (CLIENTELE_ADMIN_TOKEN)."
)
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _bearer_token(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    if credentials is not None and credentials.credentials.strip():
        return credentials.credentials.strip()
    header = request.headers.get("authorization")
    if header:
        raise Unauthorized("Use `Authorization: Bearer <secret key>`.", headers=_BEARER_CHALLENGE)
    return None


def basic_username(request: Request) -> str | None:
    """The username of HTTP Basic auth (Segment sends the write key there), if any."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("The Basic authorization header is not valid base64.", headers=_BASIC_CHALLENGE) from None
    return decoded.partition(":")[0] or None


async def authorize(
    request: Request, session: AsyncSession, scope: Scope, credentials: HTTPAuthorizationCredentials | None = None,
) -> Principal:
    """The secret key of the request, with `scope`, or a 401/403 problem. (Routes take it as a
    dependency, `ReadPrincipal`...; a route served by core.middleware.DirectRoutes calls it.)"""
    if credentials is None:
        credentials = await _bearer(request)
    token = _bearer_token(request, credentials)
    if token is None:
        raise Unauthorized("A secret key is required: `Authorization: Bearer <secret key>`.", headers=_BEARER_CHALLENGE)
    if token.startswith(WRITE_KEY_PREFIX):
        raise Forbidden("Write keys can only send data to the ingest endpoints; use a secret key.")
    principal = await resolve_key(request, session, token)
    if principal is None or principal.kind != "secret":
        raise Unauthorized("The API key is unknown or revoked.", headers=_BEARER_CHALLENGE)
    request.state.workspace_id = principal.workspace_id  # for the access log
    if scope not in principal.scopes:
        raise Forbidden(f"This key lacks the `{scope}` scope.")
    return principal


def require_scope(scope: Scope):
    async def dependency(request: Request, session: SessionDep, credentials: BearerCredentials) -> Principal:
        return await authorize(request, session, scope, credentials)

    return dependency


ReadPrincipal = Annotated[Principal, Depends(require_scope(Scope.read))]
WritePrincipal = Annotated[Principal, Depends(require_scope(Scope.write))]
AdminPrincipal = Annotated[Principal, Depends(require_scope(Scope.admin))]


async def require_instance_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_instance_bearer)]
) -> None:
    token = _bearer_token(request, credentials)
    if token is None:
        raise Unauthorized("The instance admin token is required.", headers=_BEARER_CHALLENGE)
    expected = request.app.state.settings.admin_token.get_secret_value()
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized("The instance admin token is wrong.", headers=_BEARER_CHALLENGE)


InstanceAdmin = Annotated[None, Depends(require_instance_admin)]


@dataclass(frozen=True, slots=True)
class WriteKeyPrincipal:
    workspace_id: uuid.UUID
    key_id: uuid.UUID
    workspace_settings: dict


_basic = HTTPBasic(auto_error=False, scheme_name="writeKey", description="The write key as username, empty password.")
BasicCredentials = Annotated[HTTPBasicCredentials | None, Depends(_basic)]


async def authenticate_write_key(request: Request, body_write_key: Any = None) -> WriteKeyPrincipal:
    """Ingest auth: the write key as HTTP Basic username, or `writeKey` in the JSON body.
    (Ingest writes through Database.write_transaction; a key not in the cache is looked up in
    a short session of its own.)"""
    header = request.headers.get("authorization", "")
    scheme = header.partition(" ")[0].lower()
    if scheme == "bearer":
        raise Forbidden("Secret keys cannot send data; use the workspace's write key as the HTTP Basic username.")
    key = basic_username(request) if scheme == "basic" else None
    if key is None and isinstance(body_write_key, str) and body_write_key:
        key = body_write_key
    if not key:
        raise Unauthorized("A write key is required: HTTP Basic username, or `writeKey` in the body.", headers=_BASIC_CHALLENGE)
    if key.startswith(SECRET_KEY_PREFIX):
        raise Forbidden("Secret keys cannot send data; use the workspace's write key.")
    key_hash = hash_key(key)
    cached = _write_key_cache.get(key_hash)
    now = time.monotonic()
    if cached is not None and cached[1] > now:
        request.state.workspace_id = cached[0].workspace_id  # for the access log
        return cached[0]
    async with request.app.state.db.session() as session:
        stored = await _key_lookup(request)(session, key_hash)
    if stored is None or stored.kind != "write":
        raise Unauthorized("The write key is unknown or revoked.", headers=_BASIC_CHALLENGE)
    principal = WriteKeyPrincipal(workspace_id=stored.workspace_id, key_id=stored.key_id,
                                  workspace_settings=stored.workspace_settings)
    request.state.workspace_id = principal.workspace_id  # for the access log
    ttl = request.app.state.settings.write_key_cache_seconds
    if ttl > 0:
        if len(_write_key_cache) > 10_000:
            _write_key_cache.clear()
        _write_key_cache[key_hash] = (principal, now + ttl)
    return principal


# Write keys are checked on every ingest request; caching them for a few seconds saves a
# query per batch. Revocation in this process evicts at once (forget_key); other processes
# accept a revoked write key for at most CLIENTELE_WRITE_KEY_CACHE_SECONDS.
_write_key_cache: dict[str, tuple[WriteKeyPrincipal, float]] = {}


def forget_key(key_hash: str) -> None:
    _write_key_cache.pop(key_hash, None)


def forget_workspace(workspace_id: uuid.UUID) -> None:
    for key_hash, (principal, _) in list(_write_key_cache.items()):
        if principal.workspace_id == workspace_id:
            _write_key_cache.pop(key_hash, None)
