"""`Idempotency-Key` for non-ingest writes (profile patches, merges, consent): the first
response is stored with the request's fingerprint; a retry with the same key and body gets
the same response, a reuse of the key with a different body gets 422.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import orjson
import sqlalchemy as sa
from fastapi import Header, Request
from pydantic import BaseModel
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from app.core.errors import AppError


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_record"
    __table_args__ = (sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),)

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    key: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    fingerprint: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    status_code: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    response: dict = Field(sa_column=sa.Column(pg.JSONB, nullable=False))
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )


IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=255, description="Retry-safe key: the same key and body replay the first response."),
]


def fingerprint(method: str, path: str, body: Any) -> str:
    return hashlib.sha256(orjson.dumps([method, path, body], option=orjson.OPT_SORT_KEYS)).hexdigest()


async def replay(session: AsyncSession, *, workspace_id: uuid.UUID, key: str | None, fp: str) -> dict | None:
    """The stored response for this key, or None. Locks the key so concurrent retries wait."""
    if not key:
        return None
    # Serialise concurrent requests with the same key for the rest of the transaction.
    await session.execute(
        sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"{workspace_id}:{key}"}
    )
    row = (
        await session.execute(
            sa.select(IdempotencyRecord).where(
                IdempotencyRecord.workspace_id == workspace_id, IdempotencyRecord.key == key
            )
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    if row.fingerprint != fp:
        raise AppError(
            f"Idempotency-Key {key!r} was already used with a different request.",
            status=422, code="idempotency_key_reused", title="Unprocessable Content",
        )
    return row.response


async def remember(
    session: AsyncSession, *, workspace_id: uuid.UUID, key: str | None, fp: str, status_code: int, response: dict
) -> None:
    if not key:
        return
    session.add(IdempotencyRecord(workspace_id=workspace_id, key=key, fingerprint=fp, status_code=status_code,
                                  response=response))
    await session.flush()


M = TypeVar("M", bound=BaseModel)


async def once(
    session: AsyncSession,
    request: Request,
    *,
    workspace_id: uuid.UUID,
    key: str | None,
    body: Any,
    model: type[M],
    run: Callable[[], Awaitable[M]],
) -> M:
    """Run `run` at most once per Idempotency-Key: a retry with the same key and body gets the
    stored response; the same key with another body is a 422. Without a key it just runs."""
    fp = fingerprint(request.method, request.url.path, body)
    stored = await replay(session, workspace_id=workspace_id, key=key, fp=fp)
    if stored is not None:
        return model.model_validate(stored)
    result = await run()
    await remember(session, workspace_id=workspace_id, key=key, fp=fp, status_code=200,
                   response=result.model_dump(mode="json"))
    return result


async def forget_mentioning(conn: Any, *, workspace_id: uuid.UUID, needles: list[str]) -> int:
    """Delete the stored responses that mention any of `needles` (erasure: a replayed response
    may carry a person's profile, traits or identifiers). Each needle is searched for as it
    appears inside a JSON string, i.e. JSON-escaped. `conn`: an asyncpg connection inside the
    caller's transaction."""
    escaped = sorted({orjson.dumps(n).decode()[1:-1] for n in needles if n})
    if not escaped:
        return 0
    status = await conn.execute(
        """DELETE FROM idempotency_record AS r WHERE r.workspace_id = $1
           AND EXISTS (SELECT 1 FROM unnest($2::text[]) AS n WHERE strpos(r.response::text, n) > 0)""",
        workspace_id, escaped,
    )
    return int(status.rsplit(" ", 1)[-1])
