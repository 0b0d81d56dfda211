"""Settings: one class, every field an environment variable with the CLIENTELE_ prefix.

`DATABASE_URL` is read without the prefix too, because that is what every platform sets.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ADMIN_TOKEN = "changethis"
DEFAULT_CONSENT_SECRET = "changethis-consent"
DEFAULT_PRIVACY_SECRET = "changethis-privacy"


def default_data_dir() -> Path:
    import platformdirs

    return platformdirs.user_data_path("clientele", appauthor=False)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CLIENTELE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, description="uvicorn worker processes for `clientele serve`")
    data_dir: Path = Field(
        default_factory=lambda: default_data_dir(),
        description="Where the embedded PostgreSQL keeps its data when DATABASE_URL is unset: the user's data "
                    "directory (~/.local/share/clientele on Linux), whatever the working directory.",
    )
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "CLIENTELE_DATABASE_URL")
    )
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=5, ge=0)
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)
    db_pool_timeout_seconds: float = Field(default=10, gt=0, description="Wait for a free connection, then 503.")

    admin_token: SecretStr = Field(
        default=SecretStr(DEFAULT_ADMIN_TOKEN),
        description="Instance administrator token: creates workspaces over the API.",
    )

    consent_secret: SecretStr = Field(
        default=SecretStr(DEFAULT_CONSENT_SECRET),
        description="Server secret from which each workspace's consent keys are derived (HMAC): the key "
        "that signs one-click unsubscribe tokens and the key that hashes consent proof (IP, user agent). "
        "Changing it invalidates issued tokens and makes new proof hashes differ from old ones.",
    )
    privacy_secret: SecretStr = Field(
        default=SecretStr(DEFAULT_PRIVACY_SECRET),
        description="Keys the per-workspace HMAC of suppressed identifiers (never stored in the database). "
        "Keep it stable: after a change, existing suppressions no longer match.",
    )
    privacy_retention_cron: str = Field(
        default="41 * * * *",
        description="When events older than each workspace's retention are deleted (cron, UTC); empty disables it.",
    )
    privacy_retention_batch_size: int = Field(
        default=1000, ge=1, le=100_000, description="Events deleted per short transaction by the retention job."
    )

    log_level: str = "INFO"
    log_json: bool = True

    # Request size limits (bytes). Ingest limits follow Segment's documented HTTP API limits.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    ingest_max_message_bytes: int = Field(default=32 * 1024, ge=1024)
    ingest_max_batch_bytes: int = Field(default=500 * 1024, ge=1024)
    ingest_max_batch_messages: int = Field(default=2500, ge=1)
    import_max_bytes: int = Field(default=2 * 1024**3, ge=1024)

    # PostgreSQL work_mem for statements that evaluate a segment rule over a whole workspace
    # (previews and counts, refreshes). A condition on a computed trait or an event under an
    # `or` is a subquery PostgreSQL can hash once or probe once per profile; it hashes only when
    # its (often overestimated) size fits in work_mem x hash_mem_multiplier, and at the default
    # 4MB a 1M-profile workspace gets the probes (19.7 s against 0.7 s at 16MB, docs/SEGMENTS.md).
    segment_work_mem: str = Field(
        default="64MB", pattern=r"^[1-9][0-9]{0,6}(kB|MB|GB)$",
        description="work_mem for segment counts, previews and refreshes (SET LOCAL, per transaction).",
    )

    # Throttling of the ingest endpoints (429 + Retry-After).
    ingest_max_concurrency: int = Field(
        default=32, ge=1, description="Ingest requests in flight per process before 429."
    )
    ingest_db_concurrency: int = Field(
        default=4, ge=1,
        description="Ingest transactions running at once per process (also the size of ingest's own connection "
        "pool); further admitted requests wait their turn.",
    )
    ingest_rate_limit_per_second: float = Field(
        default=0, ge=0, description="Messages/s per workspace and process; 0 disables it."
    )
    write_key_cache_seconds: float = Field(
        default=5, ge=0, description="How long a process trusts a write key it has checked (0 disables)."
    )
    ingest_future_tolerance_seconds: int = Field(
        default=300, ge=0, description="Timestamps further than this in the future are clamped."
    )

    # Background jobs (PostgreSQL queue, see app/jobs).
    run_worker: bool | None = Field(
        default=None,
        description="Run the job worker inside the API process (the embedded default). "
        "Unset means on, except with CLIENTELE_ENV=test.",
    )
    worker_concurrency: int = Field(default=4, ge=1, description="Jobs one worker process runs at once.")
    traits_refresh_cron: str = Field(
        default="0 * * * *",
        description="When every workspace's computed traits are fully refreshed (cron, UTC); empty disables it.",
    )
    traits_incremental_delay_seconds: float = Field(
        default=10, gt=0, le=3600,
        description="Debounce window: profiles touched by events are refreshed together at most this late.",
    )
    segments_refresh_cron: str = Field(
        default="*/15 * * * *",
        description="When every segment is refreshed (cron, UTC): incremental for unchanged rules, full for rules "
        "with time windows; empty disables it.",
    )
    segments_refresh_concurrency: int = Field(
        default=2, ge=1, le=32,
        description="How many segments of a workspace a scheduled refresh computes at once, each on its own "
        "database connection (about one core of PostgreSQL each).",
    )
    clv_refit_hours: float = Field(
        default=24, ge=0,
        description="A full refresh refits a workspace's CLV model older than this; 0 never refits automatically.",
    )

    @model_validator(mode="after")
    def _default_worker(self) -> Settings:
        # Tests drive jobs themselves; everywhere else `serve` embeds the worker unless told not to.
        if self.run_worker is None:
            self.run_worker = self.env != "test"
        return self

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.env == "production" and self.admin_token.get_secret_value() == DEFAULT_ADMIN_TOKEN:
            raise ValueError(
                "CLIENTELE_ADMIN_TOKEN still has its development default; set a strong secret "
                "before running with CLIENTELE_ENV=production"
            )
        if self.env != "development" and self.consent_secret.get_secret_value() == DEFAULT_CONSENT_SECRET:
            raise ValueError(
                "CLIENTELE_CONSENT_SECRET still has its development default; set a strong secret "
                f"before running with CLIENTELE_ENV={self.env}"
            )
        if self.env == "production" and self.privacy_secret.get_secret_value() == DEFAULT_PRIVACY_SECRET:
            raise ValueError(
                "CLIENTELE_PRIVACY_SECRET still has its development default; set a strong secret "
                "before running with CLIENTELE_ENV=production"
            )
        return self

    @property
    def database_description(self) -> str:
        """Which database this process uses, for people (never the password)."""
        if self.database_url:
            from sqlalchemy.engine import make_url

            return f"PostgreSQL at {make_url(self.database_url).render_as_string(hide_password=True)} (DATABASE_URL)"
        return f"embedded PostgreSQL in {self.pgdata_dir}"

    @property
    def pgdata_dir(self) -> Path:
        return self.data_dir.expanduser().resolve() / "pgdata"


@lru_cache
def get_settings() -> Settings:
    return Settings()
