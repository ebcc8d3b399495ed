"""Protobuf <-> domain for the directory service: timestamps, optional fields, ids and messages."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from frontdesk.v1 import directory_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.directory.domain import (
    AuditEntry,
    Group,
    ImportJob,
    Person,
    PortalSettings,
    Role,
    Workspace,
)


def _ts(target: Timestamp, value: datetime | None) -> None:
    if value is not None:
        target.FromDatetime(value)


def workspace_pb(ws: Workspace) -> directory_pb2.Workspace:
    msg = directory_pb2.Workspace(id=str(ws.id), slug=ws.slug, name=ws.name)
    _ts(msg.created_at, ws.created_at)
    return msg


def person_pb(p: Person) -> directory_pb2.Person:
    msg = directory_pb2.Person(
        id=str(p.id),
        workspace_id=str(p.workspace_id),
        email=p.email,
        name=p.name,
        login_name=p.login_name,
        active=p.active,
        portal_access=p.portal_access,
        notifications=directory_pb2.NotificationPreferences(
            ticket_updates=p.notifications.ticket_updates,
            issue_assigned=p.notifications.issue_assigned,
            control_test_assigned=p.notifications.control_test_assigned,
            weekly_digest=p.notifications.weekly_digest,
        ),
        role_ids=[str(r) for r in p.role_ids],
        group_ids=[str(g) for g in p.group_ids],
    )
    _ts(msg.created_at, p.created_at)
    _ts(msg.updated_at, p.updated_at)
    _ts(msg.last_portal_login_at, p.last_portal_login_at)
    return msg


def settings_pb(s: PortalSettings) -> directory_pb2.PortalSettings:
    msg = directory_pb2.PortalSettings(
        workspace_id=str(s.workspace_id),
        tickets_enabled=s.tickets_enabled,
        issues_enabled=s.issues_enabled,
        control_tests_enabled=s.control_tests_enabled,
        self_registration=s.self_registration,
        registration_domains=list(s.registration_domains),
        portal_access_default=s.portal_access_default,
        portal_access_rules=[
            directory_pb2.DomainRule(domain=r.domain, portal_access=r.portal_access)
            for r in s.portal_access_rules
        ],
        require_two_factor=s.require_two_factor,
        api_token_max_days=s.api_token_max_days,
        attachment_max_file_mb=s.attachment_max_file_mb,
        attachment_max_item_mb=s.attachment_max_item_mb,
        attachment_max_files=s.attachment_max_files,
    )
    _ts(msg.updated_at, s.updated_at)
    return msg


def role_pb(r: Role) -> directory_pb2.Role:
    return directory_pb2.Role(
        id=str(r.id),
        name=r.name,
        description=r.description,
        permissions=list(r.permissions),
        builtin=r.builtin,
        assigned_count=r.assigned_count,
    )


def group_pb(g: Group) -> directory_pb2.Group:
    return directory_pb2.Group(
        id=str(g.id),
        name=g.name,
        description=g.description,
        role_ids=[str(r) for r in g.role_ids],
        builtin=g.builtin,
        member_count=g.member_count,
    )


def job_pb(j: ImportJob) -> directory_pb2.ImportJob:
    msg = directory_pb2.ImportJob(
        id=str(j.id),
        status=j.status,
        dry_run=j.dry_run,
        total_rows=j.total_rows,
        rows_done=j.rows_done,
        created=j.created,
        updated=j.updated,
        unchanged=j.unchanged,
        failed=j.failed,
        errors=[
            directory_pb2.ImportRowError(
                line=int(e.get("line", 0)),
                field=str(e.get("field", "")),
                message=str(e.get("message", "")),
            )
            for e in j.errors
        ],
        message=j.message,
    )
    _ts(msg.created_at, j.created_at)
    _ts(msg.finished_at, j.finished_at)
    return msg


def audit_pb(a: AuditEntry) -> directory_pb2.AuditEntry:
    msg = directory_pb2.AuditEntry(
        id=str(a.id),
        actor_id=a.actor_id,
        action=a.action,
        object_type=a.object_type,
        object_id=a.object_id,
        before_json=a.before,
        after_json=a.after,
    )
    _ts(msg.at, a.at)
    return msg


def optional(request: Any, name: str) -> Any:
    return getattr(request, name) if request.HasField(name) else None


def persons_page(
    persons: list[Person], token: str, total: int
) -> directory_pb2.ListPersonsResponse:
    return directory_pb2.ListPersonsResponse(
        persons=[person_pb(p) for p in persons], next_page_token=token, total=total
    )


def uuid_list(values: Sequence[str]) -> list[uuid.UUID] | None:
    """A filter by ids: None when absent; malformed ids match nobody, so they are skipped."""
    if not values:
        return None
    parsed = []
    for value in values:
        try:
            parsed.append(uuid.UUID(value))
        except ValueError:
            continue
    return parsed
