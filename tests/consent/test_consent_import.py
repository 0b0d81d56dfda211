"""Consent imports (POST /v1/imports/consents): a CRM's opt-in list through the import path."""

from __future__ import annotations

import httpx
import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import WorkspaceKeys
from tests.consent.test_consent_api import state

CSV = {"Content-Type": "text/csv"}

OPT_INS = (
    "email,user_id,purpose,channel,status,occurred_at,method,notice,notice_version,proof_ip\n"
    "jane@example.com,,email_marketing,email,granted,2026-05-01T09:30:00Z,double_opt_in,pp,1,203.0.113.7\n"
    ",u-2,sms_marketing,sms,denied,2026-05-02T10:00:00Z,,,,\n"
    "bob@example.com,,nope,email,granted,2026-05-01T00:00:00Z,,,,\n"
    "carl@example.com,,email_marketing,fax,granted,2026-05-01T00:00:00Z,,,,\n"
    "dora@example.com,,email_marketing,email,maybe,2026-05-01T00:00:00Z,,,,\n"
    "emma@example.com,,email_marketing,email,granted,,,,,\n"
    "finn@example.com,,email_marketing,email,granted,2026-05-01T00:00:00Z,,pp,9,\n"
    "gus@example.com,,advertising,,withdrawn,2026-05-03T00:00:00Z,,,,\n"
)


async def lookup(client: httpx.AsyncClient, ws: WorkspaceKeys, type_: str, value: str) -> str:
    resp = await client.get("/v1/profiles/lookup", params={"type": type_, "value": value}, headers=ws.admin_headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["id"]


async def test_csv_consent_import(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, other_workspace: WorkspaceKeys, connection: AsyncConnection
) -> None:
    await client.post("/v1/consent/notices", json={"key": "pp", "title": "PP", "url": "https://e.com/1",
                                                   "published_at": "2026-01-01T00:00:00Z"}, headers=workspace.admin_headers)
    resp = await client.post("/v1/imports/consents", content=OPT_INS, headers={**workspace.admin_headers, **CSV})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["accepted"] == 3 and body["rejected_count"] == 5
    assert [(r["row"], r["code"]) for r in body["rejected"]] == [
        (3, "unknown_purpose"), (4, "bad_channel"), (5, "bad_status"), (6, "missing_occurred_at"), (7, "unknown_notice"),
    ]
    jane = await lookup(client, workspace, "email", "jane@example.com")
    item = (await state(client, workspace, jane))[("email_marketing", "email")]
    assert item["allowed"] is True
    record = item["record"]
    assert (record["source"], record["method"], record["notice_key"], record["notice_version"]) == (
        "import", "double_opt_in", "pp", 1)
    assert record["proof"]["ip"].startswith("hmac-sha256:")
    stored = (await connection.execute(sa.text("SELECT string_agg(proof::text, '') FROM consent_record"))).scalar_one()
    assert "203.0.113.7" not in stored
    u2 = await lookup(client, workspace, "user_id", "u-2")
    assert (await state(client, workspace, u2))[("sms_marketing", "sms")]["status"] == "denied"
    gus = await lookup(client, workspace, "email", "gus@example.com")
    gus_state = await state(client, workspace, gus)
    assert not gus_state[("advertising", "ads")]["allowed"] and not gus_state[("advertising", "web")]["allowed"]
    assert gus_state[("advertising", "ads")]["record"]["channel"] is None
    # The same file again: duplicates, no new records.
    again = (await client.post("/v1/imports/consents", content=OPT_INS, headers={**workspace.admin_headers, **CSV})).json()
    assert again["accepted"] == 0 and again["duplicates"] == 3
    # The same list exported again by the CRM (other row order, so other message ids): still no new records.
    lines = OPT_INS.splitlines()
    reordered = "\n".join([lines[0], lines[2], lines[1]]) + "\n"
    await client.post("/v1/imports/consents", content=reordered, headers={**workspace.admin_headers, **CSV})
    history = (await client.get(f"/v1/profiles/{jane}/consents/history", headers=workspace.admin_headers)).json()
    assert len(history["data"]) == 1
    # NDJSON, and nothing leaks into another workspace.
    nd = orjson.dumps({"phone": "+14155550100", "purpose": "sms_marketing", "channel": "sms", "status": "granted",
                       "occurred_at": "2026-06-01T00:00:00Z"}) + b"\n"
    assert (await client.post("/v1/imports/consents", content=nd, headers={**other_workspace.admin_headers,
                                                                           "Content-Type": "application/x-ndjson"})
            ).json()["accepted"] == 1
    mine = await client.get("/v1/profiles/lookup", params={"type": "phone", "value": "+14155550100"},
                            headers=workspace.admin_headers)
    assert mine.status_code == 404


async def test_consent_import_header_needs_who_purpose_and_status(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    for header in ("email,status,occurred_at\n", "purpose,status,occurred_at\n"):
        resp = await client.post("/v1/imports/consents", content=header + "x\n", headers={**workspace.admin_headers, **CSV})
        assert resp.status_code == 400 and resp.json()["code"] == "bad_header", resp.text
