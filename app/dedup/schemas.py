"""API shapes of the dedup domain."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.pagination import CursorPage
from app.dedup.matcher import DEFAULT_THRESHOLD

CandidateStatus = Literal["pending", "merged", "rejected"]

#: Largest block a run may expand. A block of k records costs k(k-1)/2 comparisons, so the
#: cap keeps one junk value (a default birthdate, a shop's phone) from dominating a run.
MAX_BLOCK_SIZE = 2000


class DedupRunCreate(BaseModel):
    """Parameters of a de-duplication run over the workspace's profiles."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"threshold": 0.9, "min_score": 0.5, "max_block_size": 500, "dry_run": False}]},
    )
    threshold: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="Merge candidates scoring at or above this automatically (ledger rule `dedup`). "
                    f"Omitted or null: nothing merges on its own, everything waits for review (a fuzzy match "
                    f"should not merge people unless you asked for it; {DEFAULT_THRESHOLD} is a measured "
                    "starting point, see docs/DEDUP.md).",
    )
    min_score: float = Field(
        default=0.5, ge=0.1, le=1.0,
        description="Record candidates scoring at or above this. Below 0.1 nearly every compared pair "
                    "would be queued, which is noise, not a review queue.",
    )
    max_block_size: int = Field(
        default=500, ge=2, le=MAX_BLOCK_SIZE,
        description="Blocks (records sharing one blocking key) larger than this are not expanded into "
                    "pairs and are counted in `skipped_blocks`.",
    )
    dry_run: bool = Field(
        default=False,
        description="Find and record the candidates but merge nothing: a preview of what the threshold would do.",
    )

    @model_validator(mode="after")
    def _threshold_not_below_min_score(self) -> Self:
        # Pairs under min_score are never recorded, so a lower threshold would silently act
        # as min_score; refuse it rather than let the request mean something else.
        if self.threshold is not None and self.threshold < self.min_score:
            raise ValueError("threshold must be at least min_score (or null to never merge automatically)")
        return self


class DedupRunCounts(BaseModel):
    """What a run looked at and what it did."""

    profiles_scanned: int = Field(description="Live (not merged-away) profiles with at least one matchable trait.")
    pairs_compared: int = Field(description="Pairs scored after blocking (not all pairs: see docs/DEDUP.md).")
    candidates: int = Field(description="Pairs at or above min_score recorded by this run (pending or merged).")
    auto_merged: int = Field(description="Candidates this run merged because they reached the threshold.")
    merge_conflicts: int = Field(
        description="Candidates at or above the threshold that identity limits kept apart (e.g. two user_ids); "
                    "they stay pending with the reason."
    )
    already_decided: int = Field(description="Pairs found again that were rejected or merged before: not proposed again.")
    shared_identifier: int = Field(
        description="Pairs sharing an identifier: identity resolution links those (or records the conflict), not dedup."
    )
    skipped_blocks: int = Field(description="Blocks larger than max_block_size that were not expanded.")


class DedupRunPublic(BaseModel):
    """A de-duplication run: parameters, status and counts."""

    id: uuid.UUID
    status: Literal["queued", "running", "completed", "failed"] = Field(
        description="A workspace of up to 100,000 matchable profiles is de-duplicated inside the request, and the "
                    "run comes back `completed` (201). A larger one is `queued` (202) for the background worker, "
                    "then `running`, then `completed` or `failed`: poll `GET /v1/dedup/runs/{id}`."
    )
    threshold: float | None = Field(description="Auto-merge threshold; null when the run never merged automatically.")
    min_score: float
    max_block_size: int
    dry_run: bool
    counts: DedupRunCounts
    model: dict[str, Any] | None = Field(
        description="The Fellegi-Sunter model the run learned from the workspace's profiles and reviewers' decisions "
                    "(per comparison and level: m, u and the weight in bits; the match rate; EM iterations). "
                    "Every score of the run was computed with it. See docs/DEDUP.md.",
        examples=[{"method": "fellegi-sunter, expectation maximisation", "match_rate": 0.00052, "prior_bits": -10.9,
                   "iterations": 4, "converged": True, "fitted_pairs": 9950, "random_pairs": 5000,
                   "decisions": {"same_person": 12, "different_people": 3},
                   "comparisons": {"birthdate": {"exact": {"m": 0.91, "u": 5.1e-05, "bits": 14.1}}}}],
    )
    unreadable: dict[str, Any] = Field(
        description="Trait values the run could not read, by field: a count and up to 20 examples with the reason "
                    "(e.g. a birth date written 04/05/1980, which could be April or May).",
        examples=[{"birthdate": {"count": 1, "examples": [
            {"profile_id": "0193a5c0-0000-7000-8000-000000000001", "value": "04/05/1980",
             "reason": "'04/05/1980' could be day/month or month/day: write it as 1980-MM-DD"}]}}],
    )
    error: str | None = Field(
        default=None, description="Why the run failed (status `failed`); null otherwise.",
        examples=["The workspace has more than 2,000,000 profiles with matchable traits; a run is limited to that many "
                  "(docs/DEDUP.md)."],
    )
    created_at: datetime
    finished_at: datetime | None


class DedupRunPage(CursorPage[DedupRunPublic]):
    """A page of dedup runs, newest first."""


class DedupCandidatePublic(BaseModel):
    """Two profiles that are probably one person, with the evidence and the decision."""

    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    run_id: uuid.UUID = Field(description="The latest run that proposed the pair.")
    profile_a_id: uuid.UUID = Field(description="The pair's profile with the smaller id.")
    profile_b_id: uuid.UUID
    score: float = Field(description="The matcher's probability that both are the same person (0-1).", examples=[0.97])
    evidence: dict[str, float | str] = Field(
        description="Per compared field the comparison level and its weight in bits, plus prior_bits and total_bits.",
        examples=[{"prior_bits": -8.9, "total_bits": 17.2, "first_name": "typo", "first_name_bits": 4.32,
                   "last_name": "exact", "last_name_bits": 6.1, "birthdate": "exact", "birthdate_bits": 12.4,
                   "location": "same_postcode", "location_bits": 6.0}],
    )
    status: CandidateStatus
    reason: str | None = Field(description="Why a pair above the threshold was not merged, or how it was decided.")
    merge_id: uuid.UUID | None = Field(description="The merge ledger entry, once merged.")
    created_at: datetime = Field(description="When a run first proposed the pair.")
    decided_at: datetime | None


class DedupCandidatePage(CursorPage[DedupCandidatePublic]):
    """A page of candidate pairs, highest score first."""
