"""SCIM Groups: a group as SCIM shows it (members are users), and writing a validated Group
(name and membership; each membership change is an access-change event)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import asyncpg
from frontdesk.v1 import events_pb2

from services.chassis import outbox
from services.directory import events, scim_store, scim_users, store, store_groups, store_persons
from services.directory.domain import GROUP_ADMINISTRATORS, Group, clean_name
from services.directory.scim_support import ScimCall, ScimError, etag, iso, scim_errors, stored_of


async def render_groups(
    conn: asyncpg.Connection, call: ScimCall, ids: list[uuid.UUID]
) -> list[dict[str, Any]]:
    ws = call.workspace_id
    rows = await scim_store.get_scim_groups(conn, ws, ids)
    members = await scim_store.members_of(conn, ws, ids)
    times = await scim_store.group_times(conn, ws, ids)
    out = []
    for group_id in ids:
        group = await store_groups.get_group(conn, ws, group_id)
        if group is None:
            continue
        row = rows.get(group_id)
        doc: dict[str, Any] = dict(row.resource) if row else {}
        doc["schemas"] = ["urn:ietf:params:scim:schemas:core:2.0:Group"]
        doc["id"] = str(group.id)
        if row is not None and row.external_id:
            doc["externalId"] = row.external_id
        doc["displayName"] = group.name
        doc["members"] = [
            # No display: members are compared as they were written (scim2-tester does).
            {"value": str(pid), "type": "User", "$ref": f"{call.base_url}/Users/{pid}"}
            for pid, _name in members.get(group_id, [])
        ]
        if not doc["members"]:
            del doc["members"]
        created, modified = times[group_id]
        doc["meta"] = {
            "resourceType": "Group",
            "created": iso(created),
            "lastModified": iso(modified),
            "location": f"{call.base_url}/Groups/{group.id}",
        }
        doc["meta"]["version"] = etag(doc)
        out.append(doc)
    return out


async def write_group(
    conn: asyncpg.Connection,
    call: ScimCall,
    actor: str,
    target: uuid.UUID | None,
    model: Any,
) -> uuid.UUID:
    ws = call.workspace_id
    with scim_errors():
        name = clean_name(model.display_name or "")
    wanted: list[uuid.UUID] = []
    for member in model.members or []:
        if member.type and member.type != "User":
            raise ScimError(
                400, "members: only users can be members (no nested groups)", "invalidValue"
            )
        try:
            wanted.append(uuid.UUID(str(member.value)))
        except ValueError:
            raise ScimError(400, f"members: no user {member.value!r}", "invalidValue") from None
    wanted = list(dict.fromkeys(wanted))
    found = await scim_store.existing_person_ids(conn, ws, wanted)
    if missing := [w for w in wanted if w not in found]:
        raise ScimError(400, f"members: no user {missing[0]}", "invalidValue")
    outgoing: list[events_pb2.Event] = []
    if target is None:
        group = Group(uuid.uuid4(), ws, name, "")
        try:
            async with conn.transaction():
                await store_groups.insert_group(conn, group)
        except asyncpg.UniqueViolationError:
            raise ScimError(
                409, "a group with this displayName exists already", "uniqueness"
            ) from None
        await store.insert_audit(
            conn, ws, actor, "group.created", "group", str(group.id), None, group.as_json()
        )
        outgoing.append(events.group_changed("group_created", group, [], ""))
        before_members: list[uuid.UUID] = []
    else:
        existing = await store_groups.get_group(conn, ws, target)
        assert existing is not None
        group = existing
        if name != group.name:
            renamed = replace(group, name=name)
            try:
                async with conn.transaction():
                    await store_groups.update_group(conn, renamed)
            except asyncpg.UniqueViolationError:
                raise ScimError(
                    409, "a group with this displayName exists already", "uniqueness"
                ) from None
            await store.insert_audit(
                conn,
                ws,
                actor,
                "group.updated",
                "group",
                str(group.id),
                group.as_json(),
                renamed.as_json(),
            )
            group = renamed
        before_members = await store_groups.group_member_ids(conn, ws, group.id)
    add = [p for p in wanted if p not in set(before_members)]
    remove = [p for p in before_members if p not in set(wanted)]
    if remove and group.builtin_key == GROUP_ADMINISTRATORS:
        for person_id in remove:
            person = await store_persons.get_person(conn, ws, person_id)
            if person is not None:
                await scim_users.keep_an_admin(conn, person, leaving=set(remove))
    await scim_store.set_members(conn, ws, group.id, add, remove)
    if add or remove:
        await scim_store.touch_group(conn, ws, group.id)
    for person_id in add:
        outgoing.append(events.membership("group_member_added", ws, group.id, person_id, ""))
    for person_id in remove:
        outgoing.append(events.membership("group_member_removed", ws, group.id, person_id, ""))
    if add or remove:
        await store.insert_audit(
            conn,
            ws,
            actor,
            "group.members_set",
            "group",
            str(group.id),
            None,
            {"added": [str(p) for p in add], "removed": [str(p) for p in remove]},
        )
    await scim_store.upsert_scim_group(conn, ws, group.id, model.external_id, stored_of(model))
    await outbox.add_many(conn, outgoing)
    return group.id
