"""Profiles: read, look up, list, and change traits."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import raw_connection
from app.core.errors import BadRequest, NotFound, ValidationFailed
from app.core.pagination import decode_cursor, encode_cursor
from app.identity.models import Identity, by_profile
from app.identity.normalize import IdentitySettings, InvalidIdentifier, normalize_identifier
from app.profiles import repository
from app.profiles.models import Profile
from app.profiles.schemas import IdentifierPublic, ProfileListItem, ProfilePublic
from app.traits import service as trait_service

MAX_MERGE_CHAIN = 32
_TRAIT_KEY = re.compile(r"^[A-Za-z0-9_.\-$ ]{1,128}$")


async def apply_trait_updates(conn: Any, *, workspace_id: uuid.UUID, updates: dict[uuid.UUID, dict[str, Any]]) -> None:
    """Set-based trait changes for many profiles (ingest): {profile: {set, once, unset}}."""
    await repository.apply_traits(conn, workspace_id, updates)


async def resolve_profile(session: AsyncSession, *, workspace_id: uuid.UUID, profile_id: uuid.UUID) -> Profile:
    """The profile, or the one it was merged into (following the chain)."""
    profile = await repository.get_profile(session, workspace_id, profile_id)
    hops = 0
    while profile is not None and profile.merged_into is not None and hops < MAX_MERGE_CHAIN:
        profile = await repository.get_profile(session, workspace_id, profile.merged_into)
        hops += 1
    if profile is None:
        raise NotFound(f"No profile with id {profile_id} in this workspace.")
    return profile


async def get_profile(session: AsyncSession, *, workspace_id: uuid.UUID, profile_id: uuid.UUID) -> ProfilePublic:
    profile = await resolve_profile(session, workspace_id=workspace_id, profile_id=profile_id)
    await session.refresh(profile)
    details = await repository.profile_details(session, workspace_id, profile.id)
    return ProfilePublic(
        id=profile.id,
        identifiers=[IdentifierPublic(**i) for i in sorted(details["identifiers"], key=lambda i: (i["type"], i["value"]))],
        traits=profile.traits,
        computed_traits=await trait_service.get_profile_values(session, workspace_id=workspace_id, profile_id=profile.id),
        first_seen_at=details["first_seen_at"],
        last_seen_at=details["last_seen_at"],
        created_at=profile.created_at,
        updated_at=profile.updated_at,
        merged_from=details["merged_from"],
        requested_id=profile_id if profile.id != profile_id else None,
    )


async def lookup(
    session: AsyncSession, *, workspace_id: uuid.UUID, type_: str, value: str, settings: IdentitySettings
) -> ProfilePublic:
    """Find a profile by any identifier; the value is normalised as at ingest."""
    try:
        ident = normalize_identifier(type_, value, settings)
    except InvalidIdentifier as exc:
        raise BadRequest(str(exc), code="invalid_identifier") from None
    if ident is None:
        raise NotFound(f"{value!r} is a blocked placeholder value; it identifies no profile.")
    profile_id = await repository.find_by_identifier(session, workspace_id, ident.type, ident.value)
    if profile_id is None:
        raise NotFound(f"No profile has {ident.type} {ident.value!r} in this workspace.")
    return await get_profile(session, workspace_id=workspace_id, profile_id=profile_id)


def _trait_expr(field: str) -> sa.ColumnElement[Any]:
    """`traits.<key>` or `computed.<name>` as a jsonb expression."""
    kind, _, key = field.partition(".")
    if not key or not _TRAIT_KEY.match(key):
        raise ValidationFailed(f"{field!r} is not a field: use traits.<name> or computed.<name>.", code="bad_filter")
    if kind == "traits":
        return Profile.traits[key]
    if kind == "computed":
        ctv = sa.table("computed_trait_value", sa.column("workspace_id"), sa.column("profile_id"),
                       sa.column("name"), sa.column("value", sa.dialects.postgresql.JSONB))
        return (
            sa.select(ctv.c.value)
            .where(ctv.c.workspace_id == Profile.workspace_id, ctv.c.profile_id == Profile.id, ctv.c.name == key)
            .scalar_subquery()
        )
    raise ValidationFailed(f"{field!r} is not a field: use traits.<name> or computed.<name>.", code="bad_filter")


def parse_filters(where: list[str], *, workspace_id: uuid.UUID) -> list[sa.ColumnElement[bool]]:
    """`where=` filters are shorthand for segment rule nodes (traits.plan:eq:pro is
    {"trait": "plan", "op": "eq", "value": "pro"}), compiled by the segments' one compiler."""
    from app.segments import service as segment_service

    return segment_service.compile_where(where, workspace_id=workspace_id)


async def list_profiles(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    where: list[str],
    sort: str,
    cursor: str | None,
    limit: int,
) -> tuple[list[ProfileListItem], str | None]:
    descending = sort.startswith("-")
    field = sort.lstrip("-")
    if field in repository.SORTS:
        sort_key: sa.ColumnElement[Any] = repository.SORTS[field]
        kind = "time"
    else:
        sort_key = sa.func.coalesce(_trait_expr(field), sa.text("'null'::jsonb"))
        kind = "json"
    after = None
    if cursor:
        value, pid = decode_cursor(cursor, 2)
        try:
            bound: Any = datetime.fromisoformat(value) if kind == "time" else sa.cast(sa.literal(value), sa.dialects.postgresql.JSONB)
            after = (bound, uuid.UUID(pid))
        except ValueError:
            raise BadRequest("The cursor is not valid; use `next_cursor` from a previous page.", code="invalid_cursor") from None
    rows = await repository.list_profiles(
        session, workspace_id=workspace_id, conditions=parse_filters(where, workspace_id=workspace_id), sort_key=sort_key,
        descending=descending, after=after, limit=limit + 1,
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last, value = rows[-1]
        encoded = value.isoformat() if kind == "time" else orjson.dumps(value).decode()
        next_cursor = encode_cursor(encoded, last.id)
    ids = [p.id for p, _ in rows]
    identifiers: dict[uuid.UUID, list[IdentifierPublic]] = {pid: [] for pid in ids}
    if ids:
        result = await session.execute(
            sa.select(Identity.profile_id, Identity.type, Identity.value, Identity.raw)
            .where(by_profile(workspace_id, ids))
            .order_by(Identity.type, Identity.value)
        )
        for r in result:
            identifiers[r.profile_id].append(IdentifierPublic(type=r.type, value=r.value, raw=r.raw))
    items = [
        ProfileListItem(id=p.id, identifiers=identifiers[p.id], traits=p.traits, created_at=p.created_at,
                        updated_at=p.updated_at)
        for p, _ in rows
    ]
    return items, next_cursor


async def patch_traits(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    profile_id: uuid.UUID,
    set_: dict[str, Any],
    set_once: dict[str, Any],
    unset: list[str],
) -> ProfilePublic:
    profile = await resolve_profile(session, workspace_id=workspace_id, profile_id=profile_id)
    conn = await raw_connection(session)
    await repository.apply_traits(
        conn, workspace_id,
        {profile.id: {"set": set_, "once": {k: v for k, v in set_once.items() if k not in set_}, "unset": set(unset) - set(set_)}},
    )
    return await get_profile(session, workspace_id=workspace_id, profile_id=profile.id)


async def find_profile_ids(
    session: AsyncSession, *, workspace_id: uuid.UUID, identifiers: list[tuple[str, str]], settings: IdentitySettings
) -> dict[tuple[str, str], uuid.UUID]:
    """The profiles of many identifiers in one query ({(type, raw value): profile id}); values are
    normalised as at ingest, and identifiers that are invalid or unknown are left out."""
    normalized: dict[tuple[str, str], tuple[str, str]] = {}
    for type_, value in identifiers:
        try:
            ident = normalize_identifier(type_, value, settings)
        except InvalidIdentifier:
            continue
        if ident is not None:
            normalized[(type_, value)] = (ident.type, ident.value)
    if not normalized:
        return {}
    keys = sorted(set(normalized.values()))
    rows = await session.execute(
        sa.text("""SELECT i.type, i.value, i.profile_id FROM unnest(CAST(:types AS text[]), CAST(:values AS text[])) AS k(t, v)
                   JOIN identity AS i ON i.workspace_id = :ws AND i.type = k.t AND i.value = k.v"""),
        {"ws": workspace_id, "types": [t for t, _ in keys], "values": [v for _, v in keys]},
    )
    found = {(r.type, r.value): r.profile_id for r in rows}
    return {raw: found[norm] for raw, norm in normalized.items() if norm in found}


async def existing_profile_ids(session: AsyncSession, *, workspace_id: uuid.UUID, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these ids are profiles of the workspace (one query)."""
    if not ids:
        return set()
    rows = await session.scalars(sa.select(Profile.id).where(
        Profile.workspace_id == workspace_id,
        Profile.id == sa.any_(sa.literal(list(set(ids)), sa.dialects.postgresql.ARRAY(sa.dialects.postgresql.UUID(as_uuid=True)))),
    ))
    return set(rows)
