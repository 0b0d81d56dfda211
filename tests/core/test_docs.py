"""/docs and /redoc load everything from this server: they work offline."""

from __future__ import annotations

import re

import httpx


async def test_docs_pages_reference_only_local_assets(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        resp = await client.get(page)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
        assert "https://" not in resp.text and "http://" not in resp.text, f"{page} loads from elsewhere"
        assets = re.findall(r"""(?:src|href)=["'](/docs-assets/[^"']+)""", resp.text)
        assert assets, page
        for asset in assets:
            served = await client.get(asset)
            assert served.status_code == 200 and len(served.content) > 1000, asset
    assert "openapi.json" in (await client.get("/docs")).text
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200
