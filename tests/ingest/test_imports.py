"""Bulk imports (POST /v1/imports/{profiles,events} and `clientele import`): formats, streaming,
row rejections, idempotent re-runs, auth, isolation, and the CDNOW order history end to end."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import BadRequest, PayloadTooLarge
from app.ingest.imports import ImportFormat, ImportKind, RowError, RowReader
from tests.conftest import WorkspaceKeys
from tests.test_cli import run_cli
from tests.datasets import dataset

PROBLEM = "application/problem+json"
CSV = {"Content-Type": "text/csv"}
NDJSON = {"Content-Type": "application/x-ndjson"}
CDNOW = dataset("cdnow_sample.txt")


async def post(client: httpx.AsyncClient, ws: WorkspaceKeys, kind: str, body, headers: dict[str, str]) -> httpx.Response:
    return await client.post(f"/v1/imports/{kind}", content=body, headers={**ws.admin_headers, **headers})


async def all_events(client: httpx.AsyncClient, ws: WorkspaceKeys, **params) -> list[dict]:
    out, cursor = [], None
    while True:
        page = await client.get("/v1/events", params={"limit": 1000, **params, **({"cursor": cursor} if cursor else {})},
                                headers=ws.admin_headers)
        assert page.status_code == 200, page.text
        out += page.json()["data"]
        if not (cursor := page.json()["next_cursor"]):
            return out


async def profile_of(client: httpx.AsyncClient, ws: WorkspaceKeys, user_id: str) -> dict:
    event = next(e for e in await all_events(client, ws) if e["user_id"] == user_id)
    resp = await client.get(f"/v1/profiles/{event['profile_id']}", headers=ws.admin_headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def read_all(kind: ImportKind, fmt: ImportFormat, data: bytes, step: int, *, gz: bool = False) -> list:
    reader = RowReader(kind, fmt, gzip=gz, max_bytes=10**9)
    items = []
    for i in range(0, len(data), step):
        items += reader.feed(data[i:i + step])
    return items + list(reader.finish())


# --- the streaming reader, without a database ---------------------------------------------------

TRICKY_CSV = (
    '\ufeffUser ID,Event,note,Revenue,products,Order ID\r\n'
    'u1,Order Completed,"two\r\nlines, a comma and ""quotes""",12.50,"[{""sku"": ""A-1""}]",o-1\r\n'
    '\r\n'
    'u2,Viewed,plain,,,\r\n'
    'u3,Order Completed,x,abc,,\r\n'
    'u4,Order Completed,x,1,,,extra\r\n'
    'u5,Order Completed,"never closed\n'
).encode()


def test_csv_rows_do_not_depend_on_how_the_body_is_chunked() -> None:
    whole = read_all(ImportKind.events, ImportFormat.csv, TRICKY_CSV, len(TRICKY_CSV))
    assert whole[0][0] == 1
    assert whole[0][1]["properties"] == {
        "note": 'two\r\nlines, a comma and "quotes"', "revenue": 12.5, "products": [{"sku": "A-1"}], "order_id": "o-1",
    }
    assert whole[1][1] == {"type": "track", "userId": "u2", "event": "Viewed", "properties": {"note": "plain"},
                           "messageId": whole[1][1]["messageId"]}
    errors = [(e.row, e.code) for e in whole if isinstance(e, RowError)]
    assert errors == [(3, "bad_number"), (4, "malformed_csv"), (5, "malformed_csv")]
    for step in (1, 2, 3, 7, 64):
        assert read_all(ImportKind.events, ImportFormat.csv, TRICKY_CSV, step) == whole, step
        zipped = gzip.compress(TRICKY_CSV[:50]) + gzip.compress(TRICKY_CSV[50:])  # two gzip members
        assert read_all(ImportKind.events, ImportFormat.csv, zipped, step, gz=True) == whole, step


def test_message_ids_are_deterministic_and_keep_repeated_rows_apart() -> None:
    body = b"user_id,event,revenue\nu1,Order Completed,10\nu1,Order Completed,10\nu2,Order Completed,5\n"
    first = read_all(ImportKind.events, ImportFormat.csv, body, 5)
    again = read_all(ImportKind.events, ImportFormat.csv, body, 100)
    ids = [m["messageId"] for _, m in first]
    assert ids == [m["messageId"] for _, m in again]
    assert len(set(ids)) == 3 and all(i.startswith("imp-") for i in ids)
    given = read_all(ImportKind.events, ImportFormat.csv, b"user_id,event,message_id\nu1,A,m-1\n", 100)
    assert given[0][1]["messageId"] == "m-1"
    as_profiles = read_all(ImportKind.profiles, ImportFormat.csv, b"user_id,event\nu1,A\n", 100)
    assert as_profiles[0][1]["messageId"] != read_all(ImportKind.events, ImportFormat.csv, b"user_id,event\nu1,A\n", 100)[0][1]["messageId"]


def test_ndjson_segment_and_flat_lines() -> None:
    body = b"\n".join([
        b'{"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "m1"}',
        b'{"user_id": "u2", "Email Address": "b@example.com", "type": "vip", "age": 41}',
        b"",
        b"{broken",
        b"[1, 2]",
        b'{"type": "track", "userId": "u3", "event": "A"}',
    ])
    items = read_all(ImportKind.profiles, ImportFormat.ndjson, body, 3)
    assert items[0] == (1, {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "m1"})
    assert items[1][0] == 2
    assert items[1][1]["traits"] == {"email": "b@example.com", "type": "vip", "age": 41}  # JSON types are kept
    assert [(e.row, e.code) for e in items[2:]] == [(4, "malformed_json"), (5, "not_an_object"), (6, "wrong_type")]


@pytest.mark.parametrize(
    "body,fragment",
    [
        (b"", "empty"),
        (b"\n\n", "empty"),
        (b"user_id,,plan\nu1,x,y\n", "column 2 has no name"),
        (b"user_id,userId\nu1,u1\n", "same column"),
        (b"plan,city\npro,Oslo\n", "anonymous_id or email or phone or user_id"),
        (b'user_id,"plan\nu1,pro\n', "never closed"),
    ],
)
def test_fatal_csv_problems(body: bytes, fragment: str) -> None:
    with pytest.raises(BadRequest) as exc:
        read_all(ImportKind.profiles, ImportFormat.csv, body, 4)
    assert fragment in exc.value.detail


def test_events_header_needs_an_event_column_and_limits_hold() -> None:
    with pytest.raises(BadRequest, match="event column"):
        read_all(ImportKind.events, ImportFormat.csv, b"user_id,revenue\nu1,3\n", 100)
    with pytest.raises(BadRequest, match="longer than"):
        read_all(ImportKind.events, ImportFormat.ndjson, b"x" * (1024 * 1024 + 10), 65536)
    with pytest.raises(BadRequest, match="truncated"):
        read_all(ImportKind.events, ImportFormat.ndjson, gzip.compress(b'{"a": 1}\n' * 100)[:-12], 100, gz=True)
    bomb = gzip.compress(b"\n" * 5_000_000)
    reader = RowReader(ImportKind.events, ImportFormat.ndjson, gzip=True, max_bytes=1_000_000)
    with pytest.raises(PayloadTooLarge):
        list(reader.feed(bomb))


# --- the API -------------------------------------------------------------------------------------

async def test_csv_profile_import_creates_profiles(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    body = (
        "user_id,email,phone,First Name,zip,timestamp\n"
        "u1,Jane@Example.com,+1 415 555 0100,Jane,02134,2024-05-01T10:00:00Z\n"
        "u2,joe@example.com,,Joe,,\n"
    )
    resp = await post(client, workspace, "profiles", body, CSV)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"accepted": 2, "duplicates": 0, "suppressed": 0, "rejected_count": 0, "rejected": [], "rejected_truncated": False}
    jane = await profile_of(client, workspace, "u1")
    # Cells stay strings (zip codes keep their leading zero); email and phone are traits too.
    assert jane["traits"] == {"email": "Jane@Example.com", "phone": "+1 415 555 0100", "First Name": "Jane", "zip": "02134"}
    ids = {i["type"]: i["value"] for i in jane["identifiers"]}
    assert ids["user_id"] == "u1" and ids["email"] == "jane@example.com" and "phone" in ids
    joe = await profile_of(client, workspace, "u2")
    assert joe["traits"] == {"email": "joe@example.com", "First Name": "Joe"}  # empty cells are skipped
    identify = await all_events(client, workspace, type="identify")
    assert {e["original_timestamp"] for e in identify} >= {"2024-05-01T10:00:00Z"}


async def test_ndjson_profile_import(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    lines = [
        {"type": "identify", "userId": "u1", "traits": {"email": "a@example.com", "vip": True}, "messageId": "p-1"},
        {"user_id": "u2", "email": "b@example.com", "orders": 3},
    ]
    body = b"\n".join(orjson.dumps(line) for line in lines) + b"\n"
    resp = await post(client, workspace, "profiles", body, {"Content-Type": "application/jsonl"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == 2
    assert (await profile_of(client, workspace, "u1"))["traits"] == {"email": "a@example.com", "vip": True}
    assert (await profile_of(client, workspace, "u2"))["traits"] == {"email": "b@example.com", "orders": 3}
    assert {e["message_id"] for e in await all_events(client, workspace)} >= {"p-1"}


async def test_bad_rows_are_rejected_with_row_numbers(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    body = (
        "user_id,anonymous_id,event,revenue,products\n"
        "u1,,Order Completed,10,\n"          # row 1: ok
        ",,Order Completed,5,\n"             # row 2: nobody
        "u3,,,5,\n"                          # row 3: no event
        "u4,,Order Completed,ten,\n"         # row 4: bad number
        "u5,,Order Completed,1,not json\n"   # row 5: bad products
        ",anon-6,Page Viewed,,\n"            # row 6: ok (anonymous)
    )
    resp = await post(client, workspace, "events", body, CSV)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert (out["accepted"], out["duplicates"], out["rejected_count"]) == (2, 0, 4)
    assert [(r["row"], r["code"]) for r in out["rejected"]] == [
        (2, "missing_identity"), (3, "missing_event"), (4, "bad_number"), (5, "bad_products"),
    ]
    assert all(r["reason"] and r["messageId"].startswith("imp-") for r in out["rejected"])
    stored = await all_events(client, workspace)
    assert sorted(e["user_id"] or e["anonymous_id"] for e in stored) == ["anon-6", "u1"]
    assert next(e for e in stored if e["user_id"] == "u1")["properties"] == {"revenue": 10}

    ndjson = b'{"user_id": "u7", "event": "A"}\n\n{oops\n{"user_id": "u8"}\n'
    out = (await post(client, workspace, "events", ndjson, NDJSON)).json()
    assert out["accepted"] == 1
    assert [(r["row"], r["code"]) for r in out["rejected"]] == [(3, "malformed_json"), (4, "missing_event")]


async def test_rejection_list_is_capped(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    body = "user_id,event,revenue\n" + "u1,A,x\n" * 1500 + "u1,A,1\n"
    out = (await post(client, workspace, "events", body, CSV)).json()
    assert (out["accepted"], out["rejected_count"], len(out["rejected"]), out["rejected_truncated"]) == (1, 1500, 1000, True)
    assert [r["row"] for r in out["rejected"]] == list(range(1, 1001))


async def test_reimporting_the_same_file_gives_only_duplicates(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    body = "user_id,event,timestamp,revenue\n" + "".join(f"u{i % 3},Order Completed,2024-01-0{i % 9 + 1},{i}.5\n" for i in range(20))
    body += "u1,Order Completed,2024-01-01,1.5\n" * 2  # two genuinely identical orders stay two orders
    first = (await post(client, workspace, "events", body, CSV)).json()
    assert (first["accepted"], first["duplicates"]) == (22, 0)
    again = (await post(client, workspace, "events", gzip.compress(body.encode()), {**CSV, "Content-Encoding": "gzip"})).json()
    assert (again["accepted"], again["duplicates"], again["rejected_count"]) == (0, 22, 0)
    assert len(await all_events(client, workspace)) == 22


async def test_gzip_and_streamed_bodies(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    body = 'user_id,event,note\nu1,Zipped,"a\nquoted newline"\n'.encode()
    resp = await post(client, workspace, "events", gzip.compress(body), {**CSV, "Content-Encoding": "gzip"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == 1
    stored = (await all_events(client, workspace))[0]
    assert stored["event"] == "Zipped" and stored["properties"] == {"note": "a\nquoted newline"}

    rows = b"".join(b'{"userId": "s%d", "event": "Streamed"}\n' % i for i in range(50))

    async def trickle() -> AsyncIterator[bytes]:
        for i in range(0, len(rows), 7):  # chunk boundaries fall inside lines
            yield rows[i:i + 7]

    resp = await post(client, workspace, "events", trickle(), NDJSON)
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == 50

    bad = await post(client, workspace, "events", b"not gzip", {**CSV, "Content-Encoding": "gzip"})
    assert bad.status_code == 400 and bad.json()["code"] == "bad_encoding"


async def test_error_midway_reports_what_was_committed(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    rows = b"".join(b'{"userId": "u%d", "event": "A"}\n' % i for i in range(2500))
    truncated = gzip.compress(rows)[:-20]
    resp = await post(client, workspace, "events", truncated, {**NDJSON, "Content-Encoding": "gzip"})
    assert resp.status_code == 400
    problem = resp.json()
    assert problem["code"] == "bad_encoding" and "truncated" in problem["detail"]
    assert (problem["accepted"], problem["committed_through_row"]) == (2000, 2000)
    # The chunks before the error are committed; re-running the complete file finishes the job.
    resp = await post(client, workspace, "events", gzip.compress(rows), {**NDJSON, "Content-Encoding": "gzip"})
    assert (resp.json()["accepted"], resp.json()["duplicates"]) == (500, 2000)


@pytest.mark.parametrize(
    "headers,status,code",
    [
        ({"Content-Type": "application/json"}, 415, "unsupported_media_type"),
        ({}, 415, "unsupported_media_type"),
        ({"Content-Type": "text/csv; charset=latin-1"}, 415, "unsupported_media_type"),
        ({"Content-Type": "text/csv", "Content-Encoding": "br"}, 415, "unsupported_media_type"),
    ],
)
async def test_unsupported_bodies(client: httpx.AsyncClient, workspace: WorkspaceKeys, headers, status: int, code: str) -> None:
    resp = await post(client, workspace, "profiles", b"user_id\nu1\n", headers)
    assert resp.status_code == status
    assert resp.headers["content-type"] == PROBLEM and resp.json()["code"] == code


async def test_empty_body_and_bad_header_are_400(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    empty = await post(client, workspace, "profiles", b"", CSV)
    assert empty.status_code == 400 and empty.json()["code"] == "empty_body"
    assert (await post(client, workspace, "events", b"", NDJSON)).status_code == 400
    header = await post(client, workspace, "events", b"user_id,revenue\nu1,5\n", CSV)
    assert header.status_code == 400 and header.json()["code"] == "bad_header"
    assert "event column" in header.json()["detail"]
    assert await all_events(client, workspace) == []


async def test_auth(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    body = b"user_id\nu1\n"
    assert (await client.post("/v1/imports/profiles", content=body, headers=CSV)).status_code == 401
    as_bearer = await client.post("/v1/imports/profiles", content=body,
                                  headers={**CSV, "Authorization": f"Bearer {workspace.write_key}"})
    assert as_bearer.status_code == 403
    as_basic = await client.post("/v1/imports/profiles", content=body, headers=CSV, auth=workspace.write_auth)
    assert as_basic.status_code == 401
    created = await client.post("/v1/keys", json={"name": "analyst", "kind": "secret", "scopes": ["read"]},
                                headers=workspace.admin_headers)
    read_only = {"Authorization": f"Bearer {created.json()['key']}"}
    denied = await client.post("/v1/imports/events", content=b"user_id,event\nu1,A\n", headers={**CSV, **read_only})
    assert denied.status_code == 403 and "write" in denied.json()["detail"]
    writer = await client.post("/v1/keys", json={"name": "loader", "kind": "secret", "scopes": ["write"]},
                               headers=workspace.admin_headers)
    ok = await client.post("/v1/imports/profiles", content=body,
                           headers={**CSV, "Authorization": f"Bearer {writer.json()['key']}"})
    assert ok.status_code == 200, ok.text
    assert await all_events(client, workspace) != []


async def test_workspace_isolation(client: httpx.AsyncClient, workspace: WorkspaceKeys, other_workspace: WorkspaceKeys) -> None:
    body = b"user_id,email\nu1,a@example.com\n"
    assert (await post(client, workspace, "profiles", body, CSV)).json()["accepted"] == 1
    assert await all_events(client, other_workspace) == []
    mine = await all_events(client, workspace)
    cross = await client.get(f"/v1/profiles/{mine[0]['profile_id']}", headers=other_workspace.admin_headers)
    assert cross.status_code == 404
    # The same file in the other workspace is new data there, not a duplicate.
    assert (await post(client, other_workspace, "profiles", body, CSV)).json()["accepted"] == 1


async def test_cdnow_order_history(client: httpx.AsyncClient, workspace: WorkspaceKeys, session: AsyncSession) -> None:
    if not CDNOW.exists():
        pytest.skip(f"the CDNOW sample is not at {CDNOW}")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["user_id", "event", "timestamp", "revenue", "quantity", "customer_id"])
    total, rows = Decimal(0), 0
    for line in CDNOW.read_text().splitlines():
        customer, sample_id, day, cds, dollars = line.split()
        writer.writerow([sample_id, "Order Completed", f"{day[:4]}-{day[4:6]}-{day[6:]}", dollars, cds, customer])
        total += Decimal(dollars)
        rows += 1
    assert rows == 6919
    resp = await post(client, workspace, "events", out.getvalue().encode(), CSV)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"accepted": 6919, "duplicates": 0, "suppressed": 0, "rejected_count": 0, "rejected": [], "rejected_truncated": False}
    stats = (await session.execute(sa.text(
        "SELECT count(*) AS n, count(DISTINCT profile_id) AS people, sum((properties->>'revenue')::numeric) AS revenue, "
        "min(timestamp) AS first, bool_and(jsonb_typeof(properties->'quantity') = 'number') AS numeric_qty "
        "FROM event WHERE workspace_id = :ws"), {"ws": workspace.workspace_id})).one()
    assert (stats.n, stats.people, stats.revenue, stats.numeric_qty) == (6919, 2357, total, True)
    assert stats.first.isoformat().startswith("1997-01-01")
    profiles = (await session.execute(sa.text(
        "SELECT count(*) FROM profile WHERE workspace_id = :ws AND merged_into IS NULL"), {"ws": workspace.workspace_id})).scalar()
    assert profiles == 2357


# --- the CLI -------------------------------------------------------------------------------------

def test_cli_import(database_url: str, live_server, tmp_path: Path) -> None:
    ws = json.loads(run_cli(database_url, "workspace", "create", "importer", "--json").stdout)
    people = tmp_path / "people.csv"
    people.write_text("user_id,email,plan\nc1,c1@example.com,pro\nc2,c2@example.com,free\n,test@test.com,free\n")
    result = run_cli(database_url, "import", "profiles", str(people), "-w", ws["workspace_id"], "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["accepted"], out["duplicates"], out["rejected_count"]) == (2, 0, 1)
    assert out["rejected"][0]["row"] == 3 and out["rejected"][0]["code"] == "missing_identity"

    again = run_cli(database_url, "import", "profiles", str(people), "-w", ws["workspace_id"])
    assert again.returncode == 0, again.stderr
    assert "accepted 0, duplicates 2, rejected 1" in again.stdout and "missing_identity" in again.stdout

    orders = tmp_path / "orders.jsonl.gz"
    orders.write_bytes(gzip.compress(b'{"user_id": "c1", "event": "Order Completed", "revenue": "19.90"}\n'))
    result = run_cli(database_url, "import", "events", str(orders), "-w", ws["workspace_id"], "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accepted"] == 1

    headers = {"Authorization": f"Bearer {ws['secret_key']}"}
    stored = httpx.get(f"{live_server.base_url}/v1/events", headers=headers).json()["data"]
    assert len(stored) == 3
    order = next(e for e in stored if e["type"] == "track")
    assert order["properties"] == {"revenue": 19.9}
    profile = httpx.get(f"{live_server.base_url}/v1/profiles/{order['profile_id']}", headers=headers).json()
    assert profile["traits"] == {"email": "c1@example.com", "plan": "pro"}

    unknown = run_cli(database_url, "import", "events", str(orders), "-w", "00000000-0000-0000-0000-000000000000")
    assert unknown.returncode == 1 and "No workspace" in unknown.stderr


async def test_profiles_known_only_by_email_or_phone_import(client, workspace) -> None:
    """CRM exports often carry no user id: the email (or phone) is the identifier."""
    csv_body = "email,phone,first_name\nJane@Example.com,,Jane\n,+1 415 555 2671,Phone Only\nnot-an-email,,Nobody\n"
    resp = await client.post("/v1/imports/profiles", content=csv_body.encode(),
                             headers={**workspace.admin_headers, "content-type": "text/csv"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["accepted"] == 2
    assert [(r["row"], r["code"]) for r in body["rejected"]] == [(3, "missing_identity")]
    found = await client.get("/v1/profiles/lookup", params={"type": "email", "value": "jane@example.com"},
                             headers=workspace.admin_headers)
    assert found.status_code == 200 and found.json()["traits"]["first_name"] == "Jane"
    by_phone = await client.get("/v1/profiles/lookup", params={"type": "phone", "value": "+14155552671"},
                                headers=workspace.admin_headers)
    assert by_phone.status_code == 200


# --- multipart uploads (browsers' forms, generated clients) ----------------------------------------

async def test_multipart_uploads_import_like_plain_bodies(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    profiles = "user_id,email,plan\nu1,jane@example.com,pro\nu2,joe@example.com,free\n"
    resp = await client.post("/v1/imports/profiles", headers=workspace.admin_headers,
                             files={"file": ("customers.csv", profiles.encode(), "text/csv")})
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == 2
    # The same file again: duplicates, as with a plain body.
    again = await client.post("/v1/imports/profiles", headers=workspace.admin_headers,
                              files={"file": ("customers.csv", profiles.encode(), "text/csv")})
    assert again.json()["accepted"] == 0 and again.json()["duplicates"] == 2

    orders = gzip.compress(b'{"user_id": "u1", "event": "Order Completed", "revenue": "12.50", "order_id": "o1"}\n')
    events = await client.post("/v1/imports/events", headers=workspace.admin_headers,
                               files={"file": ("orders.ndjson.gz", orders, "application/octet-stream")})
    assert events.status_code == 200, events.text
    assert events.json()["accepted"] == 1
    (stored,) = [e for e in await all_events(client, workspace) if e["event"] == "Order Completed"]
    assert stored["properties"]["revenue"] == 12.5
    # The format can be named when neither the type nor the name says it.
    named = await client.post("/v1/imports/events", headers=workspace.admin_headers, data={"format": "csv"},
                              files={"file": ("export", b"user_id,event\nu2,Signed Up\n", "application/octet-stream")})
    assert named.status_code == 200 and named.json()["accepted"] == 1, named.text


@pytest.mark.parametrize("files,data,status,code", [
    ({"other": ("a.csv", b"user_id\nu1\n", "text/csv")}, None, 400, "missing_file"),
    ({"file": ("a.bin", b"user_id\nu1\n", "application/octet-stream")}, None, 415, "unsupported_media_type"),
    ({"file": ("a.csv", b"user_id\nu1\n", "text/csv")}, {"format": "xml"}, 400, "bad_format"),
    ({"file": ("a.csv", b"", "text/csv")}, None, 400, "empty_body"),
])
async def test_bad_uploads(client: httpx.AsyncClient, workspace: WorkspaceKeys, files, data, status: int, code: str) -> None:
    resp = await client.post("/v1/imports/profiles", headers=workspace.admin_headers, files=files, data=data)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM and resp.json()["code"] == code


async def test_a_broken_multipart_body_is_400(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    resp = await client.post("/v1/imports/profiles", content=b"--x\r\nContent-Disposition: form-data; name=\"file\"\r\n",
                             headers={**workspace.admin_headers, "Content-Type": "multipart/form-data; boundary=x"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] in ("bad_multipart", "missing_file")
