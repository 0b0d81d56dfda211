"""Imports every table so the metadata is complete (Alembic, tests)."""

from app.core import db as _db  # noqa: F401  (naming convention first)
from app.consent.models import ConsentPurpose, ConsentRecord, PrivacyNotice, UnsubscribeTokenUse  # noqa: F401
from app.core.idempotency import IdempotencyRecord  # noqa: F401
from app.decisions.models import (  # noqa: F401
    Decision,
    DecisionFeedback,
    DecisionOffer,
    ItemAssociation,
    OfferCapCounter,
    OfferModel,
)
from app.dedup.models import DedupCandidate, DedupRun  # noqa: F401
from app.identity.models import Identity, IdentityChange, IdentityConflict, ProfileMerge, ProfileMergeEvent  # noqa: F401
from app.ingest.models import Event  # noqa: F401
from app.jobs.models import Job  # noqa: F401
from app.groups.models import Account, AccountMember  # noqa: F401
from app.offers.models import Offer, Placement  # noqa: F401
from app.profiles.models import Profile  # noqa: F401
from app.segments.models import Segment, SegmentChange, SegmentMember, SegmentRefresh, SegmentVersion  # noqa: F401
from app.traits.models import ClvModel, ComputedTrait, ComputedTraitDirty, ComputedTraitValue  # noqa: F401
from app.workspaces.models import ApiKey, Workspace  # noqa: F401
from app.privacy.models import PrivacyExport, PrivacyRequest, Suppression  # noqa: F401
