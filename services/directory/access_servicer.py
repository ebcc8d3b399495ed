"""The gRPC face of the access snapshot. Thin."""

from __future__ import annotations

import grpc
from frontdesk.v1 import access_pb2, access_pb2_grpc

from services.chassis.caller import current_caller
from services.chassis.errors import NotFound
from services.chassis.grpcio import maps_errors
from services.directory.access import AccessService
from services.directory.domain import parse_id

_mapped = maps_errors()


class AccessServicer(access_pb2_grpc.AccessServiceServicer):
    def __init__(self, service: AccessService) -> None:
        self._service = service

    @_mapped
    async def GetAccessSnapshot(
        self, request: access_pb2.AccessSnapshotRequest, context: grpc.aio.ServicerContext
    ) -> access_pb2.AccessSnapshot:
        ids = None
        if request.person_ids:
            ids = []
            for raw in request.person_ids:
                try:
                    ids.append(parse_id(raw, "person"))
                except NotFound:
                    continue  # unknown ids are skipped
        snap = await self._service.snapshot(
            current_caller(),
            request.page.page_size,
            request.page.page_token,
            ids,
        )
        return access_pb2.AccessSnapshot(
            stream=snap.stream,
            stream_sequence=snap.sequence,
            persons=[
                access_pb2.AccessPerson(
                    person_id=str(p.person_id),
                    email=p.email,
                    name=p.name,
                    active=p.active,
                    portal_access=p.portal_access,
                    permissions=list(p.permissions),
                    group_ids=[str(g) for g in p.group_ids],
                    role_ids=[str(r) for r in p.role_ids],
                )
                for p in snap.persons
            ],
            roles=[
                access_pb2.AccessRole(role_id=str(i), name=n, permissions=list(perms))
                for i, n, perms in snap.roles
            ],
            groups=[
                access_pb2.AccessGroup(group_id=str(i), name=n, role_ids=[str(r) for r in roles])
                for i, n, roles in snap.groups
            ],
            next_page_token=snap.next_page_token,
            total=snap.total,
        )
