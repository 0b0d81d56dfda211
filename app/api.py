"""Mounts every domain router."""

from fastapi import APIRouter

from app.health.router import router as health_router
from app.workspaces.router import router as workspaces_router

v1 = APIRouter(prefix="/v1")
v1.include_router(workspaces_router)

root = APIRouter()
root.include_router(health_router)
