"""The gateway's pure functions, without I/O: the request guard's steps, safe_next,
workspace_slug, the TTL cache and CSV cell escaping."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from frontdesk.v1 import auth_pb2, directory_pb2

from gateway.app import _check_location, workspace_slug
from gateway.cache import TtlCache
from gateway.errors import ApiError
from gateway.features.auth import safe_next
from gateway.features.directory.usage import _csv_cell
from gateway.routing import Ctx, Route, access_step, permissions_step, section_step


async def _handler(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return web.Response()


def _ctx(
    path: str,
    *,
    surface: str = "portal",
    kind: str = "api",
    permissions: tuple[str, ...] = (),
    section: str | None = None,
    signed_in: bool = True,
    portal_access: bool = True,
    held: frozenset[str] = frozenset(),
    via_api_token: bool = False,
    tickets_enabled: bool = True,
) -> Ctx:
    route = Route(
        "GET", path, _handler, surface=surface, kind=kind, permissions=permissions, section=section
    )  # type: ignore[arg-type]
    ctx = Ctx(request=make_mocked_request("GET", path), route=route, state=cast(Any, None))
    ctx.portal_settings = directory_pb2.PortalSettings(tickets_enabled=tickets_enabled)
    if signed_in:
        ctx.session = auth_pb2.SessionInfo(person_id="p1")
        ctx.person = directory_pb2.EffectivePermissions(
            person_id="p1", portal_access=portal_access, active=True
        )
        ctx.permissions = held
        ctx.via_api_token = via_api_token
    return ctx


def _refusal(step: Any, ctx: Ctx) -> ApiError:
    with pytest.raises(ApiError) as info:
        asyncio.run(step(ctx))
    return info.value


def test_the_guard_asks_for_sign_in_with_401_or_the_login_page() -> None:
    refused = _refusal(access_step, _ctx("/api/v1/tickets", signed_in=False))
    assert (refused.status, refused.code) == (401, "unauthenticated")
    with pytest.raises(web.HTTPSeeOther) as page:
        asyncio.run(access_step(_ctx("/tickets?status=open", kind="page", signed_in=False)))
    assert page.value.location.startswith("/login?next=")
    asyncio.run(access_step(_ctx("/healthz", surface="public", signed_in=False)))  # passes


def test_the_guard_keeps_persons_without_portal_access_out_of_the_portal_only() -> None:
    refused = _refusal(access_step, _ctx("/api/v1/tickets", portal_access=False))
    assert (refused.status, refused.code) == (403, "portal_access_disabled")
    manager = _ctx(
        "/management/api/v1/roles",
        surface="management",
        portal_access=False,
        held=frozenset({"Role:manage"}),
    )
    asyncio.run(access_step(manager))  # management sign-in is unaffected


def test_the_guard_opens_management_only_with_a_management_permission() -> None:
    refused = _refusal(access_step, _ctx("/management", surface="management", kind="page"))
    assert (refused.status, refused.code) == (403, "forbidden")
    token_on_a_page = _ctx(
        "/management/roles",
        surface="management",
        kind="page",
        held=frozenset({"Role:manage"}),
        via_api_token=True,
    )
    assert _refusal(access_step, token_on_a_page).status == 401


def test_the_guard_hides_a_section_that_is_off_but_not_from_management() -> None:
    off = _ctx("/api/v1/tickets", section="tickets", tickets_enabled=False)
    assert (_refusal(section_step, off).status, _refusal(section_step, off).code) == (
        404,
        "not_found",
    )
    asyncio.run(section_step(_ctx("/api/v1/tickets", section="tickets")))
    asyncio.run(
        section_step(
            _ctx(
                "/management/api/v1/tickets",
                surface="management",
                section="tickets",
                tickets_enabled=False,
            )
        )
    )


def test_the_guard_names_every_missing_permission() -> None:
    ctx = _ctx(
        "/api/v1/tickets",
        permissions=("Ticket:read", "Ticket:create"),
        held=frozenset({"Ticket:read"}),
    )
    refused = _refusal(permissions_step, ctx)
    assert (refused.status, refused.message) == (403, "this needs the permission Ticket:create")
    ctx.permissions = frozenset({"Ticket:read", "Ticket:create"})
    asyncio.run(permissions_step(ctx))


@pytest.mark.parametrize("location", ["/x\r\nSet-Cookie: a=b", "/x\x00", "/x\x7f"])
def test_a_redirect_to_a_target_with_control_characters_is_refused(location: str) -> None:
    with pytest.raises(ApiError) as info:
        _check_location(web.Response(status=303, headers={"Location": location}))
    assert info.value.status == 400
    _check_location(web.Response(status=303, headers={"Location": "/tickets/1?created=1"}))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/tickets?status=open", "/tickets?status=open"),
        ("/management/persons/1#roles", "/management/persons/1#roles"),
        (None, "/"),
        ("", "/"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("tickets", "/"),
        ("/x\r\nSet-Cookie: a=b", "/"),
        ("/x\x7f", "/"),
    ],
)
def test_safe_next_keeps_only_local_paths(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected
    assert safe_next("//evil", default="/management") == "/management"


@pytest.mark.parametrize(
    ("host", "slug"),
    [
        ("acme.localhost:8080", "acme"),
        ("ACME.localhost.", "acme"),
        ("acme.localhost", "acme"),
        ("localhost:8080", None),
        ("a.b.localhost", None),
        (".localhost", None),
        ("acme.example.com", None),
        ("acmelocalhost", None),
        ("[::1]:8080", None),
    ],
)
def test_workspace_slug_is_the_one_label_before_the_base_domain(
    host: str, slug: str | None
) -> None:
    assert workspace_slug(host, "localhost") == slug


def test_the_ttl_cache_expires_bounds_and_drops() -> None:
    cache: TtlCache[str, int] = TtlCache(ttl=3600, max_entries=2)
    cache.put("a", 1)
    cache.put("stale", 0, ttl=-1)  # already expired
    assert cache.get("a") == 1 and cache.get("stale") is None
    cache.put("b", 2)
    cache.put("c", 3)  # over the bound: the oldest entry goes
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, 2, 3)
    cache.drop("b")
    assert cache.get("b") is None
    cache.put("d", 4)
    assert cache.drop_where(lambda k, v: v > 3) == 1 and cache.get("d") is None
    cache.clear()
    assert cache.get("c") is None


def test_a_value_loaded_across_an_invalidation_is_not_kept() -> None:
    cache: TtlCache[str, int] = TtlCache(ttl=3600)

    async def scenario() -> tuple[int, int | None, int]:
        async def load_while_invalidated() -> int:
            cache.drop("other")  # an event arrives while the value is being read
            return 1

        first = await cache.get_or_load("k", load_while_invalidated)
        kept = cache.get("k")

        async def load() -> int:
            return 2

        second = await cache.get_or_load("k", load)
        return first, kept, second

    first, kept, second = asyncio.run(scenario())
    assert (first, kept, second) == (1, None, 2)
    assert cache.get("k") == 2


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("ann@acme.com", "ann@acme.com"),
        ("", ""),
    ],
)
def test_csv_cells_never_start_a_formula(value: str, cell: str) -> None:
    assert _csv_cell(value) == cell


def test_copy_given_sets_only_the_fields_a_patch_gives() -> None:
    from gateway.features.directory.persons import PersonPatchIn
    from gateway.present import copy_given

    req = directory_pb2.UpdatePersonRequest(person_id="p1")
    copy_given(PersonPatchIn(name="Ann", active=False), req, ("email", "name", "active"))
    assert (req.name, req.HasField("active"), req.active) == ("Ann", True, False)
    assert not req.HasField("email")
