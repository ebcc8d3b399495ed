"""Builders of the directory's access-change events (fd.directory.<workspace_id>.<name>)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from frontdesk.v1 import directory_events_pb2 as ev
from frontdesk.v1 import events_pb2

from services.chassis.events import new_event
from services.directory.domain import Group, Person, Role, cap_affected


def workspace_created(
    workspace_id: uuid.UUID, slug: str, name: str, admin_id: uuid.UUID
) -> events_pb2.Event:
    payload = ev.WorkspaceCreated(slug=slug, name=name, admin_person_id=str(admin_id))
    return new_event(str(workspace_id), "", "directory", "workspace_created", payload)


def person_changed(
    kind: str, person: Person, actor: str, changed_fields: Sequence[str] = ()
) -> events_pb2.Event:
    """kind: person_created, person_updated, person_deactivated, person_reactivated,
    portal_access_changed."""
    payload = ev.PersonChanged(
        person_id=str(person.id),
        email=person.email,
        active=person.active,
        portal_access=person.portal_access,
        changed_fields=list(changed_fields),
        affected_person_ids=[str(person.id)],
    )
    return new_event(str(person.workspace_id), actor, "directory", kind, payload)


def role_assignment(
    kind: str, workspace_id: uuid.UUID, person_id: uuid.UUID, role_id: uuid.UUID, actor: str
) -> events_pb2.Event:
    """kind: role_granted or role_revoked."""
    payload = ev.RoleAssignmentChanged(
        person_id=str(person_id), role_id=str(role_id), affected_person_ids=[str(person_id)]
    )
    return new_event(str(workspace_id), actor, "directory", kind, payload)


def membership(
    kind: str, workspace_id: uuid.UUID, group_id: uuid.UUID, person_id: uuid.UUID, actor: str
) -> events_pb2.Event:
    """kind: group_member_added or group_member_removed."""
    payload = ev.GroupMembershipChanged(
        group_id=str(group_id), person_id=str(person_id), affected_person_ids=[str(person_id)]
    )
    return new_event(str(workspace_id), actor, "directory", kind, payload)


def role_changed(
    kind: str, role: Role, affected: Sequence[uuid.UUID], actor: str
) -> events_pb2.Event:
    """kind: role_created, role_permissions_changed or role_deleted."""
    listed, everyone = cap_affected(affected)
    payload = ev.RoleChanged(
        role_id=str(role.id),
        name=role.name,
        permissions=list(role.permissions),
        affected_person_ids=listed,
        affects_everyone=everyone,
    )
    return new_event(str(role.workspace_id), actor, "directory", kind, payload)


def group_changed(
    kind: str, group: Group, affected: Sequence[uuid.UUID], actor: str
) -> events_pb2.Event:
    """kind: group_created, group_roles_changed or group_deleted."""
    listed, everyone = cap_affected(affected)
    payload = ev.GroupChanged(
        group_id=str(group.id),
        name=group.name,
        role_ids=[str(r) for r in group.role_ids],
        affected_person_ids=listed,
        affects_everyone=everyone,
    )
    return new_event(str(group.workspace_id), actor, "directory", kind, payload)


def settings_changed(
    workspace_id: uuid.UUID, changed_fields: Sequence[str], affects_everyone: bool, actor: str
) -> events_pb2.Event:
    payload = ev.PortalSettingsChanged(
        changed_fields=list(changed_fields), affects_everyone=affects_everyone
    )
    return new_event(str(workspace_id), actor, "directory", "portal_settings_changed", payload)


def portal_login(workspace_id: uuid.UUID, person_id: uuid.UUID) -> events_pb2.Event:
    payload = ev.PortalLoginRecorded(person_id=str(person_id))
    return new_event(
        str(workspace_id), str(person_id), "directory", "portal_login_recorded", payload
    )


def persons_imported(
    workspace_id: uuid.UUID,
    import_id: uuid.UUID,
    created: Sequence[uuid.UUID],
    updated: Sequence[uuid.UUID],
    actor: str,
) -> events_pb2.Event:
    payload = ev.PersonsImported(
        import_id=str(import_id),
        created_person_ids=[str(i) for i in created],
        updated_person_ids=[str(i) for i in updated],
        affected_person_ids=[str(i) for i in [*created, *updated]],
    )
    return new_event(str(workspace_id), actor, "directory", "persons_imported", payload)
