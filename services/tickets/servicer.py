"""The gRPC face of the tickets service: proto <-> domain, domain errors -> status codes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from frontdesk.v1 import common_pb2, tickets_pb2, tickets_pb2_grpc

from services.chassis.attachments import reason_metadata
from services.chassis.errors import InvalidArgument
from services.chassis.grpcio import maps_errors
from services.chassis.upload_stream import ReceivedUpload
from services.tickets import convert
from services.tickets.domain import Edit, NewTicket, Status
from services.tickets.service import TicketService

_mapped = maps_errors(trailing=reason_metadata)


class TicketServicer(tickets_pb2_grpc.TicketServiceServicer):
    def __init__(self, service: TicketService) -> None:
        self._service = service

    async def Ping(
        self,
        request: tickets_pb2.PingTicketsRequest,
        context: grpc.aio.ServicerContext,
    ) -> common_pb2.Empty:
        return common_pb2.Empty()

    @_mapped
    async def CreateTicket(
        self,
        request: tickets_pb2.CreateTicketRequest,
        context: grpc.aio.ServicerContext,
    ) -> tickets_pb2.Ticket:
        actor = convert.actor()
        problems: list[str] = []
        new = NewTicket(
            type=convert.ticket_type(problems, "type", request.type),
            title=request.title,
            description=request.description,
            impact=convert.level(problems, "impact", request.impact),
            urgency=convert.level(problems, "urgency", request.urgency),
            reason=request.reason,
            risk=convert.level(problems, "risk", request.risk),
            planned_start=convert.time_in(problems, "planned_start", request),
            planned_end=convert.time_in(problems, "planned_end", request),
            idempotency_key=request.idempotency_key,
            requester_id=request.requester_id,
        )
        if problems:
            raise InvalidArgument(problems)
        ticket = await self._service.create(actor, new, list(request.attachment_ids))
        return convert.ticket_out(ticket)

    @_mapped
    async def GetTicket(
        self,
        request: tickets_pb2.GetTicketRequest,
        context: grpc.aio.ServicerContext,
    ) -> tickets_pb2.TicketDetail:
        actor = convert.actor()
        detail = await self._service.get(actor, request.ticket_id)
        return convert.detail_out(detail)

    def _statuses(self, problems: list[str], values: list[int]) -> tuple[Status, ...]:
        out: list[Status] = []
        for value in values:
            found = convert.status(problems, "statuses", value)
            if found is not None and found not in out:
                out.append(found)
        return tuple(out)

    @_mapped
    async def ListMyTickets(
        self,
        request: tickets_pb2.ListMyTicketsRequest,
        context: grpc.aio.ServicerContext,
    ) -> tickets_pb2.ListTicketsResponse:
        actor = convert.actor()
        problems: list[str] = []
        statuses = self._statuses(problems, list(request.statuses))
        type_ = convert.ticket_type(problems, "type", request.type)
        if problems:
            raise InvalidArgument(problems)
        tickets, token = await self._service.list_mine(
            actor,
            statuses=statuses,
            type_=type_,
            query=request.query,
            page_size_=request.page.page_size,
            page_token=request.page.page_token,
        )
        return tickets_pb2.ListTicketsResponse(
            tickets=[convert.ticket_out(t) for t in tickets], next_page_token=token
        )

    @_mapped
    async def ListTickets(
        self,
        request: tickets_pb2.ListTicketsRequest,
        context: grpc.aio.ServicerContext,
    ) -> tickets_pb2.ListTicketsResponse:
        actor = convert.actor()
        problems: list[str] = []
        statuses = self._statuses(problems, list(request.statuses))
        type_ = convert.ticket_type(problems, "type", request.type)
        sort = convert.sort(problems, request.sort)
        if problems:
            raise InvalidArgument(problems)
        tickets, token = await self._service.list_queue(
            actor,
            statuses=statuses,
            type_=type_,
            priorities=tuple(sorted({int(p) for p in request.priorities})),
            assignee=request.assignee_id,
            requester=request.requester_id,
            query=request.query,
            sort=sort,
            page_size_=request.page.page_size,
            page_token=request.page.page_token,
        )
        return tickets_pb2.ListTicketsResponse(
            tickets=[convert.ticket_out(t) for t in tickets], next_page_token=token
        )

    @_mapped
    async def UpdateTicket(
        self,
        request: tickets_pb2.UpdateTicketRequest,
        context: grpc.aio.ServicerContext,
    ) -> tickets_pb2.Ticket:
        actor = convert.actor()
        problems: list[str] = []
        edit = Edit(
            title=request.title if request.HasField("title") else None,
            description=request.description if request.HasField("description") else None,
            impact=convert.level(problems, "impact", request.impact),
            urgency=convert.level(problems, "urgency", request.urgency),
            reason=request.reason if request.HasField("reason") else None,
            risk=convert.level(problems, "risk", request.risk),
            planned_start=convert.time_in(problems, "planned_start", request),
            planned_end=convert.time_in(problems, "planned_end", request),
            assignee_id=request.assignee_id if request.HasField("assignee_id") else None,
        )
        if problems:
            raise InvalidArgument(problems)
        ticket = await self._service.update(actor, request.ticket_id, edit)
        return convert.ticket_out(ticket)

    @_mapped
    async def ChangeStatus(
        self,
        request: tickets_pb2.ChangeStatusRequest,
        context: grpc.aio.ServicerContext,
    ) -> tickets_pb2.Ticket:
        actor = convert.actor()
        problems: list[str] = []
        target = convert.status(problems, "status", request.status)
        if problems or target is None:
            raise InvalidArgument(problems)
        ticket = await self._service.change_status(actor, request.ticket_id, target, request.note)
        return convert.ticket_out(ticket)

    @_mapped
    async def AddComment(
        self,
        request: tickets_pb2.AddCommentRequest,
        context: grpc.aio.ServicerContext,
    ) -> tickets_pb2.AddCommentResponse:
        actor = convert.actor()
        if request.on_behalf_of:
            actor = await self._service.on_behalf_of(actor, request.on_behalf_of)
        comment, ticket = await self._service.add_comment(
            actor,
            request.ticket_id,
            request.body,
            request.internal,
            list(request.attachment_ids),
            request.idempotency_key,
        )
        return tickets_pb2.AddCommentResponse(
            comment=convert.comment_out(comment), ticket=convert.ticket_out(ticket)
        )

    @_mapped
    async def UploadAttachment(
        self,
        request_iterator: AsyncIterator[tickets_pb2.UploadAttachmentRequest],
        context: grpc.aio.ServicerContext,
    ) -> tickets_pb2.Attachment:
        upload = await ReceivedUpload.open(request_iterator)
        actor = convert.actor()
        try:
            attachment = await self._service.attachments.upload(
                actor, upload.header.ticket_id, upload.header.name, upload.chunks()
            )
        except Exception:
            await upload.drain()
            raise
        return convert.attachment_out(attachment)

    @_mapped
    async def GetAttachment(
        self,
        request: tickets_pb2.GetAttachmentRequest,
        context: grpc.aio.ServicerContext,
    ) -> tickets_pb2.AttachmentDownload:
        actor = convert.actor()
        attachment, url = await self._service.attachments.download(
            actor, request.ticket_id, request.attachment_id
        )
        return tickets_pb2.AttachmentDownload(
            attachment=convert.attachment_out(attachment), url=url
        )

    @_mapped
    async def RemoveAttachment(
        self,
        request: tickets_pb2.RemoveAttachmentRequest,
        context: grpc.aio.ServicerContext,
    ) -> common_pb2.Empty:
        actor = convert.actor()
        await self._service.attachments.remove(actor, request.ticket_id, request.attachment_id)
        return common_pb2.Empty()
