"""A small workspace with varied people, built over the API, and its ground truth in Python."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import WorkspaceKeys

NOW = datetime.now(UTC)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Person:
    user_id: str
    traits: dict[str, Any]
    email: str | None
    orders: list[tuple[datetime, Any]] = field(default_factory=list)  # (time, revenue as sent)
    pages: list[datetime] = field(default_factory=list)
    profile_id: str = ""


def people(n: int = 40, seed: int = 7) -> list[Person]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        traits: dict[str, Any] = {}
        plan = rng.choice(["pro", "free", "enterprise", None])
        if plan:
            traits["plan"] = plan
        age_kind = rng.choice(["number", "string", "garbage", "none"])
        age = rng.randint(18, 70)
        if age_kind == "number":
            traits["age"] = age
        elif age_kind == "string":
            traits["age"] = f" {age} "
        elif age_kind == "garbage":
            traits["age"] = "unknown"
        signup = NOW - timedelta(days=rng.randint(0, 900), hours=rng.randint(1, 23))
        signup_kind = rng.choice(["iso", "epoch", "date", "invalid"])
        if signup_kind == "iso":
            traits["signed_up_at"] = iso(signup)
        elif signup_kind == "epoch":
            traits["signed_up_at"] = int(signup.timestamp())
        elif signup_kind == "date":
            traits["signed_up_at"] = signup.date().isoformat()
        else:
            traits["signed_up_at"] = "2023-02-29"
        if i % 5 == 0:
            traits["birthday"] = "1992-02-29"
        else:
            b = (NOW + timedelta(days=rng.randint(-20, 40))).date()
            traits["birthday"] = f"{rng.randint(1950, 2000)}-{b.month:02d}-{min(b.day, 28):02d}"
        traits["tags"] = rng.sample(["vip", "newsletter", "beta", "churn-risk"], rng.randint(0, 2))
        traits["city"] = rng.choice(["Springfield", "Shelbyville", "Capital City", "O'Hare; DROP TABLE profile;--"])
        email = f"user{i}@example.com" if rng.random() < 0.7 else None
        person = Person(user_id=f"u{i}", traits=traits, email=email)
        for _ in range(rng.choice([0, 0, 1, 2, 3, 5])):
            at = NOW - timedelta(days=rng.uniform(1, 500))
            revenue = round(rng.uniform(5, 200), 2)
            person.orders.append((at, str(revenue) if rng.random() < 0.3 else revenue))
        for _ in range(rng.randint(0, 3)):
            person.pages.append(NOW - timedelta(days=rng.uniform(0, 60)))
        out.append(person)
    out[1].traits["age"], out[2].traits["age"] = 35, "35"  # the same number, sent as a number and as a string
    return out


async def load(client: httpx.AsyncClient, ws: WorkspaceKeys, persons: list[Person]) -> None:
    batch: list[dict[str, Any]] = []
    for p in persons:
        traits = dict(p.traits)
        if p.email:
            traits["email"] = p.email
        batch.append({"type": "identify", "userId": p.user_id, "traits": traits, "messageId": f"id-{p.user_id}",
                      "timestamp": iso(NOW - timedelta(days=1000))})
        for n, (at, revenue) in enumerate(p.orders):
            batch.append({"type": "track", "userId": p.user_id, "event": "Order Completed",
                          "messageId": f"o-{p.user_id}-{n}", "timestamp": iso(at),
                          "properties": {"revenue": revenue, "order_id": f"{p.user_id}-{n}"}})
        for n, at in enumerate(p.pages):
            batch.append({"type": "track", "userId": p.user_id, "event": "Page Viewed", "messageId": f"p-{p.user_id}-{n}",
                          "timestamp": iso(at), "properties": {"path": f"/pricing/{n}"}})
    resp = await client.post("/v1/batch", json={"batch": batch}, auth=ws.write_auth)
    assert resp.status_code == 200 and resp.json()["rejected"] == [], resp.text
    # identify traits also land on the profile (email included); keep the truth the same
    for p in persons:
        r = await client.get("/v1/profiles/lookup", params={"type": "user_id", "value": p.user_id}, headers=ws.admin_headers)
        assert r.status_code == 200, r.text
        p.profile_id = r.json()["id"]
        if p.email:
            p.traits = {**p.traits, "email": p.email}
    r = await client.post("/v1/computed-traits/refresh", params={"wait": "true"}, headers=ws.admin_headers)
    assert r.status_code == 200, r.text


async def matching(client: httpx.AsyncClient, ws: WorkspaceKeys, rule: Any) -> set[str]:
    resp = await client.post("/v1/segments/preview", json={"rule": rule, "sample": 100}, headers=ws.admin_headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    ids = {s["id"] for s in body["sample"]}
    assert body["count"] == len(ids), body
    return ids


async def create_segment(client: httpx.AsyncClient, ws: WorkspaceKeys, name: str, rule: Any) -> dict:
    resp = await client.post("/v1/segments", json={"name": name, "rule": rule}, headers=ws.admin_headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def refresh(client: httpx.AsyncClient, ws: WorkspaceKeys, segment_id: str, *, full: bool = False) -> dict:
    resp = await client.post(f"/v1/segments/{segment_id}/refresh", params={"wait": "true", "full": str(full).lower()},
                             headers=ws.admin_headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "done", resp.text
    return resp.json()["result"]
