"""A test client that talks to a gateway as a browser or script would: Host header, cookies, CSRF."""

from __future__ import annotations

from typing import Any

import aiohttp
from yarl import URL


class GatewayClient:
    def __init__(self, base_url: str, slug: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.slug = slug
        self.http = session
        self.csrf = ""

    @classmethod
    async def open(cls, base_url: str, slug: str) -> GatewayClient:
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
        session = aiohttp.ClientSession(cookie_jar=jar)
        client = cls(base_url, slug, session)
        return client

    @property
    def host(self) -> str:
        port = URL(self.base_url).port
        return f"{self.slug}.localhost:{port}"

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Host": self.host}
        if self.csrf:
            h["X-CSRF-Token"] = self.csrf
        h.update(extra or {})
        return h

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        allow_redirects: bool = False,
    ) -> tuple[int, Any]:
        async with self.http.request(
            method,
            self.base_url + path,
            json=json,
            data=data,
            headers=self.headers(headers),
            allow_redirects=allow_redirects,
        ) as resp:
            ctype = resp.headers.get("Content-Type", "")
            if "application/json" in ctype:
                return resp.status, await resp.json()
            return resp.status, await resp.text()

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.request("POST", path, **kw)

    async def patch(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.request("PATCH", path, **kw)

    async def put(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.request("PUT", path, **kw)

    async def delete(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.request("DELETE", path, **kw)

    async def anonymous_csrf(self) -> str:
        status, body = await self.get("/auth/csrf")
        assert status == 200, body
        self.csrf = body["csrf_token"]
        return self.csrf

    async def login(self, email: str, password: str, surface: str = "portal") -> tuple[int, Any]:
        """Sign in through the JSON endpoint; afterwards CSRF is the session's token."""
        await self.anonymous_csrf()
        status, body = await self.post(
            "/auth/login", json={"email": email, "password": password, "surface": surface}
        )
        if status == 200 and isinstance(body, dict) and body.get("status") == "ok":
            await self.refresh_csrf()
        return status, body

    async def refresh_csrf(self) -> None:
        """The session's CSRF token (/auth/csrf answers for anyone, portal access or not)."""
        status, body = await self.get("/auth/csrf")
        if status == 200:
            self.csrf = body["csrf_token"]

    def cookie(self, name: str) -> str | None:
        for c in self.http.cookie_jar:
            if c.key == name:
                return c.value
        return None

    async def close(self) -> None:
        await self.http.close()
