"""Consent: purposes, notices, the ledger, and the one answer every domain asks for.

"May we use this profile for purpose P on channel C at time T?" is answered by `check` (one
profile, with the record relied on and why) and by `consent_clause` (the same answer as a SQL
boolean over the `profile` table, for many profiles in one statement). Both follow these rules
(docs/CONSENT.md):

1. The records that count are those of the profile and of every profile merged into it, for
   purpose P, on channel C or on every channel (`channel` null), that occurred at or before T.
2. Records that occurred after the latest merge of the group speak last: the latest of them
   decides. When there is none (every record predates the merge, or nothing was merged), each
   profile's latest record is taken, and the stricter wins: one that does not allow beats one
   that does; among equals the latest. (Without a merge this is simply the latest record.)
3. The deciding record allows only if it is a grant that has not expired at T and whose notice
   had no later major version published by T (else the grant is stale). A denial or a
   withdrawal never allows. An expired or stale grant does not fall back on older records or
   on the default: it denies (fail closed).
4. No record: the purpose's default (opt-in purposes: denied). An unknown purpose: denied.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.consent import repository
from app.consent.errors import (
    InvalidToken,
    NoticeCited,
    PurposeInUse,
    TokenExpired,
    TokenUsed,
    UnknownNotice,
    UnknownPurpose,
)
from app.consent.models import CHANNELS, ConsentPurpose, ConsentRecord, PrivacyNotice
from app.consent.schemas import (
    ConsentBase,
    ConsentRecordPublic,
    ConsentState,
    ConsentStateItem,
    NoticeCreate,
    NoticePublic,
    NoticeUpdate,
    PurposeCreate,
    PurposeUpdate,
    UnsubscribeTokenPublic,
)
from app.consent.signals import Signal
from app.core.db import raw_connection
from app.core.errors import BadRequest, Conflict, NotFound, ServiceUnavailable, ValidationFailed
from app.core.ids import uuid7
from app.identity.models import ProfileMerge
from app.profiles import service as profile_service
from app.profiles.models import Profile
from app.traits import service as trait_service

# The purposes every workspace starts with: key, name, lawful basis, default, consent-manager
# categories (migration 0014 seeds existing workspaces with the same list).
DEFAULT_PURPOSES: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("email_marketing", "E-mail marketing", "consent", "denied", ()),
    ("sms_marketing", "SMS marketing", "consent", "denied", ()),
    ("direct_mail", "Direct mail", "legitimate_interest", "granted", ()),
    ("personalization", "Personalisation", "consent", "denied", ("personalization", "functional", "preferences")),
    ("advertising", "Advertising", "consent", "denied", ("advertising", "targeting", "marketing")),
    ("analytics", "Analytics", "legitimate_interest", "granted", ("analytics", "performance", "statistics")),
)

CHANNEL_PURPOSE = {
    "email": "email_marketing",
    "sms": "sms_marketing",
    "direct_mail": "direct_mail",
    "push": "personalization",
    "web": "personalization",
    "ads": "advertising",
}
GPC_PURPOSE = "advertising"
FUTURE_TOLERANCE = timedelta(minutes=5)


def purpose_for_channel(channel: str) -> str:
    """The purpose a message on `channel` serves by default (email -> email_marketing...)."""
    try:
        return CHANNEL_PURPOSE[channel]
    except KeyError:
        raise ValidationFailed(
            f"Unknown channel {channel!r}; channels are {', '.join(CHANNELS)}.", code="unknown_channel"
        ) from None


def _now() -> datetime:
    return datetime.now(UTC)


# --- keys derived per workspace from the server secret ----------------------------------------

def workspace_key(secret: str, workspace_id: uuid.UUID, purpose: str) -> bytes:
    """A key of one workspace for one use (`proof`, `unsubscribe`), derived from the server
    secret (CLIENTELE_CONSENT_SECRET), so nothing secret is stored per workspace."""
    return hmac.new(secret.encode(), f"clientele:{purpose}:{workspace_id}".encode(), hashlib.sha256).digest()


def hash_proof(secret: str, workspace_id: uuid.UUID, proof: dict[str, Any]) -> dict[str, str]:
    """Each proof value as `hmac-sha256:<hex>` under the workspace's proof key: comparable with a
    value presented later (same workspace), never readable."""
    key = workspace_key(secret, workspace_id, "proof")
    out = {}
    for name, value in proof.items():
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        out[name] = "hmac-sha256:" + hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
    return out


# --- purposes ---------------------------------------------------------------------------------

async def seed_workspace(session: AsyncSession, *, workspace_id: uuid.UUID) -> None:
    """The default purposes of a new workspace."""
    for key, name, basis, default, categories in DEFAULT_PURPOSES:
        session.add(ConsentPurpose(workspace_id=workspace_id, key=key, name=name, lawful_basis=basis,
                                   default_status=default, sdk_categories=list(categories)))
    await session.flush()


def _check_default(lawful_basis: str, default_status: str) -> None:
    if lawful_basis == "consent" and default_status != "denied":
        raise ValidationFailed(
            "A purpose whose lawful basis is consent is opt-in: its default must be denied.", code="opt_in_default"
        )


async def list_purposes(session: AsyncSession, *, workspace_id: uuid.UUID) -> list[ConsentPurpose]:
    return await repository.list_purposes(session, workspace_id)


async def get_purpose(session: AsyncSession, *, workspace_id: uuid.UUID, key: str) -> ConsentPurpose:
    purpose = await repository.get_purpose(session, workspace_id, key)
    if purpose is None:
        raise NotFound(f"No purpose {key!r} in this workspace.")
    return purpose


async def create_purpose(session: AsyncSession, *, workspace_id: uuid.UUID, data: PurposeCreate) -> ConsentPurpose:
    _check_default(data.lawful_basis, data.default_status)
    if await repository.get_purpose(session, workspace_id, data.key) is not None:
        raise Conflict(f"A purpose {data.key!r} already exists.", code="duplicate_purpose")
    purpose = ConsentPurpose(workspace_id=workspace_id, **data.model_dump())
    purpose.sdk_categories = [c.lower() for c in data.sdk_categories]
    session.add(purpose)
    await session.flush()
    await session.refresh(purpose)
    return purpose


async def update_purpose(
    session: AsyncSession, *, workspace_id: uuid.UUID, key: str, data: PurposeUpdate
) -> ConsentPurpose:
    purpose = await get_purpose(session, workspace_id=workspace_id, key=key)
    changes = data.model_dump(exclude_unset=True)
    for field in ("name", "lawful_basis", "default_status", "sdk_categories"):
        if field in changes and changes[field] is None:
            raise ValidationFailed(f"{field} cannot be null.", code="validation_error")
    _check_default(changes.get("lawful_basis", purpose.lawful_basis), changes.get("default_status", purpose.default_status))
    if "sdk_categories" in changes:
        changes["sdk_categories"] = [c.lower() for c in changes["sdk_categories"]]
    for field, value in changes.items():
        setattr(purpose, field, value)
    purpose.updated_at = _now()
    session.add(purpose)
    await session.flush()
    return purpose


async def delete_purpose(session: AsyncSession, *, workspace_id: uuid.UUID, key: str) -> None:
    purpose = await get_purpose(session, workspace_id=workspace_id, key=key)
    if await repository.purpose_cited(session, workspace_id, key):
        raise PurposeInUse(f"Consent records cite purpose {key!r}; the ledger keeps it.")
    await session.delete(purpose)
    await session.flush()


# --- notices ----------------------------------------------------------------------------------

def notice_public(notice: PrivacyNotice, cited: bool) -> NoticePublic:
    return NoticePublic.model_validate({**notice.model_dump(), "cited": cited})


async def list_notices(session: AsyncSession, *, workspace_id: uuid.UUID, key: str | None) -> list[NoticePublic]:
    return [notice_public(n, c) for n, c in await repository.list_notices(session, workspace_id, key)]


async def _notice(session: AsyncSession, workspace_id: uuid.UUID, notice_id: uuid.UUID) -> tuple[PrivacyNotice, bool]:
    found = await repository.get_notice(session, workspace_id, notice_id)
    if found is None:
        raise NotFound(f"No privacy notice version with id {notice_id} in this workspace.")
    return found


async def get_notice(session: AsyncSession, *, workspace_id: uuid.UUID, notice_id: uuid.UUID) -> NoticePublic:
    return notice_public(*await _notice(session, workspace_id, notice_id))


async def create_notice(session: AsyncSession, *, workspace_id: uuid.UUID, data: NoticeCreate) -> NoticePublic:
    if data.url is None and data.text is None:
        raise ValidationFailed("A notice needs the `text` shown or the `url` it is published at.", code="notice_content")
    version = data.version or await repository.next_notice_version(session, workspace_id, data.key)
    if await repository.notice_version_exists(session, workspace_id, data.key, version):
        raise Conflict(f"Notice {data.key!r} already has a version {version}.", code="duplicate_notice_version")
    notice = PrivacyNotice(
        workspace_id=workspace_id, id=uuid7(), key=data.key, version=version, major=data.major, title=data.title,
        url=data.url, text=data.text, published_at=data.published_at or _now(),
    )
    session.add(notice)
    await session.flush()
    await session.refresh(notice)
    return notice_public(notice, False)


async def update_notice(
    session: AsyncSession, *, workspace_id: uuid.UUID, notice_id: uuid.UUID, data: NoticeUpdate
) -> NoticePublic:
    notice, cited = await _notice(session, workspace_id, notice_id)
    if cited:
        raise NoticeCited(f"Notice {notice.key!r} v{notice.version} is cited by consent records and cannot change; "
                          "publish a new version instead.")
    changes = data.model_dump(exclude_unset=True)
    for field in ("major", "title", "published_at"):
        if field in changes and changes[field] is None:
            raise ValidationFailed(f"{field} cannot be null.", code="validation_error")
    for field, value in changes.items():
        setattr(notice, field, value)
    if notice.url is None and notice.text is None:
        raise ValidationFailed("A notice needs the `text` shown or the `url` it is published at.", code="notice_content")
    session.add(notice)
    await session.flush()
    return notice_public(notice, False)


async def delete_notice(session: AsyncSession, *, workspace_id: uuid.UUID, notice_id: uuid.UUID) -> None:
    notice, cited = await _notice(session, workspace_id, notice_id)
    if cited:
        raise NoticeCited(f"Notice {notice.key!r} v{notice.version} is cited by consent records and cannot be deleted.")
    await session.delete(notice)
    await session.flush()


# --- the ledger -------------------------------------------------------------------------------

def record_public(record: ConsentRecord) -> ConsentRecordPublic:
    return ConsentRecordPublic.model_validate(record, from_attributes=True)


async def _resolve_notice(
    session: AsyncSession, workspace_id: uuid.UUID, key: str | None, version: int | None
) -> tuple[str | None, int | None]:
    if version is None:
        if key is not None:
            raise ValidationFailed("`notice` needs `notice_version` (the version shown).", code="unknown_notice")
        return None, None
    if key is None:
        keys = await repository.notice_keys(session, workspace_id)
        if len(keys) != 1:
            raise UnknownNotice("Say which notice `notice_version` is a version of with `notice` (its key)."
                                if keys else "The workspace has no privacy notice yet; create one first.")
        key = keys[0]
    if not await repository.notice_version_exists(session, workspace_id, key, version):
        raise UnknownNotice(f"Notice {key!r} has no version {version} in this workspace.")
    return key, version


async def record_consent(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    profile_id: uuid.UUID,
    data: ConsentBase,
    secret: str,
) -> ConsentRecordPublic:
    """Append one record for the profile (the survivor, when `profile_id` was merged away)."""
    profile = await profile_service.resolve_profile(session, workspace_id=workspace_id, profile_id=profile_id)
    if await repository.get_purpose(session, workspace_id, data.purpose) is None:
        raise UnknownPurpose(f"No purpose {data.purpose!r} in this workspace.")
    notice_key, notice_version = await _resolve_notice(session, workspace_id, data.notice, data.notice_version)
    now = _now()
    occurred_at = data.occurred_at or now
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    if occurred_at > now + FUTURE_TOLERANCE:
        raise ValidationFailed("occurred_at is in the future.", code="future_occurred_at")
    expires_at = data.expires_at
    if expires_at is not None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        if expires_at <= occurred_at:
            raise ValidationFailed("expires_at must be after occurred_at.", code="bad_expiry")
    record = ConsentRecord(
        workspace_id=workspace_id, id=uuid7(), profile_id=profile.id, purpose=data.purpose, channel=data.channel,
        status=data.status, source=data.source, method=data.method, notice_key=notice_key,
        notice_version=notice_version, occurred_at=occurred_at, expires_at=expires_at,
        proof=hash_proof(secret, workspace_id, data.proof),
    )
    session.add(record)
    await session.flush()
    await session.refresh(record)
    await _changed(session, workspace_id, [profile.id])
    return record_public(record)


async def _changed(session: AsyncSession, workspace_id: uuid.UUID, profile_ids: list[uuid.UUID]) -> None:
    """Consent changed for these profiles: the same mark computed traits use for changed
    profiles, which consumers of a profile's state (segments) read."""
    await trait_service.enqueue_incremental_refresh(await raw_connection(session), workspace_id=workspace_id,
                                                    profile_ids=profile_ids)


async def profile_for_identifier(
    session: AsyncSession, *, workspace_id: uuid.UUID, type_: str, value: str, workspace_settings: dict[str, Any]
) -> uuid.UUID:
    """The profile with this identifier; a new one (through identity resolution) when unknown."""
    from app.identity import service as identity_service
    from app.identity.normalize import InvalidIdentifier, normalize_identifier

    settings = identity_service.identity_settings_from(workspace_settings)
    try:
        ident = normalize_identifier(type_, value, settings)
    except InvalidIdentifier as exc:
        raise BadRequest(str(exc), code="invalid_identifier") from None
    if ident is None:
        raise BadRequest(f"{value!r} is a blocked placeholder value; it identifies no one.", code="blocked_identifier")
    conn = await raw_connection(session)
    await identity_service.lock_workspace(conn, workspace_id, exclusive=False)
    try:
        resolution = await identity_service.resolve(
            conn, workspace_id=workspace_id, settings=settings, exclusive=False,
            requests=[identity_service.LinkRequest(index=0, message_id=f"consent-{uuid7()}", rule="consent",
                                                   keys=[(ident.type, ident.value, ident.raw)])],
        )
    except identity_service.RetryBatch:
        # Another transaction created this person at the same moment: the retry finds them.
        raise ServiceUnavailable("The person was being created concurrently; retry the request.",
                                 headers={"Retry-After": "1"}) from None
    return resolution.profile_of[0]


# --- the answer -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ConsentCheck:
    """The answer to "may we use this profile for this purpose on this channel at this time"."""

    allowed: bool
    record_id: uuid.UUID | None
    status: str  # granted, denied, withdrawn, expired, stale, default_granted, default_denied, unknown_purpose, no_profile
    reason: str
    profile_id: uuid.UUID | None = None
    record: ConsentRecord | RecordView | None = None


@dataclass(frozen=True, slots=True)
class _Candidate:
    record: ConsentRecord | RecordView
    stale_since: datetime | None


def _valid(c: _Candidate, at: datetime) -> bool:
    r = c.record
    return (
        r.status == "granted"
        and (r.expires_at is None or r.expires_at > at)
        and (c.stale_since is None or c.stale_since > at)
    )


def _deciding(candidates: list[_Candidate], merged_at: datetime | None, at: datetime) -> _Candidate | None:
    """Rules 1-2 of the module docstring."""
    counted = [c for c in candidates if c.record.occurred_at <= at]
    if not counted:
        return None

    def newest(c: _Candidate) -> tuple[datetime, uuid.UUID]:
        return c.record.occurred_at, c.record.id

    after = [c for c in counted if merged_at is None or c.record.occurred_at > merged_at]
    if after:
        return max(after, key=newest)
    latest: dict[uuid.UUID, _Candidate] = {}
    for c in counted:
        seen = latest.get(c.record.profile_id)
        if seen is None or newest(c) > newest(seen):
            latest[c.record.profile_id] = c
    ordered = sorted(latest.values(), key=newest, reverse=True)
    return sorted(ordered, key=lambda c: _valid(c, at))[0]  # stable: not allowing first, then the latest


def _via(r: ConsentRecord | RecordView) -> str:
    text = f"{r.occurred_at.date().isoformat()} via {r.method or r.source}"
    if r.notice_key is not None:
        text += f" under notice {r.notice_key} v{r.notice_version}"
    if r.channel is None:
        text += " (every channel)"
    return text


def _answer(
    purpose: ConsentPurpose | _PurposeView, deciding: _Candidate | None, at: datetime, survivor_id: uuid.UUID, conflict: bool
) -> ConsentCheck:
    if deciding is None:
        granted = purpose.default_status == "granted"
        if purpose.lawful_basis == "consent":
            reason = "no record; opt-in purpose denied by default"
        else:
            reason = f"no record; {purpose.lawful_basis} purpose {purpose.default_status} by default"
        return ConsentCheck(granted, None, f"default_{purpose.default_status}", reason, survivor_id)
    r = deciding.record
    tail = ""
    if r.profile_id != survivor_id:
        tail = f"; recorded on merged profile {r.profile_id}"
    if conflict:
        tail += "; merged profiles disagree and the stricter state wins"
    if r.status != "granted":
        return ConsentCheck(False, r.id, r.status, f"{r.status} {_via(r)}{tail}", survivor_id, r)
    if r.expires_at is not None and r.expires_at <= at:
        return ConsentCheck(False, r.id, "expired", f"granted {_via(r)}, expired {r.expires_at.isoformat()}{tail}",
                            survivor_id, r)
    if deciding.stale_since is not None and deciding.stale_since <= at:
        return ConsentCheck(
            False, r.id, "stale",
            f"granted {_via(r)}, stale since a later major version of the notice was published "
            f"{deciding.stale_since.date().isoformat()}{tail}", survivor_id, r,
        )
    return ConsentCheck(True, r.id, "granted", f"granted {_via(r)}{tail}", survivor_id, r)


def _conflict(candidates: list[_Candidate], merged_at: datetime | None, at: datetime) -> bool:
    """Did merged profiles' latest records disagree (rule 2's second case)?"""
    if merged_at is None:
        return False
    counted = [c for c in candidates if c.record.occurred_at <= at]
    if not counted or any(c.record.occurred_at > merged_at for c in counted):
        return False
    latest: dict[uuid.UUID, _Candidate] = {}
    for c in counted:
        seen = latest.get(c.record.profile_id)
        if seen is None or (c.record.occurred_at, c.record.id) > (seen.record.occurred_at, seen.record.id):
            latest[c.record.profile_id] = c
    return len({_valid(c, at) for c in latest.values()}) > 1


async def check(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    profile_id: uuid.UUID,
    purpose: str,
    channel: str,
    at: datetime | None = None,
    resolved: bool = False,
) -> ConsentCheck:
    """May we use this profile (or the one it was merged into) for `purpose` on `channel` at
    `at` (default now)? Fails closed: an unknown profile or purpose is not allowed.
    `resolved`: the caller has just read `profile_id` in this transaction and it is not merged
    away (a decision's profile read), so it is not looked up again."""
    at = at or _now()
    if channel not in CHANNELS:
        return ConsentCheck(False, None, "unknown_channel", f"no channel {channel!r}")
    survivor = profile_id
    if not resolved:
        try:
            survivor = (await profile_service.resolve_profile(
                session, workspace_id=workspace_id, profile_id=profile_id)).id
        except NotFound:
            return ConsentCheck(False, None, "no_profile", f"no profile {profile_id} in this workspace")
    purpose_row = await repository.get_purpose(session, workspace_id, purpose)
    if purpose_row is None:
        return ConsentCheck(False, None, "unknown_purpose", f"no purpose {purpose!r} in this workspace", survivor)
    absorbed, merged_at = await repository.merge_group(session, workspace_id, survivor)
    candidates = [
        _Candidate(r, s) for r, s in await repository.group_records(
            session, workspace_id, [survivor, *absorbed], purpose=purpose, channel=channel,
        )
    ]
    return _decide(purpose_row, candidates, merged_at, at, survivor)


def _decide(purpose: ConsentPurpose | _PurposeView, candidates: list[_Candidate], merged_at: datetime | None, at: datetime,
            survivor: uuid.UUID) -> ConsentCheck:
    return _answer(purpose, _deciding(candidates, merged_at, at), at, survivor, _conflict(candidates, merged_at, at))


@dataclass(frozen=True, slots=True)
class RecordView:
    """The fields of a consent record a check reads, from `repository.check_columns`' JSON."""

    id: uuid.UUID
    profile_id: uuid.UUID
    channel: str | None
    status: str
    source: str
    method: str | None
    notice_key: str | None
    notice_version: int | None
    occurred_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class _PurposeView:
    lawful_basis: str
    default_status: str


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def check_loaded(row: Any, *, profile_id: uuid.UUID, purpose: str, channel: str, at: datetime) -> ConsentCheck:
    """`check` for a person whose consent columns (`repository.check_columns`) were read with
    them: the same rules and answer, without a statement of its own. `profile_id` is the
    person that row read, not merged away."""
    if channel not in CHANNELS:
        return ConsentCheck(False, None, "unknown_channel", f"no channel {channel!r}")
    basis = row["consent_purpose"]
    if basis is None:
        return ConsentCheck(False, None, "unknown_purpose", f"no purpose {purpose!r} in this workspace", profile_id)
    candidates = [
        _Candidate(RecordView(
            id=uuid.UUID(r["id"]), profile_id=uuid.UUID(r["profile_id"]), channel=r["channel"], status=r["status"],
            source=r["source"], method=r["method"], notice_key=r["notice_key"], notice_version=r["notice_version"],
            occurred_at=datetime.fromisoformat(r["occurred_at"]), expires_at=_time(r["expires_at"]),
        ), _time(r["stale_since"]))
        for r in row["consent_records"] or ()
    ]
    return _decide(_PurposeView(basis["lawful_basis"], basis["default_status"]), candidates,
                   row["consent_merged_at"], at, profile_id)


async def consent_state(
    session: AsyncSession, *, workspace_id: uuid.UUID, profile_id: uuid.UUID, at: datetime | None = None
) -> ConsentState:
    """Every purpose on every channel, each with the record it rests on (or the default)."""
    at = at or _now()
    profile = await profile_service.resolve_profile(session, workspace_id=workspace_id, profile_id=profile_id)
    purposes = await repository.list_purposes(session, workspace_id)
    absorbed, merged_at = await repository.merge_group(session, workspace_id, profile.id)
    records = [_Candidate(r, s) for r, s in await repository.group_records(session, workspace_id, [profile.id, *absorbed])]
    items = []
    for purpose in purposes:
        mine = [c for c in records if c.record.purpose == purpose.key]
        for channel in CHANNELS:
            cands = [c for c in mine if c.record.channel in (None, channel)]
            answer = _answer(purpose, _deciding(cands, merged_at, at), at, profile.id, _conflict(cands, merged_at, at))
            items.append(ConsentStateItem(
                purpose=purpose.key, channel=channel, allowed=answer.allowed, status=answer.status,
                reason=answer.reason, record=record_public(answer.record) if answer.record is not None else None,
            ))
    return ConsentState(profile_id=profile.id, requested_id=profile_id if profile.id != profile_id else None, at=at,
                        items=items)


async def consent_history(
    session: AsyncSession, *, workspace_id: uuid.UUID, profile_id: uuid.UUID, cursor: str | None, limit: int
) -> tuple[list[ConsentRecordPublic], uuid.UUID, str | None]:
    from app.core.pagination import decode_cursor, encode_cursor

    profile = await profile_service.resolve_profile(session, workspace_id=workspace_id, profile_id=profile_id)
    absorbed, _ = await repository.merge_group(session, workspace_id, profile.id)
    after = None
    if cursor:
        ts, rid = decode_cursor(cursor, 2)
        try:
            after = (datetime.fromisoformat(ts), uuid.UUID(rid))
        except ValueError:
            raise BadRequest("The cursor is not valid; use `next_cursor` from a previous page.",
                             code="invalid_cursor") from None
    rows = await repository.history(session, workspace_id, [profile.id, *absorbed], after=after, limit=limit + 1)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].occurred_at.isoformat(), rows[-1].id)
    return [record_public(r) for r in rows], profile.id, next_cursor


def consent_clause(
    *, workspace_id: uuid.UUID, purpose: str, channel: str, at: datetime | None = None
) -> sa.ColumnElement[bool]:
    """`check` as a SQL boolean over the `profile` table: true for the profiles that may be used
    for `purpose` on `channel` at `at` (default: the statement's time). Absorbed profiles (merged
    into another) are false: ask about their survivor. One correlated subquery per profile row,
    served by the ledger's (workspace_id, profile_id, purpose, occurred_at) index."""
    if channel not in CHANNELS:
        return sa.false()
    p = Profile.__table__
    r = ConsentRecord.__table__.alias("consent_candidate_record")
    member = Profile.__table__.alias("consent_merged_profile")
    merge = ProfileMerge.__table__.alias("consent_merge")
    later = PrivacyNotice.__table__.alias("consent_later_notice")
    cp = ConsentPurpose.__table__.alias("consent_purpose_default")
    when = sa.literal(at, sa.DateTime(timezone=True)) if at is not None else sa.func.statement_timestamp()

    absorbed = (
        sa.select(member.c.id)
        .where(member.c.workspace_id == workspace_id, member.c.merged_into == p.c.id)
        .correlate(p)
    )
    merged_at = (
        sa.select(sa.func.max(merge.c.created_at))
        .where(merge.c.workspace_id == workspace_id, merge.c.absorbed_id.in_(absorbed), merge.c.undone_at.is_(None))
        .correlate(p)
        .scalar_subquery()
    )
    stale = sa.exists().where(
        later.c.workspace_id == workspace_id, later.c.key == r.c.notice_key, later.c.version > r.c.notice_version,
        later.c.major, later.c.published_at <= when,
    )
    valid = sa.and_(
        r.c.status == "granted", sa.or_(r.c.expires_at.is_(None), r.c.expires_at > when), sa.not_(stale)
    )
    after_merge = r.c.occurred_at > sa.func.coalesce(merged_at, sa.cast(sa.literal("-infinity"), sa.DateTime(timezone=True)))
    newest_in_profile = sa.func.row_number().over(
        partition_by=r.c.profile_id, order_by=(r.c.occurred_at.desc(), r.c.id.desc())
    )
    counted = (
        sa.select(valid.label("valid"), after_merge.label("after_merge"), newest_in_profile.label("rank"),
                  r.c.occurred_at, r.c.id)
        .where(
            r.c.workspace_id == workspace_id,
            sa.or_(r.c.profile_id == p.c.id, r.c.profile_id.in_(absorbed)),
            r.c.purpose == purpose,
            sa.or_(r.c.channel == channel, r.c.channel.is_(None)),
            r.c.occurred_at <= when,
        )
        .correlate(p)
        .subquery("consent_counted")
    )
    deciding = (
        sa.select(counted.c.valid)
        .where(sa.or_(counted.c.after_merge, counted.c.rank == 1))
        .order_by(
            counted.c.after_merge.desc(),
            sa.case((counted.c.after_merge, 0), else_=sa.cast(counted.c.valid, sa.Integer)),
            counted.c.occurred_at.desc(),
            counted.c.id.desc(),
        )
        .limit(1)
        .correlate(p)
        .scalar_subquery()
    )
    default = (
        sa.select(cp.c.default_status == "granted")
        .where(cp.c.workspace_id == workspace_id, cp.c.key == purpose)
        .scalar_subquery()
    )
    return sa.and_(p.c.merged_into.is_(None), sa.func.coalesce(deciding, default, sa.false()))


# --- one-click unsubscribe --------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def issue_unsubscribe_token(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    profile_id: uuid.UUID,
    purpose: str,
    channel: str,
    expires_in: timedelta,
    secret: str,
) -> UnsubscribeTokenPublic:
    """A signed token for one profile, purpose and channel: `<payload>.<HMAC>` in base64url,
    the HMAC under the workspace's unsubscribe key. Nothing is stored until it is used."""
    profile = await profile_service.resolve_profile(session, workspace_id=workspace_id, profile_id=profile_id)
    if await repository.get_purpose(session, workspace_id, purpose) is None:
        raise UnknownPurpose(f"No purpose {purpose!r} in this workspace.")
    expires = int(time.time() + expires_in.total_seconds())
    payload = _b64(orjson.dumps({"w": str(workspace_id), "t": str(uuid7()), "p": str(profile.id), "u": purpose,
                                 "c": channel, "e": expires}))
    mac = hmac.new(workspace_key(secret, workspace_id, "unsubscribe"), payload.encode(), hashlib.sha256).digest()
    token = f"{payload}.{_b64(mac)}"
    return UnsubscribeTokenPublic(token=token, path=f"/v1/unsubscribe/{token}",
                                  expires_at=datetime.fromtimestamp(expires, UTC))


def read_unsubscribe_token(token: str, *, secret: str) -> dict[str, Any]:
    """The token's claims, or 404 when it is not one of ours (forged, altered, truncated)."""
    invalid = InvalidToken("This unsubscribe link is not valid.")
    payload, _, mac = token.partition(".")
    try:
        claims = orjson.loads(_unb64(payload))
        workspace_id = uuid.UUID(claims["w"])
        given = _unb64(mac)
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise invalid from None
    expected = hmac.new(workspace_key(secret, workspace_id, "unsubscribe"), payload.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(given, expected):
        raise invalid
    try:
        return {"workspace_id": workspace_id, "token_id": uuid.UUID(claims["t"]), "profile_id": uuid.UUID(claims["p"]),
                "purpose": str(claims["u"]), "channel": str(claims["c"]), "expires": int(claims["e"])}
    except (ValueError, KeyError, TypeError):
        raise invalid from None


async def unsubscribe(session: AsyncSession, *, token: str, secret: str) -> tuple[str, str]:
    """Record the withdrawal a token stands for, once. Touches nothing but the ledger and the
    token's use."""
    claims = read_unsubscribe_token(token, secret=secret)
    if claims["expires"] < time.time():
        raise TokenExpired("This unsubscribe link has expired.")
    workspace_id = claims["workspace_id"]
    try:
        profile = await profile_service.resolve_profile(session, workspace_id=workspace_id,
                                                        profile_id=claims["profile_id"])
    except NotFound:
        raise InvalidToken("This unsubscribe link is not valid any more.") from None
    if await repository.get_purpose(session, workspace_id, claims["purpose"]) is None:
        raise InvalidToken("This unsubscribe link is not valid any more (its purpose was deleted).")
    record_id = uuid7()
    conn = await raw_connection(session)
    used = await conn.fetchval(
        """INSERT INTO unsubscribe_token_use (workspace_id, token_id, profile_id, record_id)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING token_id""",
        workspace_id, claims["token_id"], profile.id, record_id,
    )
    if used is None:
        raise TokenUsed("This unsubscribe link has already been used.")
    record = ConsentRecord(
        workspace_id=workspace_id, id=record_id, profile_id=profile.id, purpose=claims["purpose"],
        channel=claims["channel"], status="withdrawn", source="api", method="one_click_unsubscribe",
        occurred_at=_now(), proof={},
    )
    session.add(record)
    await session.flush()
    await _changed(session, workspace_id, [profile.id])
    return claims["purpose"], claims["channel"]


# --- from ingest and imports ------------------------------------------------------------------

async def record_signals(
    conn: Any,
    *,
    workspace_id: uuid.UUID,
    items: list[tuple[uuid.UUID, Signal | None, datetime, str]],
    gpc_all: bool = False,
) -> int:
    """Record a batch's consent signals inside its transaction, set-based: at most two
    statements for the whole batch (and none for a batch without signals). `items` are
    (profile, signal, message time, message id); `gpc_all`: the request carried `Sec-GPC: 1`.
    Returns the number of records written."""
    sdk_rows: list[dict[str, Any]] = []
    explicit: list[dict[str, Any]] = []
    for ord_, (profile_id, signal, occurred_at, message_id) in enumerate(items):
        base = {"profile_id": str(profile_id), "occurred_at": occurred_at.isoformat(), "message_id": message_id,
                "ord": ord_}
        if signal is not None and signal.record is not None:
            explicit.append({**signal.record, "id": str(uuid7()), "profile_id": str(profile_id),
                             "message_id": message_id})
            continue
        if gpc_all or (signal is not None and signal.gpc):
            sdk_rows.append({**base, "id": str(uuid7()), "category": None, "granted": False, "gpc": True})
        if signal is not None:
            for category, granted in signal.categories:
                sdk_rows.append({**base, "id": str(uuid7()), "category": category, "granted": granted, "gpc": False})
    changed: list[uuid.UUID] = []
    if sdk_rows:
        changed += [r["profile_id"] for r in await conn.fetch(
            repository.RECORD_SIGNALS, workspace_id, orjson.dumps(sdk_rows).decode())]
    if explicit:
        changed += [r["profile_id"] for r in await conn.fetch(
            repository.RECORD_EXPLICIT, workspace_id, orjson.dumps(explicit).decode())]
    if changed:
        await trait_service.enqueue_incremental_refresh(conn, workspace_id=workspace_id,
                                                        profile_ids=sorted(set(changed)))
    return len(changed)


async def purpose_keys(session: AsyncSession, *, workspace_id: uuid.UUID) -> set[str]:
    return {p.key for p in await repository.list_purposes(session, workspace_id)}


async def notice_versions(session: AsyncSession, *, workspace_id: uuid.UUID) -> set[tuple[str, int]]:
    rows = await session.execute(
        sa.select(PrivacyNotice.key, PrivacyNotice.version).where(PrivacyNotice.workspace_id == workspace_id)
    )
    return {(k, v) for k, v in rows}
