"""Imports every table so the metadata is complete (Alembic, tests)."""

from app.core import db as _db  # noqa: F401  (naming convention first)
from app.workspaces.models import ApiKey, Workspace  # noqa: F401
