"""The gRPC face of the directory: protobuf <-> domain, domain errors -> status codes. Thin."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

import grpc
from frontdesk.v1 import common_pb2, directory_pb2, directory_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from services.chassis.grpcio import maps_errors
from services.directory.domain import (
    CATALOG,
    AuditEntry,
    Caller,
    Conflict,
    Denied,
    Group,
    ImportJob,
    Invalid,
    NotFound,
    Notifications,
    Person,
    PortalSettings,
    Precondition,
    Role,
    Workspace,
    make_caller,
    page_from,
    parse_id,
)
from services.directory.service import DirectoryService, PersonChange, SettingsChange

R = TypeVar("R")
_CODES: list[tuple[type[Exception], grpc.StatusCode]] = [
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (Invalid, grpc.StatusCode.INVALID_ARGUMENT),
    (Conflict, grpc.StatusCode.ALREADY_EXISTS),
    (Precondition, grpc.StatusCode.FAILED_PRECONDITION),
    (Denied, grpc.StatusCode.PERMISSION_DENIED),
]


_mapped = maps_errors(_CODES)


def _caller(request: Any) -> Caller:
    c = request.caller
    return make_caller(c.workspace_id, c.person_id, c.permissions)


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


def _opt(request: Any, name: str) -> Any:
    return getattr(request, name) if request.HasField(name) else None


def _persons(persons: list[Person], token: str, total: int) -> directory_pb2.ListPersonsResponse:
    return directory_pb2.ListPersonsResponse(
        persons=[person_pb(p) for p in persons], next_page_token=token, total=total
    )


class DirectoryServicer(directory_pb2_grpc.DirectoryServiceServicer):
    def __init__(self, service: DirectoryService) -> None:
        self._service = service

    @_mapped
    async def CreateWorkspace(
        self, request: directory_pb2.CreateWorkspaceRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.CreateWorkspaceResponse:
        ws, admin = await self._service.create_workspace(
            request.slug, request.name, request.admin_email, request.admin_name
        )
        return directory_pb2.CreateWorkspaceResponse(
            workspace=workspace_pb(ws), admin=person_pb(admin)
        )

    @_mapped
    async def GetWorkspace(
        self, request: directory_pb2.GetWorkspaceRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Workspace:
        by = request.WhichOneof("by")
        if by == "id":
            ws = await self._service.get_workspace(parse_id(request.id, "workspace"), None)
        elif by == "slug":
            ws = await self._service.get_workspace(None, request.slug)
        else:
            raise Invalid("by", "give an id or a slug")
        return workspace_pb(ws)

    @_mapped
    async def GetPortalSettings(
        self, request: directory_pb2.GetPortalSettingsRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.PortalSettings:
        return settings_pb(await self._service.get_settings(_caller(request)))

    @_mapped
    async def UpdatePortalSettings(
        self, request: directory_pb2.UpdatePortalSettingsRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.PortalSettings:
        change = SettingsChange(
            tickets_enabled=_opt(request, "tickets_enabled"),
            issues_enabled=_opt(request, "issues_enabled"),
            control_tests_enabled=_opt(request, "control_tests_enabled"),
            self_registration=_opt(request, "self_registration"),
            registration_domains=list(request.registration_domains)
            if request.set_registration_domains
            else None,
            portal_access_default=_opt(request, "portal_access_default"),
            portal_access_rules=[(r.domain, r.portal_access) for r in request.portal_access_rules]
            if request.set_portal_access_rules
            else None,
            require_two_factor=_opt(request, "require_two_factor"),
        )
        return settings_pb(await self._service.update_settings(_caller(request), change))

    @_mapped
    async def CreatePerson(
        self, request: directory_pb2.CreatePersonRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Person:
        caller = _caller(request)
        person = await self._service.create_person(
            caller,
            email=request.email,
            name=request.name,
            login_name=request.login_name,
            portal_access=_opt(request, "portal_access"),
            group_ids=[parse_id(g, "group") for g in request.group_ids],
            role_ids=[parse_id(r, "role") for r in request.role_ids],
        )
        return person_pb(person)

    @_mapped
    async def UpdatePerson(
        self, request: directory_pb2.UpdatePersonRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Person:
        caller = _caller(request)
        n = request.notifications
        change = PersonChange(
            email=_opt(request, "email"),
            name=_opt(request, "name"),
            login_name=_opt(request, "login_name"),
            active=_opt(request, "active"),
            portal_access=_opt(request, "portal_access"),
            notifications=Notifications(
                n.ticket_updates, n.issue_assigned, n.control_test_assigned, n.weekly_digest
            )
            if request.set_notifications
            else None,
        )
        person = await self._service.update_person(
            caller, parse_id(request.person_id, "person"), change
        )
        return person_pb(person)

    @_mapped
    async def GetPerson(
        self, request: directory_pb2.GetPersonRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Person:
        caller = _caller(request)
        return person_pb(
            await self._service.get_person(caller, parse_id(request.person_id, "person"))
        )

    @_mapped
    async def FindPersonByEmail(
        self, request: directory_pb2.FindPersonByEmailRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Person:
        return person_pb(await self._service.find_person_by_email(_caller(request), request.email))

    @_mapped
    async def ListPersons(
        self, request: directory_pb2.ListPersonsRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.ListPersonsResponse:
        caller = _caller(request)
        persons, token, total = await self._service.list_persons(
            caller,
            page_from(request.page.page_size, request.page.page_token),
            query=request.query,
            active=_opt(request, "active"),
            portal_access=_opt(request, "portal_access"),
            group_id=parse_id(request.group_id, "group") if request.group_id else None,
            role_id=parse_id(request.role_id, "role") if request.role_id else None,
            ids=_ids(request.ids),
        )
        return _persons(persons, token, total)

    @_mapped
    async def PortalUsage(
        self, request: directory_pb2.PortalUsageRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.ListPersonsResponse:
        persons, token, total = await self._service.portal_usage(
            _caller(request),
            page_from(request.page.page_size, request.page.page_token),
            request.filter,
            request.stale_days,
        )
        return _persons(persons, token, total)

    @_mapped
    async def RecordPortalLogin(
        self, request: directory_pb2.RecordPortalLoginRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        caller = _caller(request)
        await self._service.record_portal_login(caller, parse_id(request.person_id, "person"))
        return common_pb2.Empty()

    @_mapped
    async def RegisterPerson(
        self, request: directory_pb2.RegisterPersonRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Person:
        person = await self._service.register_person(
            parse_id(request.workspace_id, "workspace"), request.email, request.name
        )
        return person_pb(person)

    @_mapped
    async def ListPermissionCatalog(
        self, request: directory_pb2.ListPermissionCatalogRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.PermissionCatalog:
        return directory_pb2.PermissionCatalog(permissions=list(CATALOG))

    @_mapped
    async def ListRoles(
        self, request: directory_pb2.ListRolesRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.ListRolesResponse:
        roles = await self._service.list_roles(_caller(request))
        return directory_pb2.ListRolesResponse(roles=[role_pb(r) for r in roles])

    @_mapped
    async def CreateRole(
        self, request: directory_pb2.CreateRoleRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Role:
        role = await self._service.create_role(
            _caller(request), request.name, request.description, list(request.permissions)
        )
        return role_pb(role)

    @_mapped
    async def UpdateRole(
        self, request: directory_pb2.UpdateRoleRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Role:
        caller = _caller(request)
        role = await self._service.update_role(
            caller,
            parse_id(request.role_id, "role"),
            _opt(request, "name"),
            _opt(request, "description"),
            list(request.permissions) if request.set_permissions else None,
        )
        return role_pb(role)

    @_mapped
    async def DeleteRole(
        self, request: directory_pb2.DeleteRoleRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        caller = _caller(request)
        await self._service.delete_role(caller, parse_id(request.role_id, "role"), request.force)
        return common_pb2.Empty()

    @_mapped
    async def GrantRole(
        self, request: directory_pb2.PersonRoleRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        caller = _caller(request)
        await self._service.grant_role(
            caller, parse_id(request.person_id, "person"), parse_id(request.role_id, "role"), True
        )
        return common_pb2.Empty()

    @_mapped
    async def RevokeRole(
        self, request: directory_pb2.PersonRoleRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        caller = _caller(request)
        await self._service.grant_role(
            caller, parse_id(request.person_id, "person"), parse_id(request.role_id, "role"), False
        )
        return common_pb2.Empty()

    @_mapped
    async def ListGroups(
        self, request: directory_pb2.ListGroupsRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.ListGroupsResponse:
        groups = await self._service.list_groups(_caller(request))
        return directory_pb2.ListGroupsResponse(groups=[group_pb(g) for g in groups])

    @_mapped
    async def GetGroup(
        self, request: directory_pb2.GetGroupRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Group:
        caller = _caller(request)
        return group_pb(await self._service.get_group(caller, parse_id(request.group_id, "group")))

    @_mapped
    async def CreateGroup(
        self, request: directory_pb2.CreateGroupRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Group:
        caller = _caller(request)
        group = await self._service.create_group(
            caller,
            request.name,
            request.description,
            [parse_id(r, "role") for r in request.role_ids],
        )
        return group_pb(group)

    @_mapped
    async def UpdateGroup(
        self, request: directory_pb2.UpdateGroupRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Group:
        caller = _caller(request)
        group = await self._service.update_group(
            caller,
            parse_id(request.group_id, "group"),
            _opt(request, "name"),
            _opt(request, "description"),
            [parse_id(r, "role") for r in request.role_ids] if request.set_role_ids else None,
        )
        return group_pb(group)

    @_mapped
    async def DeleteGroup(
        self, request: directory_pb2.DeleteGroupRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        caller = _caller(request)
        await self._service.delete_group(caller, parse_id(request.group_id, "group"))
        return common_pb2.Empty()

    @_mapped
    async def AddGroupMember(
        self, request: directory_pb2.GroupMemberRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        caller = _caller(request)
        await self._service.set_member(
            caller, parse_id(request.group_id, "group"), parse_id(request.person_id, "person"), True
        )
        return common_pb2.Empty()

    @_mapped
    async def RemoveGroupMember(
        self, request: directory_pb2.GroupMemberRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        caller = _caller(request)
        await self._service.set_member(
            caller,
            parse_id(request.group_id, "group"),
            parse_id(request.person_id, "person"),
            False,
        )
        return common_pb2.Empty()

    @_mapped
    async def GetEffectivePermissions(
        self,
        request: directory_pb2.GetEffectivePermissionsRequest,
        context: grpc.aio.ServicerContext,
    ) -> directory_pb2.EffectivePermissions:
        caller = _caller(request)
        result = await self._service.effective_permissions(
            caller, parse_id(request.person_id, "person")
        )
        return directory_pb2.EffectivePermissions(
            person_id=str(result.person_id),
            permissions=list(result.permissions),
            active=result.active,
            portal_access=result.portal_access,
        )

    @_mapped
    async def ListPersonsWithPermission(
        self,
        request: directory_pb2.ListPersonsWithPermissionRequest,
        context: grpc.aio.ServicerContext,
    ) -> directory_pb2.ListPersonsResponse:
        persons, token, total = await self._service.persons_with_permission(
            _caller(request),
            request.permission,
            page_from(request.page.page_size, request.page.page_token),
        )
        return _persons(persons, token, total)

    @_mapped
    async def StartImport(
        self, request: directory_pb2.StartImportRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.ImportJob:
        job = await self._service.start_import(
            _caller(request), request.format, request.content, request.dry_run
        )
        return job_pb(job)

    @_mapped
    async def GetImport(
        self, request: directory_pb2.GetImportRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.ImportJob:
        caller = _caller(request)
        return job_pb(await self._service.get_import(caller, parse_id(request.import_id, "import")))

    @_mapped
    async def ListAudit(
        self, request: directory_pb2.ListAuditRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.ListAuditResponse:
        entries, token = await self._service.list_audit(
            _caller(request),
            page_from(request.page.page_size, request.page.page_token, int),
            request.object_type,
            request.object_id,
        )
        return directory_pb2.ListAuditResponse(
            entries=[audit_pb(e) for e in entries], next_page_token=token
        )


def _ids(values: Sequence[str]) -> list[uuid.UUID] | None:
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
