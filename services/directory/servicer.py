"""The gRPC face of the directory: requests -> use cases, domain errors -> status codes. Thin;
protobuf <-> domain conversion is in convert.py."""

from __future__ import annotations

from typing import TypeVar

import grpc
from frontdesk.v1 import common_pb2, directory_pb2, directory_pb2_grpc

from services.chassis.caller import Caller, current_caller
from services.chassis.errors import (
    InvalidField,
    NotFound,
)
from services.chassis.grpcio import maps_errors
from services.directory.convert import (
    audit_pb,
    group_pb,
    job_pb,
    optional,
    person_pb,
    persons_page,
    role_pb,
    settings_pb,
    uuid_list,
    workspace_pb,
)
from services.directory.domain import (
    AUDIT_ORDER,
    CATALOG,
    PERSONS_ORDER,
    Notifications,
    parse_id,
    require,
)
from services.directory.service import DirectoryService
from services.directory.service_persons import PersonChange
from services.directory.service_workspaces import SettingsChange

R = TypeVar("R")
_mapped = maps_errors()


def _caller() -> Caller:
    """The verified caller (principal interceptor); the request's own Caller is not believed."""
    return current_caller()


class DirectoryServicer(directory_pb2_grpc.DirectoryServiceServicer):
    def __init__(self, service: DirectoryService) -> None:
        self._service = service

    @_mapped
    async def CreateWorkspace(
        self, request: directory_pb2.CreateWorkspaceRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.CreateWorkspaceResponse:
        require(_caller(), "Workspace:create")
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
            raise InvalidField("by", "give an id or a slug")
        caller = _caller()
        if caller.workspace_id != ws.id and not caller.has("Workspace:read"):
            raise NotFound("workspace not found")
        return workspace_pb(ws)

    @_mapped
    async def GetPortalSettings(
        self, request: directory_pb2.GetPortalSettingsRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.PortalSettings:
        return settings_pb(await self._service.get_settings(_caller()))

    @_mapped
    async def UpdatePortalSettings(
        self, request: directory_pb2.UpdatePortalSettingsRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.PortalSettings:
        change = SettingsChange(
            tickets_enabled=optional(request, "tickets_enabled"),
            issues_enabled=optional(request, "issues_enabled"),
            control_tests_enabled=optional(request, "control_tests_enabled"),
            self_registration=optional(request, "self_registration"),
            registration_domains=list(request.registration_domains)
            if request.set_registration_domains
            else None,
            portal_access_default=optional(request, "portal_access_default"),
            portal_access_rules=[(r.domain, r.portal_access) for r in request.portal_access_rules]
            if request.set_portal_access_rules
            else None,
            require_two_factor=optional(request, "require_two_factor"),
            api_token_max_days=optional(request, "api_token_max_days"),
            attachment_max_file_mb=optional(request, "attachment_max_file_mb"),
            attachment_max_item_mb=optional(request, "attachment_max_item_mb"),
            attachment_max_files=optional(request, "attachment_max_files"),
        )
        return settings_pb(await self._service.update_settings(_caller(), change))

    @_mapped
    async def CreatePerson(
        self, request: directory_pb2.CreatePersonRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Person:
        caller = _caller()
        person = await self._service.create_person(
            caller,
            email=request.email,
            name=request.name,
            login_name=request.login_name,
            portal_access=optional(request, "portal_access"),
            group_ids=[parse_id(g, "group") for g in request.group_ids],
            role_ids=[parse_id(r, "role") for r in request.role_ids],
        )
        return person_pb(person)

    @_mapped
    async def UpdatePerson(
        self, request: directory_pb2.UpdatePersonRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Person:
        caller = _caller()
        n = request.notifications
        change = PersonChange(
            email=optional(request, "email"),
            name=optional(request, "name"),
            login_name=optional(request, "login_name"),
            active=optional(request, "active"),
            portal_access=optional(request, "portal_access"),
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
        caller = _caller()
        return person_pb(
            await self._service.get_person(caller, parse_id(request.person_id, "person"))
        )

    @_mapped
    async def FindPersonByEmail(
        self, request: directory_pb2.FindPersonByEmailRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Person:
        return person_pb(
            await self._service.find_person_by_email(
                _caller(), request.email, or_login_name=request.or_login_name
            )
        )

    @_mapped
    async def ListPersons(
        self, request: directory_pb2.ListPersonsRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.ListPersonsResponse:
        caller = _caller()
        persons, token, total = await self._service.list_persons(
            caller,
            PERSONS_ORDER.page(request.page.page_size, request.page.page_token),
            query=request.query,
            active=optional(request, "active"),
            portal_access=optional(request, "portal_access"),
            group_id=parse_id(request.group_id, "group") if request.group_id else None,
            role_id=parse_id(request.role_id, "role") if request.role_id else None,
            ids=uuid_list(request.ids),
        )
        return persons_page(persons, token, total)

    @_mapped
    async def PortalUsage(
        self, request: directory_pb2.PortalUsageRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.ListPersonsResponse:
        persons, token, total = await self._service.portal_usage(
            _caller(),
            PERSONS_ORDER.page(request.page.page_size, request.page.page_token),
            request.filter,
            request.stale_days,
        )
        return persons_page(persons, token, total)

    @_mapped
    async def RecordPortalLogin(
        self, request: directory_pb2.RecordPortalLoginRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        caller = _caller()
        await self._service.record_portal_login(caller, parse_id(request.person_id, "person"))
        return common_pb2.Empty()

    @_mapped
    async def RegisterPerson(
        self, request: directory_pb2.RegisterPersonRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Person:
        ws = parse_id(request.workspace_id, "workspace")
        caller = _caller()
        require(caller, "Person:register")
        if caller.workspace_id != ws:
            raise NotFound("workspace not found")
        person = await self._service.register_person(
            ws,
            request.email,
            request.name,
            parse_id(request.person_id, "person") if request.person_id else None,
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
        roles = await self._service.list_roles(_caller())
        return directory_pb2.ListRolesResponse(roles=[role_pb(r) for r in roles])

    @_mapped
    async def CreateRole(
        self, request: directory_pb2.CreateRoleRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Role:
        role = await self._service.create_role(
            _caller(), request.name, request.description, list(request.permissions)
        )
        return role_pb(role)

    @_mapped
    async def UpdateRole(
        self, request: directory_pb2.UpdateRoleRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Role:
        caller = _caller()
        role = await self._service.update_role(
            caller,
            parse_id(request.role_id, "role"),
            optional(request, "name"),
            optional(request, "description"),
            list(request.permissions) if request.set_permissions else None,
        )
        return role_pb(role)

    @_mapped
    async def DeleteRole(
        self, request: directory_pb2.DeleteRoleRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        caller = _caller()
        await self._service.delete_role(caller, parse_id(request.role_id, "role"), request.force)
        return common_pb2.Empty()

    @_mapped
    async def GrantRole(
        self, request: directory_pb2.PersonRoleRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        caller = _caller()
        await self._service.grant_role(
            caller, parse_id(request.person_id, "person"), parse_id(request.role_id, "role"), True
        )
        return common_pb2.Empty()

    @_mapped
    async def RevokeRole(
        self, request: directory_pb2.PersonRoleRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        caller = _caller()
        await self._service.grant_role(
            caller, parse_id(request.person_id, "person"), parse_id(request.role_id, "role"), False
        )
        return common_pb2.Empty()

    @_mapped
    async def ListGroups(
        self, request: directory_pb2.ListGroupsRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.ListGroupsResponse:
        groups = await self._service.list_groups(_caller())
        return directory_pb2.ListGroupsResponse(groups=[group_pb(g) for g in groups])

    @_mapped
    async def GetGroup(
        self, request: directory_pb2.GetGroupRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Group:
        caller = _caller()
        return group_pb(await self._service.get_group(caller, parse_id(request.group_id, "group")))

    @_mapped
    async def CreateGroup(
        self, request: directory_pb2.CreateGroupRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.Group:
        caller = _caller()
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
        caller = _caller()
        group = await self._service.update_group(
            caller,
            parse_id(request.group_id, "group"),
            optional(request, "name"),
            optional(request, "description"),
            [parse_id(r, "role") for r in request.role_ids] if request.set_role_ids else None,
        )
        return group_pb(group)

    @_mapped
    async def DeleteGroup(
        self, request: directory_pb2.DeleteGroupRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        caller = _caller()
        await self._service.delete_group(caller, parse_id(request.group_id, "group"))
        return common_pb2.Empty()

    @_mapped
    async def AddGroupMember(
        self, request: directory_pb2.GroupMemberRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        caller = _caller()
        await self._service.set_member(
            caller, parse_id(request.group_id, "group"), parse_id(request.person_id, "person"), True
        )
        return common_pb2.Empty()

    @_mapped
    async def RemoveGroupMember(
        self, request: directory_pb2.GroupMemberRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        caller = _caller()
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
        caller = _caller()
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
            _caller(),
            request.permission,
            PERSONS_ORDER.page(request.page.page_size, request.page.page_token),
        )
        return persons_page(persons, token, total)

    @_mapped
    async def StartImport(
        self, request: directory_pb2.StartImportRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.ImportJob:
        job = await self._service.start_import(
            _caller(), request.format, request.content, request.dry_run
        )
        return job_pb(job)

    @_mapped
    async def ApplyImport(
        self, request: directory_pb2.ApplyImportRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.ImportJob:
        caller = _caller()
        return job_pb(
            await self._service.apply_import(caller, parse_id(request.import_id, "import"))
        )

    @_mapped
    async def GetImport(
        self, request: directory_pb2.GetImportRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.ImportJob:
        caller = _caller()
        return job_pb(await self._service.get_import(caller, parse_id(request.import_id, "import")))

    @_mapped
    async def ListAudit(
        self, request: directory_pb2.ListAuditRequest, context: grpc.aio.ServicerContext
    ) -> directory_pb2.ListAuditResponse:
        entries, token = await self._service.list_audit(
            _caller(),
            AUDIT_ORDER.page(request.page.page_size, request.page.page_token),
            request.object_type,
            request.object_id,
        )
        return directory_pb2.ListAuditResponse(
            entries=[audit_pb(e) for e in entries], next_page_token=token
        )
