"""Pure parts of webhooks (address rules, Standard Webhooks signature) and of the access state
the frontdesk_events library keeps from events."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from frontdesk.v1 import access_pb2, directory_events_pb2, events_pb2

from frontdesk_events import AccessState, Snapshot, decode
from services.chassis.errors import InvalidField as Invalid
from services.directory.webhooks import check_url, new_secret, signed_headers


def test_webhook_addresses_are_https_and_public() -> None:
    assert check_url(" https://hooks.example.com/x ", allow_http=False, allow_private=False) == (
        "https://hooks.example.com/x"
    )
    for bad in (
        "http://hooks.example.com/x",
        "ftp://x",
        "https://user:pw@hooks.example.com/",
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://[::1]/x",
        "https://169.254.169.254/latest",
        "https://localhost/x",
        "https:///nohost",
    ):
        with pytest.raises(Invalid):
            check_url(bad, allow_http=False, allow_private=False)
    assert check_url("http://127.0.0.1:9/x", allow_http=True, allow_private=True)


def test_signature_follows_standard_webhooks() -> None:
    secret = new_secret()
    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    headers = signed_headers(secret, "msg_1", '{"a":1}', now)
    assert headers["webhook-id"] == "msg_1" and headers["webhook-timestamp"] == str(
        int(now.timestamp())
    )
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = hmac.new(key, f'msg_1.{int(now.timestamp())}.{{"a":1}}'.encode(), hashlib.sha256)
    assert headers["webhook-signature"] == "v1," + base64.b64encode(expected.digest()).decode()


def _event(name: str, payload: object) -> bytes:
    event = events_pb2.Event(event_id=name + "-1", workspace_id="w")
    getattr(event.directory, name).CopyFrom(payload)
    return event.SerializeToString()


def test_access_state_recomputes_permissions_from_absolute_events() -> None:
    state = AccessState()
    state.load(
        Snapshot(
            7,
            persons=[
                access_pb2.AccessPerson(
                    person_id="p", active=True, portal_access=True, group_ids=["g"]
                )
            ],
            roles=[access_pb2.AccessRole(role_id="r", permissions=["Ticket:read"])],
            groups=[access_pb2.AccessGroup(group_id="g", role_ids=["r"])],
        )
    )
    assert state.table() == {"p": (True, True, frozenset({"Ticket:read"}))}
    ev = directory_events_pb2
    for name, payload in [
        ("role_permissions_changed", ev.RoleChanged(role_id="r", permissions=["Issue:read"])),
        ("role_created", ev.RoleChanged(role_id="r2", permissions=["Audit:read"])),
        ("role_granted", ev.RoleAssignmentChanged(person_id="p", role_id="r2")),
        ("person_deactivated", ev.PersonChanged(person_id="p", active=False, portal_access=True)),
    ]:
        assert state.apply(decode(_event(name, payload))) == []
    assert state.table() == {"p": (False, True, frozenset({"Issue:read", "Audit:read"}))}
    state.apply(decode(_event("group_deleted", ev.GroupChanged(group_id="g"))))
    state.apply(
        decode(_event("role_revoked", ev.RoleAssignmentChanged(person_id="p", role_id="r2")))
    )
    assert state.permissions("p") == frozenset()
    imported = ev.PersonsImported(created_person_ids=["q"], updated_person_ids=["p"])
    assert state.apply(decode(_event("persons_imported", imported))) == ["q", "p"]


async def test_a_name_resolving_to_a_private_address_is_refused_at_send_time() -> None:
    from services.directory.webhooks import _public_only

    for url in ("https://localhost/x", "https://10.0.0.1/x", "https://[::1]:8443/x"):
        with pytest.raises(Invalid):
            await _public_only(url)
