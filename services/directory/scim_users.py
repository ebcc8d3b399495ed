"""SCIM Users: a person as SCIM shows it, and writing a validated User to the person.

A User is a person: its e-mail, display name, `active` and Frontdesk's `portalAccess` are the
person's own fields; everything else an IdP sends is kept as given (scim_users.resource). Every
write goes with its audit row (actor "scim:<token id>") and the access-change events the console
writes too, in the caller's transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import asyncpg
import pydantic
from frontdesk.v1 import events_pb2
from scim2_models import Email

from services.chassis import outbox
from services.chassis.errors import InvalidField
from services.directory import events, scim_store, store, store_groups, store_persons
from services.directory.domain import GROUP_PORTAL_USERS, Notifications, Person, clean_email, no_nul
from services.directory.scim_models import FRONTDESK_USER_URN, FrontdeskUser
from services.directory.scim_support import ScimCall, ScimError, etag, iso, stored_of
from services.directory.service_base import person_events


async def render_users(
    conn: asyncpg.Connection, call: ScimCall, ids: list[uuid.UUID]
) -> list[dict[str, Any]]:
    ws = call.workspace_id
    rows = await scim_store.get_scim_users(conn, ws, ids)
    group_names = await scim_store.group_names(conn, ws) if ids else {}
    persons = await scim_store.persons_by_ids(conn, ws, ids)
    out = []
    for person_id in ids:
        person = persons.get(person_id)
        row = rows.get(person_id)
        if person is None or (row is not None and row.deleted):
            continue
        out.append(user_doc(person, row, group_names, call.base_url))
    return out


async def write_user(
    conn: asyncpg.Connection,
    call: ScimCall,
    actor: str,
    target: uuid.UUID | None,
    model: Any,
) -> uuid.UUID:
    """Create (target None) or update the person from a validated User; writes audit and events."""
    ws = call.workspace_id
    creating = target is None
    settings = await store.get_settings(conn, ws)
    if settings is None:
        raise ScimError(404, "workspace not found")
    user_name = no_nul((model.user_name or "").strip(), "userName")
    if not user_name or len(user_name) > 256:
        raise ScimError(400, "userName: give 1 to 256 characters", "invalidValue")
    email = _email_of(model, user_name)
    name = _name_of(model, user_name)
    owner = await scim_store.user_name_owner(conn, ws, user_name)
    with_email = None if email is None else await scim_store.person_ids_by_email(conn, ws, email)
    if target is None and with_email is not None:
        # A person the IdP does not know yet (created in the console, self-registered, or
        # deleted over SCIM before) is matched by e-mail and taken over, not duplicated.
        live = await scim_store.get_scim_users(conn, ws, [with_email])
        row = live.get(with_email)
        if row is not None and not row.deleted:
            raise ScimError(409, "a user with this e-mail address exists already", "uniqueness")
        if owner is not None and owner != with_email:
            raise ScimError(409, "userName is taken", "uniqueness")
        target = with_email
        await store_persons.get_person(conn, ws, target, for_update=True)
    if owner is not None and owner != target:
        raise ScimError(409, "userName is taken", "uniqueness")
    if with_email is not None and with_email != target:
        raise ScimError(409, "a user with this e-mail address exists already", "uniqueness")
    ext = model[FrontdeskUser]
    portal_access = ext.portal_access if ext is not None else None
    stored = stored_of(model)
    before = None if target is None else await store_persons.get_person(conn, ws, target)
    outgoing: list[events_pb2.Event] = []
    if before is None:
        new_id = uuid.uuid4()
        email = email or placeholder_email(new_id)
        person = Person(
            new_id,
            ws,
            email,
            name,
            "",
            True if model.active is None else bool(model.active),
            settings.portal_access_for(email) if portal_access is None else portal_access,
            Notifications(),
        )
        await store_persons.insert_person(conn, person)
        await scim_store.upsert_scim_user(conn, ws, person.id, user_name, model.external_id, stored)
        outgoing.append(events.person_changed("person_created", person, ""))
        portal_users = await scim_store.builtin_group_id(conn, ws, GROUP_PORTAL_USERS)
        if portal_users is not None:
            await store_groups.add_member(conn, ws, portal_users, person.id)
            outgoing.append(
                events.membership("group_member_added", ws, portal_users, person.id, "")
            )
        await store.insert_audit(
            conn,
            ws,
            actor,
            "person.provisioned",
            "person",
            str(person.id),
            None,
            {**person.as_json(), "user_name": user_name, "external_id": model.external_id},
        )
        await outbox.add_many(conn, outgoing)
        return person.id
    after = replace(
        before,
        email=email or before.email,
        name=name,
        # Provisioning (again) someone who exists activates them unless told otherwise.
        active=(True if creating else before.active)
        if model.active is None
        else bool(model.active),
        portal_access=before.portal_access if portal_access is None else portal_access,
    )
    if before.active and not after.active:
        await keep_an_admin(conn, before)
    old, new = before.as_json(), after.as_json()
    changed = [k for k in new if new[k] != old[k]]
    if changed:
        await store_persons.update_person(conn, after)
        outgoing.extend(_person_events(before, after, changed))
    await scim_store.upsert_scim_user(conn, ws, before.id, user_name, model.external_id, stored)
    await store.insert_audit(
        conn,
        ws,
        actor,
        "person.scim_updated",
        "person",
        str(before.id),
        old,
        {**new, "user_name": user_name, "external_id": model.external_id},
    )
    await outbox.add_many(conn, outgoing)
    return before.id


def _email_of(model: Any, user_name: str) -> str | None:
    """The primary (else first) e-mail address, else userName when it is one, else None."""
    emails = list(model.emails or [])
    chosen = next((e for e in emails if e.primary), emails[0] if emails else None)
    if chosen is not None and chosen.value:
        try:
            return clean_email(str(chosen.value), "emails")
        except InvalidField:
            raise ScimError(
                400, f"emails: {chosen.value!r} is not an e-mail address", "invalidValue"
            ) from None
    try:
        return clean_email(user_name, "userName")
    except InvalidField:
        return None


def placeholder_email(person_id: uuid.UUID) -> str:
    """The address of a person provisioned without one: reserved (.invalid never delivers),
    unique, and replaced as soon as the IdP sends a real one. Nobody is refused for lacking it."""
    return f"{person_id}@scim.invalid"


def _name_of(model: Any, user_name: str) -> str:
    name = model.display_name
    if not name and model.name is not None:
        name = model.name.formatted or " ".join(
            p for p in (model.name.given_name, model.name.family_name) if p
        )
    name = (name or user_name).strip()[:200]
    return no_nul(name, "displayName")


def user_doc(
    person: Person,
    row: scim_store.ScimUserRow | None,
    group_names: dict[uuid.UUID, str],
    base: str,
) -> dict[str, Any]:
    """The User as SCIM shows it: what the IdP sent, with the person's own fields on top."""
    stored: dict[str, Any] = dict(row.resource) if row is not None else {}
    provisioned = row is not None
    doc = dict(stored)
    doc["schemas"] = stored.get("schemas") or ["urn:ietf:params:scim:schemas:core:2.0:User"]
    doc["id"] = str(person.id)
    doc["userName"] = row.user_name if row is not None else (person.login_name or person.email)
    if row is not None and row.external_id:
        doc["externalId"] = row.external_id
    if "displayName" in stored or not provisioned:
        doc["displayName"] = person.name
    if "active" in stored or not provisioned:
        doc["active"] = person.active
    if not provisioned and _shown_email(person.email):
        doc["emails"] = [{"value": person.email, "type": "work", "primary": True}]
    ext = dict(stored.get(FRONTDESK_USER_URN) or {})
    if "portalAccess" in ext or not provisioned:
        ext["portalAccess"] = person.portal_access
        doc[FRONTDESK_USER_URN] = ext
        if FRONTDESK_USER_URN not in doc["schemas"]:
            doc["schemas"] = [*doc["schemas"], FRONTDESK_USER_URN]
    groups = [
        {
            "value": str(g),
            "display": group_names.get(g, ""),
            "type": "direct",
            "$ref": f"{base}/Groups/{g}",
        }
        for g in person.group_ids
    ]
    if groups:
        doc["groups"] = groups
    modified = max(t for t in (person.updated_at, row.updated_at if row else None) if t)
    doc["meta"] = {
        "resourceType": "User",
        "created": iso(person.created_at),
        "lastModified": iso(modified),
        "location": f"{base}/Users/{person.id}",
    }
    doc["meta"]["version"] = etag(doc)
    return doc


def _shown_email(value: str) -> bool:
    """Whether SCIM can show an address (not a reserved domain such as .test or .invalid)."""
    try:
        Email(value=value)
    except pydantic.ValidationError:
        return False
    return True


def _person_events(before: Person, after: Person, changed: list[str]) -> list[events_pb2.Event]:
    return person_events(before, after, changed, "")


async def keep_an_admin(
    conn: asyncpg.Connection, person: Person, leaving: set[uuid.UUID] | None = None
) -> None:
    """An IdP never deactivates, or removes from Administrators, the last active administrator."""
    group_id, others = await store_groups.other_active_admins(conn, person.workspace_id, person.id)
    if group_id is None or group_id not in person.group_ids or not person.active:
        return
    if leaving is not None and len(leaving) > 1:
        remaining: int = await conn.fetchval(
            """
            select count(*) from group_members gm join persons p on p.id = gm.person_id
            where gm.workspace_id = $1 and gm.group_id = $2 and p.active
              and not (gm.person_id = any($3::uuid[]))
            """,
            person.workspace_id,
            group_id,
            list(leaving),
        )
        others = remaining
    if others == 0:
        raise ScimError(
            409,
            "this is the workspace's last active administrator; make someone else an"
            " administrator first",
        )
