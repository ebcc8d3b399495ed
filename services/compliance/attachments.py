"""Files of compliance items: a control test's evidence (staged by whoever may complete the
test, attached when it is completed, locked with it) and the files of issues and their
comments. Who may see a file is who may see its item; rows and objects are kept by the chassis
(Files). Writes attachment_added / attachment_removed events, and issue history entries.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import asyncpg
from frontdesk.v1 import compliance_events_pb2 as pb
from frontdesk.v1 import events_pb2

from services.chassis import outbox
from services.chassis.attachment_store import Attachment
from services.chassis.attachments import AttachmentRefused, Files, LimitsFor
from services.chassis.caller import Caller
from services.chassis.errors import FailedPrecondition as Conflict
from services.chassis.errors import NotFound
from services.chassis.errors import PermissionDenied as Forbidden
from services.chassis.events import new_event
from services.chassis.malware import Clamd
from services.chassis.objectstore import ObjectStore
from services.compliance import store
from services.compliance.domain import (
    CONTROL_MANAGE,
    ISSUE_MANAGE,
    TEST_UPDATE,
    ControlTest,
    Issue,
    IssueChange,
    can_see_issue,
    can_see_test,
)

ISSUE = "issue"
TEST = "control_test"
KINDS = (ISSUE, TEST)
Loader = Callable[..., Awaitable[object]]


def _id(value: uuid.UUID | None) -> str:
    return str(value) if value else ""


def _event(caller: Caller, name: str, payload: object) -> events_pb2.Event:
    return new_event(str(caller.workspace_id), _id(caller.person_id), "compliance", name, payload)  # type: ignore[arg-type]


class ComplianceAttachments:
    def __init__(
        self,
        pool: asyncpg.Pool,
        objects: ObjectStore | None,
        limits: LimitsFor,
        load_issue: Callable[..., Awaitable[Issue]],
        load_test: Callable[..., Awaitable[ControlTest]],
        scanner: Clamd | None = None,
    ) -> None:
        self._pool = pool
        self.files = Files(pool, objects, "compliance", limits, scanner)
        self._issue = load_issue
        self._test = load_test

    async def _item(
        self, conn: asyncpg.Connection, caller: Caller, kind: str, ref: str
    ) -> Issue | ControlTest:
        """The issue or test `ref` when the caller may see it, else NotFound."""
        if kind == ISSUE:
            issue = await self._issue(conn, caller.workspace_id, ref)
            if not can_see_issue(caller, issue):
                raise NotFound("issue not found")
            return issue
        if kind == TEST:
            test = await self._test(conn, caller.workspace_id, ref)
            if not can_see_test(caller, test):
                raise NotFound("control test not found")
            return test
        raise AttachmentRefused('item_kind: must be "issue" or "control_test"')

    @staticmethod
    def _may_complete(caller: Caller, test: ControlTest) -> None:
        if not (caller.is_self(test.assignee_id) and caller.has(TEST_UPDATE)):
            raise Forbidden("only the assignee with ControlTest:update adds evidence")
        if test.completed:
            raise Conflict("state: the test is completed and its evidence locked")

    async def upload(
        self,
        caller: Caller,
        kind: str,
        ref: str,
        raw_name: str,
        chunks: AsyncIterator[bytes],
    ) -> Attachment:
        """Stage one file for the caller: evidence of test `ref`, a file of issue `ref` (for a
        comment), or of a new issue (kind issue, no ref)."""
        item: tuple[str, uuid.UUID] | None = None
        if kind == ISSUE and not ref.strip():
            if not caller.has(ISSUE_MANAGE):
                raise Forbidden("Issue:manage required")
        else:
            async with self._pool.acquire() as conn:
                found = await self._item(conn, caller, kind, ref)
            if isinstance(found, ControlTest):
                self._may_complete(caller, found)
            elif found.status == "closed":
                raise Conflict("status: a closed issue takes no comments")
            item = (kind, found.id)
        return await self.files.stage(caller.workspace_id, caller.person_id, raw_name, chunks, item)

    async def attach(
        self,
        conn: asyncpg.Connection,
        caller: Caller,
        item: Issue | ControlTest,
        ids: Sequence[uuid.UUID],
        comment_id: uuid.UUID | None = None,
    ) -> list[Attachment]:
        """In the item's transaction: attach staged files; events, and issue history."""
        kind = ISSUE if isinstance(item, Issue) else TEST
        attached = await self.files.attach(
            conn, caller.workspace_id, caller.person_id, (kind, item.id), comment_id, False, ids
        )
        for a in attached:
            if isinstance(item, Issue):
                await store.insert_history(
                    conn,
                    caller.workspace_id,
                    item.id,
                    [IssueChange("attachment", "", a.name, caller.person_id)],
                )
            payload = pb.ComplianceAttachmentAdded(
                item_kind=kind,
                item_id=str(item.id),
                number=item.number,
                attachment_id=str(a.id),
                comment_id=_id(a.comment_id),
                name=a.name,
                size=a.size,
                content_type=a.content_type,
            )
            await outbox.add(conn, _event(caller, "attachment_added", payload))
        return attached

    async def list(
        self, conn: asyncpg.Connection, caller: Caller, item: Issue | ControlTest
    ) -> list[Attachment]:
        kind = ISSUE if isinstance(item, Issue) else TEST
        return await self.files.list(conn, caller.workspace_id, (kind, item.id), True)

    async def download(
        self, caller: Caller, kind: str, ref: str, attachment_ref: str
    ) -> tuple[Attachment, str]:
        async with self._pool.acquire() as conn:
            item = await self._item(conn, caller, kind, ref)
            attachment = await self.files.find(
                conn, caller.workspace_id, (kind, item.id), attachment_ref, True
            )
        return attachment, await self.files.url(attachment)

    async def remove(self, caller: Caller, kind: str, ref: str, attachment_ref: str) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            item = await self._item(conn, caller, kind, ref)
            attachment = await self.files.find(
                conn, caller.workspace_id, (kind, item.id), attachment_ref, True, for_update=True
            )
            manager = caller.has(ISSUE_MANAGE if kind == ISSUE else CONTROL_MANAGE)
            if not (manager or caller.is_self(attachment.uploader_id)):
                raise Forbidden("only the uploader or a manager removes a file")
            if isinstance(item, ControlTest) and item.completed:
                raise Conflict("state: the test is completed and its evidence locked")
            await self.files.mark_removed(conn, attachment)
            if isinstance(item, Issue):
                await store.insert_history(
                    conn,
                    caller.workspace_id,
                    item.id,
                    [IssueChange("attachment", attachment.name, "", caller.person_id)],
                )
            payload = pb.ComplianceAttachmentRemoved(
                item_kind=kind,
                item_id=str(item.id),
                number=item.number,
                attachment_id=str(attachment.id),
                name=attachment.name,
                uploader_id=_id(attachment.uploader_id),
            )
            await outbox.add(conn, _event(caller, "attachment_removed", payload))
        await self.files.purge(attachment)
