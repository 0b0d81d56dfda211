"""Mounts every domain router."""

from fastapi import APIRouter

from app.consent.router import router as consent_router
from app.decisions.router import router as decisions_router
from app.dedup.router import router as dedup_router
from app.events.router import router as events_router
from app.groups.router import router as groups_router
from app.health.router import router as health_router
from app.identity.router import router as identity_router
from app.ingest.imports_router import router as imports_router
from app.ingest.router import router as ingest_router
from app.privacy.router import router as privacy_router
from app.offers.router import router as offers_router
from app.profiles.router import router as profiles_router
from app.segments.router import router as segments_router
from app.traits.router import router as traits_router
from app.workspaces.router import router as workspaces_router

v1 = APIRouter(prefix="/v1")
v1.include_router(ingest_router)  # first: the hot path is matched before every other route
v1.include_router(workspaces_router)
v1.include_router(imports_router)
v1.include_router(events_router)
v1.include_router(profiles_router)
v1.include_router(traits_router)
v1.include_router(identity_router)
v1.include_router(dedup_router)
v1.include_router(groups_router)
v1.include_router(segments_router)
v1.include_router(consent_router)
v1.include_router(privacy_router)
v1.include_router(offers_router)
v1.include_router(decisions_router)

root = APIRouter()
root.include_router(health_router)
