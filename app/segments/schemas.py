"""API shapes of segments."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RULE_DESCRIPTION = """A condition tree (docs/SEGMENTS.md). Each node is an object with exactly one of:
`and` / `or` (arrays of nodes), `not` (a node),
`trait` (profile trait) or `computed` (computed trait) with `op` and `value`,
`identifier` (an identifier type) with `op` (exists, missing, eq, ne, in, nin, contains, starts_with),
`event` (name) with optional `where` (property conditions), `count` {op, value} or
`aggregate` {fn: count|sum|avg|min|max, property, op, value}, and `within_days` or `between` [from, to],
`segment` (another segment's id), `bucket` {salt, lt, gte} (stable 0-99 per profile).
Ops: eq ne in nin contains starts_with exists missing gt gte lt lte between within_last_days
more_than_days_ago anniversary_within_days. Numbers compare as numbers and dates as dates whatever
JSON type the trait holds; a value that does not convert makes the condition false.
Limits: 12 levels, 500 nodes (with referenced segments), 1000 values per list, 1000 characters per string."""

RULE_EXAMPLES: list[dict[str, Any]] = [
    {"and": [
        {"trait": "plan", "op": "eq", "value": "pro"},
        {"computed": "order_count", "op": "gte", "value": 3},
        {"event": "Order Completed", "where": [{"property": "revenue", "op": "gt", "value": 50}],
         "count": {"op": "gte", "value": 2}, "within_days": 90},
        {"not": {"identifier": "email", "op": "missing"}},
    ]},
    {"event": "Order Completed", "aggregate": {"fn": "sum", "property": "revenue", "op": "gte", "value": 100},
     "within_days": 365},
    {"and": [{"trait": "birthday", "op": "anniversary_within_days", "value": 7}, {"bucket": {"salt": "holdout-2026", "lt": 90}}]},
]

Rule = dict[str, Any]


class SegmentCreate(BaseModel):
    """A segment: a named rule."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "Loyal buyers", "description": "Two orders over 50 in 90 days",
         "rule": RULE_EXAMPLES[0]["and"][2]},
    ]})

    name: str = Field(min_length=1, max_length=200, description="Unique in the workspace.")
    description: str | None = Field(default=None, max_length=2000)
    rule: Rule = Field(description=RULE_DESCRIPTION, examples=RULE_EXAMPLES)


class SegmentUpdate(BaseModel):
    """Changes to a segment; a new rule makes a new version (the old ones stay readable)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    rule: Rule | None = Field(default=None, description=RULE_DESCRIPTION)


class SegmentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str | None
    kind: Literal["rule", "fixed"] = Field(
        description="rule: members are the profiles matching `rule`. fixed: a list of members saved once "
                    "(a discovered cluster); `rule` is null and refreshes only drop merged-away profiles.")
    rule: Rule | None
    version: int = Field(description="Grows by one with every rule change.")
    source: dict[str, Any] | None = Field(default=None, description="For fixed segments: where the members came from.")
    member_count: int = Field(description="Members at the last refresh.")
    refreshed_at: datetime | None = Field(description="When the last refresh started (null: never refreshed).")
    refreshed_version: int | None
    created_at: datetime
    updated_at: datetime


class SegmentVersionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    rule: Rule | None
    created_at: datetime


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"rule": {"computed": "order_count", "op": "gte", "value": 3}, "sample": 5}]})

    rule: Rule = Field(description=RULE_DESCRIPTION)
    sample: int = Field(default=10, ge=0, le=100, description="How many matching profiles to return.")


class ProfileSample(BaseModel):
    id: uuid.UUID
    traits: dict[str, Any]


class PreviewResult(BaseModel):
    count: int = Field(description="Profiles matching the rule now.")
    sample: list[ProfileSample]


class MemberItem(BaseModel):
    profile_id: uuid.UUID
    entered_at: datetime
    values: dict[str, Any] = Field(description="The requested `fields`, by name (default: `traits`).")


class MemberPage(BaseModel):
    data: list[MemberItem]
    next_cursor: str | None = Field(default=None, description="Absent on the last page.")


class ChangeItem(BaseModel):
    profile_id: uuid.UUID
    change: Literal["entered", "exited"]
    at: datetime = Field(description="When the refresh that saw the change started.")
    version: int = Field(description="The segment version the refresh evaluated.")


class ChangePage(BaseModel):
    """Changes in order. Keep `next_cursor` and pass it back: every change is delivered once."""

    data: list[ChangeItem]
    next_cursor: str = Field(description="Always present: resume from here (also when `data` is empty).")
    has_more: bool


class MembershipAt(BaseModel):
    segment_id: uuid.UUID
    profile_id: uuid.UUID
    at: datetime
    member: bool
    since: datetime | None = Field(description="When the change that decided it happened.")
    version: int | None


class HistoryItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    refreshed_at: datetime
    version: int
    mode: str
    member_count: int
    entered: int
    exited: int
    profiles_checked: int | None


class HistoryPage(BaseModel):
    data: list[HistoryItem]
    next_cursor: str | None = None


class ProfileSegment(BaseModel):
    segment_id: uuid.UUID
    name: str
    version: int = Field(description="The version whose refresh let the person in.")
    entered_at: datetime


class ExplainNode(BaseModel):
    pointer: str = Field(description="JSON pointer of the node in the rule.")
    kind: str
    result: bool
    needed: str = Field(description="What the node asks for.")
    seen: dict[str, Any] = Field(description="The values the node looked at for this person.")
    children: list[ExplainNode] = []


class Explanation(BaseModel):
    segment_id: uuid.UUID
    version: int
    profile_id: uuid.UUID
    matches_now: bool = Field(description="Whether the rule matches now.")
    member: bool = Field(description="Whether the person is a member as of the last refresh.")
    tree: ExplainNode


class RefreshResult(BaseModel):
    segment_id: uuid.UUID
    version: int
    mode: Literal["full", "incremental"]
    entered: int
    exited: int
    member_count: int
    profiles_checked: int | None = None
    refreshed_at: datetime


class SegmentRefreshJob(BaseModel):
    """A queued refresh of one segment (follow it at `/v1/segments/jobs/{id}`)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: Literal["queued", "running", "done", "failed"]
    result: dict[str, Any] | None = Field(default=None, description="When done: the refresh's counts.")
    error: str | None = Field(default=None, description="When failed: why.")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


DISCOVERY_FEATURES = ("recency_days", "frequency", "monetary", "average_order_value", "tenure_days", "clv_365d",
                      "events_90d")
DiscoveryFeature = Literal["recency_days", "frequency", "monetary", "average_order_value", "tenure_days", "clv_365d",
                           "events_90d"]


class SaveCluster(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cluster: int = Field(ge=0, description="Index of the cluster to save (as in `clusters`).")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)


class DiscoverRequest(BaseModel):
    """k-means over the customers (profiles with `Order Completed` events)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"k": None, "features": ["recency_days", "frequency", "monetary"], "seed": 0},
        {"k": 4, "seed": 0, "save": {"cluster": 2, "name": "Lapsed one-time buyers"}},
    ]})

    k: int | None = Field(default=None, ge=2, le=12, description="Clusters; null: the k from 2 to 8 with the best silhouette.")
    features: list[DiscoveryFeature] = Field(
        default=["recency_days", "frequency", "monetary"], min_length=1, max_length=7,
        description="recency_days (since the last order), frequency (orders), monetary (total revenue), "
                    "average_order_value, tenure_days (since the first order), clv_365d (computed trait; 0 when "
                    "absent), events_90d (any events in the 90 days before as_of).",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Same data and seed: same clusters.")
    as_of: datetime | None = Field(default=None, description="Reference time for recency (default: the last order).")
    save: SaveCluster | None = Field(default=None, description="Save this cluster as a segment of fixed members.")


class ClusterPublic(BaseModel):
    index: int
    name: str = Field(description="Descriptive, from the centre against the median customer.")
    size: int
    share: float = Field(description="Fraction of the customers.")
    centre: dict[str, float] = Field(description="The centre in plain units (days, orders, currency).")


class DiscoverResult(BaseModel):
    customers: int
    k: int
    features: list[str]
    silhouette: float | None = Field(description="Mean silhouette of the chosen clustering (on a sample).")
    silhouette_by_k: dict[str, float] = Field(description="When k was chosen: the silhouette of each k tried.")
    as_of: datetime
    medians: dict[str, float] = Field(description="The median customer, in plain units.")
    clusters: list[ClusterPublic]
    saved_segment: SegmentPublic | None = None
