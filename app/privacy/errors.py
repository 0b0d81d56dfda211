from __future__ import annotations

from app.core.errors import AppError, Conflict, NotFound


class PrivacyRequestNotFound(NotFound):
    code = "privacy_request_not_found"


class ExportNotReady(Conflict):
    code = "export_not_ready"


class SuppressionNotFound(NotFound):
    code = "suppression_not_found"


class InvalidIdentifier(AppError):
    status = 422
    code = "invalid_identifier"
    title = "Unprocessable Content"
