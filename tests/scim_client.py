"""A SCIM client for tests: HTTP to a gateway on loopback for a workspace host name, with a
workspace's SCIM token (the host name need not resolve: connections go to 127.0.0.1)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx2
from multidict import CIMultiDict
from yarl import URL

MEDIA = "application/scim+json"


class LoopbackTransport(httpx2.HTTPTransport):
    """Connects to 127.0.0.1 whatever the URL's host; the Host header keeps the workspace."""

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.url = request.url.copy_with(host="127.0.0.1")
        return super().handle_request(request)


def sync_client(base: str, slug: str, token: str) -> httpx2.Client:
    """An httpx2 client on https://<slug>.localhost:<port>/scim/v2 (for scim2-tester)."""
    port = URL(base).port
    return httpx2.Client(
        base_url=f"http://{slug}.localhost:{port}/scim/v2",
        headers={"Authorization": f"Bearer {token}"},
        transport=LoopbackTransport(),
        timeout=30,
    )


@dataclass
class Scim:
    """Async SCIM calls through the gateway: (status, JSON body, headers)."""

    base: str
    slug: str
    token: str
    http: aiohttp.ClientSession

    @property
    def host(self) -> str:
        return f"{self.slug}.localhost:{URL(self.base).port}"

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any, CIMultiDict[str]]:
        hdrs = {"Host": self.host, "Content-Type": MEDIA}
        use = self.token if token is None else token
        if use:
            hdrs["Authorization"] = f"Bearer {use}"
        hdrs.update(headers or {})
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        async with self.http.request(
            method, f"{self.base}/scim/v2{path}", data=data, headers=hdrs
        ) as r:
            text = await r.text()
            parsed = None
            if text:
                try:
                    parsed = await r.json(content_type=None)
                except ValueError:
                    parsed = text
            return r.status, parsed, CIMultiDict(r.headers)

    async def get(self, path: str, **kw: Any) -> tuple[int, Any, CIMultiDict[str]]:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any, **kw: Any) -> tuple[int, Any, CIMultiDict[str]]:
        return await self.request("POST", path, body, **kw)

    async def put(self, path: str, body: Any, **kw: Any) -> tuple[int, Any, CIMultiDict[str]]:
        return await self.request("PUT", path, body, **kw)

    async def patch(self, path: str, body: Any, **kw: Any) -> tuple[int, Any, CIMultiDict[str]]:
        return await self.request("PATCH", path, body, **kw)

    async def delete(self, path: str, **kw: Any) -> tuple[int, Any, CIMultiDict[str]]:
        return await self.request("DELETE", path, **kw)


def patch_op(*operations: dict[str, Any]) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": list(operations),
    }


USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
FRONTDESK = "urn:frontdesk:params:scim:schemas:extension:frontdesk:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
