"""The `consent` condition: a segment holds exactly the profiles the consent ledger allows (the
same answer as GET /v1/profiles/{id}/consents), fails closed, and names bad input by pointer."""

from __future__ import annotations

import httpx

from tests.conftest import WorkspaceKeys
from tests.consent.test_consent_api import consent, profile_id, state
from tests.segments.helpers import matching


async def test_segment_holds_exactly_the_profiles_the_ledger_allows(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    ann, bob, cat, dan = [await profile_id(client, workspace, u) for u in ("ann", "bob", "cat", "dan")]
    for pid, status in ((ann, "granted"), (bob, "denied"), (cat, "granted")):
        resp = await consent(client, workspace, pid, purpose="email_marketing", channel="email", status=status,
                             source="form")
        assert resp.status_code in (200, 201), resp.text
    resp = await consent(client, workspace, cat, purpose="email_marketing", channel="email", status="withdrawn",
                         source="support")
    assert resp.status_code in (200, 201), resp.text

    rule = {"consent": {"purpose": "email_marketing", "channel": "email"}}
    members = await matching(client, workspace, rule)
    assert members == {ann}  # bob denied, cat withdrew after granting, dan has no record (opt-in: denied)
    allowed = {pid for pid in (ann, bob, cat, dan)
               if (await state(client, workspace, pid))[("email_marketing", "email")]["allowed"]}
    assert members == allowed

    # A legitimate-interest purpose defaults to granted: everyone but no one who objected.
    await consent(client, workspace, bob, purpose="direct_mail", channel="direct_mail", status="denied", source="api")
    assert await matching(client, workspace, {"consent": {"purpose": "direct_mail"}}) == {ann, cat, dan}
    # Negation and combination work like any other condition.
    assert await matching(client, workspace, {"not": rule}) == {bob, cat, dan}


async def test_bad_consent_nodes_are_named_by_pointer(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    cases = [
        ({"and": [{"consent": {"purpose": "email_marketing", "channel": "fax"}}]}, "/rule/and/0/consent/channel"),
        ({"consent": {"channel": "email"}}, "/rule/consent/purpose"),
        ({"consent": "email"}, "/rule/consent"),
        ({"consent": {"purpose": "analytics"}}, "/rule/consent/channel"),
    ]
    for rule, pointer in cases:
        resp = await client.post("/v1/segments/preview", json={"rule": rule}, headers=workspace.admin_headers)
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert pointer in {e["pointer"] for e in resp.json()["errors"]}, resp.json()
