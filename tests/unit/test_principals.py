"""Signed principals without I/O: what a verifier accepts, what it refuses, how keys rotate."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from services.chassis.caller import NO_WORKSPACE
from services.chassis.principals import (
    KeyRing,
    KeysUnavailable,
    Signer,
    TrustedKey,
    Unauthenticated,
    Verifier,
    bearer,
    generate_key,
)

WS = str(uuid.uuid4())
ME = str(uuid.uuid4())


def trusted(signer: Signer, **kw: object) -> TrustedKey:
    key = signer.trusted()
    return TrustedKey(key.kid, key.issuer, key.key, **kw)  # type: ignore[arg-type]


AUTH = Signer("auth", generate_key())
TICKETS = Signer("tickets", generate_key())
RING = KeyRing([AUTH.trusted(), TICKETS.trusted()])


def signed(signer: Signer = AUTH, **claims: Any) -> str:
    """A principal for tickets naming ME in WS on the portal, with `claims` changed."""
    base: dict[str, Any] = {
        "audience": "tickets",
        "subject": f"person:{ME}",
        "workspace": WS,
        "surface": "portal",
        "permissions": [],
    }
    return signer.sign(**{**base, **claims})


async def test_a_persons_principal_from_auth_becomes_the_caller() -> None:
    token = AUTH.person_token("tickets", WS, ME, ["Ticket:read"], "portal", "sess")
    caller = await Verifier("tickets", RING).verify(token)
    assert (str(caller.workspace_id), str(caller.person_id)) == (WS, ME)
    assert caller.permissions == {"Ticket:read"} and caller.surface == "portal"
    assert caller.session_id == "sess" and not caller.is_service


async def test_a_service_principal_carries_its_rights_and_no_person() -> None:
    caller = await Verifier("directory", RING).verify(TICKETS.service_token("directory", WS))
    assert caller.is_service and caller.service == "tickets" and caller.person_id is None
    assert caller.permissions == {"Person:read"} and caller.has("Person:read")
    assert not caller.has("Person:manage")
    nowhere = await Verifier("directory", RING).verify(TICKETS.service_token("directory"))
    assert nowhere.workspace_id == NO_WORKSPACE


# Tokens are made when the test runs (a minute after collection they would all be expired).
REFUSED: list[tuple[Callable[[], str | None], str]] = [
    (lambda: None, "no principal"),
    (lambda: "", "no principal"),
    (lambda: "a.b.c", "malformed"),
    (
        lambda: Signer("auth", generate_key()).person_token("tickets", WS, ME, [], "portal", ""),
        "unknown key",
    ),
    (lambda: AUTH.person_token("directory", WS, ME, [], "portal", ""), "not for tickets"),
    (lambda: signed(now=time.time() - 120), "expired"),
    (lambda: signed(lifetime=3600), "lifetime"),
    (lambda: signed(now=time.time() + 120), "lifetime"),
    (lambda: signed(workspace="acme"), "malformed workspace"),
    (lambda: signed(surface="service"), "may not sign a person"),
    (lambda: TICKETS.person_token("tickets", WS, ME, [], "portal", ""), "may not sign a person"),
    (
        lambda: signed(signer=TICKETS, subject="service:auth", surface="service"),
        "signed by that service only",
    ),
    (
        lambda: TICKETS.service_token("tickets", WS, ["Person:read", "Person:manage"]),
        "rights it does not have",
    ),
    (lambda: signed(subject="root"), "subject"),
]


@pytest.mark.parametrize(("make", "reason"), REFUSED)
async def test_what_is_refused(make: Callable[[], str | None], reason: str) -> None:
    with pytest.raises(Unauthenticated, match=reason):
        await Verifier("tickets", RING).verify(make())


async def test_a_tampered_payload_does_not_verify() -> None:
    token = AUTH.person_token("tickets", WS, ME, ["Ticket:read"], "portal", "")
    head, _, sig = token.split(".")
    other = AUTH.person_token("tickets", WS, ME, ["Ticket:manage"], "portal", "")
    with pytest.raises(Unauthenticated, match="does not verify"):
        await Verifier("tickets", RING).verify(f"{head}.{other.split('.')[1]}.{sig}")


async def test_unknown_keys_are_fetched_again_so_keys_rotate_without_downtime() -> None:
    old, new = Signer("auth", generate_key()), Signer("auth", generate_key())
    published = [old.trusted()]
    fetches = 0

    async def fetch() -> list[TrustedKey]:
        nonlocal fetches
        fetches += 1
        return list(published)

    verifier = Verifier("tickets", KeyRing(fetch=fetch, min_interval=0.0))
    assert (await verifier.verify(old.service_token("tickets"))).service == "auth"
    # Auth starts signing with a new key and still publishes the old one: both verify.
    published.append(new.trusted())
    assert (await verifier.verify(new.service_token("tickets", WS))).service == "auth"
    assert (await verifier.verify(old.service_token("tickets", WS))).service == "auth"
    assert fetches == 2
    # Once auth stops publishing the old key (its principals have expired), it is refused.
    published[:] = [new.trusted()]
    with pytest.raises(Unauthenticated, match="unknown key"):
        await verifier.verify(Signer("auth", generate_key()).service_token("tickets"))
    with pytest.raises(Unauthenticated, match="unknown key"):
        await verifier.verify(old.service_token("tickets", str(uuid.uuid4())))


async def test_auth_unreachable_with_an_unknown_key_is_unavailable_not_unauthenticated() -> None:
    async def fetch() -> list[TrustedKey]:
        raise ConnectionError("auth is down")

    with pytest.raises(KeysUnavailable):
        await Verifier("tickets", KeyRing(fetch=fetch)).verify(AUTH.service_token("tickets"))


def test_the_principal_travels_as_a_bearer_in_metadata() -> None:
    assert bearer([("x-request-id", "r"), ("authorization", "Bearer abc")]) == "abc"
    assert bearer([("authorization", "Basic abc")]) is None
    assert bearer(None) is None
