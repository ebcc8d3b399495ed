"""Fixtures and helpers of the auth integration tests (no tests here).

`make_world` starts the real directory and auth services on the stack's PostgreSQL and NATS,
creates a workspace through the directory and gives stubs and helpers. `run_oidc_provider` runs
panva's oidc-provider (tests/oidc) on 127.0.0.1 behind a small pass-through proxy whose token
responses a test may tamper with, to play an attacker between us and the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import aiohttp
import grpc
from aiohttp import web
from frontdesk.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    common_pb2,
    directory_pb2,
    directory_pb2_grpc,
    events_pb2,
)
from joserfc import jwt
from joserfc.jwk import RSAKey

from deploy.embedded import free_port
from services.auth.app import create_server
from services.auth.settings import Settings
from tests.requirements import missing
from tests.signing import channel
from tests.stack import Stack

OIDC_DIR = Path(__file__).resolve().parents[1] / "oidc"
PASSWORD = "violet-umbrella-42-tango"


@dataclass
class AuthWorld:
    stack: Stack
    auth: auth_pb2_grpc.AuthServiceStub
    directory: directory_pb2_grpc.DirectoryServiceStub
    ws: str
    admin_id: str
    admin_email: str
    slug: str = ""
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def system(self) -> common_pb2.Caller:
        return common_pb2.Caller(workspace_id=self.ws)

    def caller(self, person_id: str, *permissions: str) -> common_pb2.Caller:
        return common_pb2.Caller(
            workspace_id=self.ws, person_id=person_id, permissions=list(permissions)
        )

    async def add_person(
        self,
        email: str,
        *,
        portal_access: bool = True,
        password: str | None = PASSWORD,
        name: str = "",
    ) -> str:
        person = await self.directory.CreatePerson(
            directory_pb2.CreatePersonRequest(
                caller=self.system(),
                email=email,
                name=name or email.split("@")[0].title(),
                portal_access=portal_access,
            )
        )
        if password is not None:
            await self.auth.SetPassword(
                auth_pb2.SetPasswordRequest(
                    caller=self.system(), person_id=person.id, password=password
                )
            )
        return str(person.id)

    async def login(
        self,
        email: str,
        password: str = PASSWORD,
        surface: str = "portal",
        client_ip: str = "203.0.113.7",
        stub: auth_pb2_grpc.AuthServiceStub | None = None,
    ) -> auth_pb2.LoginResponse:
        return await (stub or self.auth).Login(
            auth_pb2.LoginRequest(
                workspace_id=self.ws,
                email=email,
                password=password,
                surface=surface,
                client_ip=client_ip,
                user_agent="pytest",
            )
        )

    async def resolve(self, token: str) -> auth_pb2.SessionInfo:
        return await self.auth.ResolveSession(
            auth_pb2.ResolveSessionRequest(workspace_id=self.ws, token=token, touch=True)
        )

    async def replica(self, **env: str) -> auth_pb2_grpc.AuthServiceStub:
        """A second auth replica on the same database and NATS."""
        settings = Settings.from_env(self.stack.env_of("auth", **{**AUTH_TEST_ENV, **env}))
        running = await create_server(settings)
        self.stack.on_close(running.stop)
        ch = channel(f"127.0.0.1:{running.port}")
        self.channels.append(ch)
        return auth_pb2_grpc.AuthServiceStub(ch)


AUTH_TEST_ENV = {
    "FRONTDESK_SSO_ALLOW_INSECURE_HTTP": "1",
    # The test identity provider runs on 127.0.0.1: allow private networks for the issuer.
    "FRONTDESK_SSO_ALLOW_PRIVATE_NETWORKS": "1",
    # A fixed test key, so TOTP and SSO client secrets are sealed as in production.
    "FRONTDESK_AUTH_SECRET_KEY": "dGVzdC1rZXktZm9yLWZyb250ZGVzay1hdXRoLXRlc3Q=",
}


async def make_world(stack: Stack, **auth_env: str) -> AuthWorld:
    await stack.start("directory")
    await stack.start("auth", **{**AUTH_TEST_ENV, **auth_env})
    dch = channel(stack.addresses["directory"])
    ach = channel(stack.addresses["auth"])

    async def close() -> None:
        await dch.close()
        await ach.close()

    stack.on_close(close)
    directory = directory_pb2_grpc.DirectoryServiceStub(dch)
    slug = "acme" + uuid.uuid4().hex[:6]
    created = await directory.CreateWorkspace(
        directory_pb2.CreateWorkspaceRequest(
            slug=slug, name="Acme", admin_email=f"admin@{slug}.example", admin_name="Ada Admin"
        )
    )
    world = AuthWorld(
        stack=stack,
        auth=auth_pb2_grpc.AuthServiceStub(ach),
        directory=directory,
        ws=created.workspace.id,
        admin_id=created.admin.id,
        admin_email=created.admin.email,
        slug=slug,
    )

    async def close_channels() -> None:
        for ch in world.channels:
            await ch.close()

    stack.on_close(close_channels)
    return world


async def rpc_error(awaitable: Any, what: str = "") -> grpc.aio.AioRpcError:
    """The error an RPC fails with (the test fails if it succeeds)."""
    try:
        await awaitable
    except grpc.aio.AioRpcError as exc:
        return exc
    raise AssertionError(f"the call succeeded but should have failed {what}")


async def eventually(check: Callable[[], Any], attempts: int = 100, pause: float = 0.05) -> Any:
    """Retry an async check until it returns a truthy value (bounded)."""
    last: Any = None
    for _ in range(attempts):
        last = await check()
        if last:
            return last
        await asyncio.sleep(pause)
    raise AssertionError(f"condition not met; last value {last!r}")


async def auth_events(nats_url: str, ws: str) -> tuple[Callable[[], list[events_pb2.Event]], Any]:
    """Start collecting fd.auth.<ws>.> events; returns (snapshot, closer)."""
    import nats

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    seen: list[events_pb2.Event] = []

    async def on_msg(msg: Any) -> None:
        event = events_pb2.Event()
        event.ParseFromString(msg.data)
        seen.append(event)

    sub = await js.subscribe(f"fd.auth.{ws}.>", cb=on_msg, ordered_consumer=True)

    async def close() -> None:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        await nc.close()

    return (lambda: list(seen)), close


def event_names(events: list[events_pb2.Event]) -> list[str]:
    return [e.auth.WhichOneof("kind") or "" for e in events]


# --- the OpenID Provider ------------------------------------------------------------------


@dataclass
class OidcProvider:
    issuer: str  # the proxy's URL, which the provider names itself by
    client_id: str
    client_secret: str
    redirect_uri: str
    signing_key: RSAKey  # the provider's own key (the test generated it)
    tamper: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def resign(self, id_token: str, key: RSAKey | None = None, **changes: Any) -> str:
        """The same ID token with changed claims, signed by `key` (default: the real key)."""
        token = jwt.decode(id_token, self.signing_key)
        claims = {**token.claims, **changes}
        return jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, key or self.signing_key)


@contextlib.asynccontextmanager
async def run_oidc_provider(
    redirect_uri: str = "http://127.0.0.1:9/auth/sso/callback",
) -> AsyncIterator[OidcProvider]:
    """Start the provider and its proxy (skips the test when node is missing; fails in CI)."""
    node = shutil.which("node")
    if node is None:
        missing("node is not installed: the SSO tests need it to run panva's oidc-provider")
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            missing("tests/oidc/node_modules is missing and npm is not installed")
        proc = await asyncio.create_subprocess_exec(
            npm, "ci", "--no-audit", "--no-fund", "--loglevel=error", cwd=OIDC_DIR
        )
        if await proc.wait() != 0:
            missing("npm ci in tests/oidc failed; the SSO tests need oidc-provider")
    provider_port, proxy_port = free_port(), free_port()
    key = RSAKey.generate_key(
        2048, parameters={"kid": "test-key", "use": "sig", "alg": "RS256"}, private=True
    )
    import json

    provider = OidcProvider(
        issuer=f"http://127.0.0.1:{proxy_port}",
        client_id="frontdesk-test",
        client_secret="test-client-secret-" + uuid.uuid4().hex,
        redirect_uri=redirect_uri,
        signing_key=key,
    )
    env = {
        **os.environ,
        "PORT": str(provider_port),
        "ISSUER": provider.issuer,
        "JWKS": json.dumps({"keys": [key.as_dict(private=True)]}),
        "CLIENT_ID": provider.client_id,
        "CLIENT_SECRET": provider.client_secret,
        "REDIRECT_URI": provider.redirect_uri,
        "NODE_ENV": "development",
    }
    proc = await asyncio.create_subprocess_exec(
        node,
        "provider.mjs",
        cwd=OIDC_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    runner: web.AppRunner | None = None
    upstream = aiohttp.ClientSession(auto_decompress=False)
    try:
        assert proc.stdout is not None
        output = b""
        async with asyncio.timeout(30):
            while b"oidc-provider ready" not in output:
                line = await proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"oidc-provider did not start: {output.decode()}")
                output += line

        async def drain() -> None:
            assert proc.stdout is not None
            while await proc.stdout.readline():
                pass

        drainer = asyncio.create_task(drain())

        async def forward(request: web.Request) -> web.StreamResponse:
            headers = {
                k: v
                for k, v in request.headers.items()
                if k.lower() not in {"content-length", "transfer-encoding"}
            }  # Host stays the proxy's: the provider builds its endpoint URLs from it
            async with upstream.request(
                request.method,
                f"http://127.0.0.1:{provider_port}{request.path_qs}",
                headers=headers,
                data=await request.read(),
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
                out = web.Response(status=resp.status, body=body)
                for k, v in resp.headers.items():
                    if k.lower() not in {"content-length", "transfer-encoding", "connection"}:
                        out.headers.add(k, v)
            if request.path == "/token" and provider.tamper is not None and resp.status == 200:
                doc = provider.tamper(json.loads(body))
                out = web.json_response(doc)
            return out

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", proxy_port).start()
        yield provider
        drainer.cancel()
    finally:
        if runner is not None:
            await runner.cleanup()
        await upstream.close()
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


_FORM = re.compile(r'<form[^>]*action="([^"]+)"', re.IGNORECASE)


async def sign_in_at_provider(
    authorization_url: str, login: str, redirect_uri: str
) -> dict[str, str]:
    """Play the browser at the provider's development login and consent pages; returns the
    query of the redirect back to us (code, state, iss)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        url, method, data = authorization_url, "GET", None
        for _ in range(20):
            async with browser.request(method, url, data=data, allow_redirects=False) as resp:
                if resp.status in (301, 302, 303, 307):
                    location = urljoin(url, resp.headers["Location"])
                    if location.startswith(redirect_uri):
                        return dict(parse_qsl(urlsplit(location).query))
                    url, method, data = location, "GET", None
                    continue
                page = await resp.text()
                assert resp.status == 200, page
            action = _FORM.search(page)
            assert action is not None, page
            url = urljoin(url, html.unescape(action.group(1)))
            method = "POST"
            if 'name="login"' in page:
                data = {"prompt": "login", "login": login, "password": "anything"}
            else:
                data = {"prompt": "consent"}
        raise AssertionError("the provider never redirected back")


async def early_in_totp_step(margin: float = 12.0) -> None:
    """Wait for the next 30 s TOTP step when this one ends within `margin` seconds.

    Tests use the codes of the previous, this and the next step (one each, as each works once);
    the service accepts one step either side of its own. A step ending between taking a code and
    the service checking it, on a busy machine, would push the previous step's code out."""
    remaining = 30 - time.time() % 30
    if remaining < margin:
        await asyncio.sleep(remaining + 0.2)
