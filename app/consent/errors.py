"""Errors of the consent domain."""

from __future__ import annotations

from app.core.errors import AppError


class UnknownPurpose(AppError):
    status, code, title = 422, "unknown_purpose", "Unprocessable Content"


class UnknownNotice(AppError):
    status, code, title = 422, "unknown_notice", "Unprocessable Content"


class NoticeCited(AppError):
    status, code, title = 409, "notice_cited", "Conflict"


class PurposeInUse(AppError):
    status, code, title = 409, "purpose_in_use", "Conflict"


class InvalidToken(AppError):
    status, code, title = 404, "invalid_token", "Not Found"


class TokenExpired(AppError):
    status, code, title = 410, "token_expired", "Gone"


class TokenUsed(AppError):
    status, code, title = 409, "token_used", "Conflict"
