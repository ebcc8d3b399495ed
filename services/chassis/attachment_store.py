"""The SQL of the `attachments` table that every service keeping files creates (same columns, in
its own database: see services/tickets/migrations/0002_attachments.sql). Each statement takes
`conn` and filters by workspace_id, except the sweeper's, which work across workspaces and name
the workspace of each row they then touch."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass
class Attachment:
    id: uuid.UUID
    workspace_id: uuid.UUID
    item_kind: str | None  # "ticket", "issue", "control_test"; None while staged
    item_id: uuid.UUID | None
    comment_id: uuid.UUID | None
    uploader_id: uuid.UUID | None
    name: str
    content_type: str
    size: int
    sha256: str
    object_key: str
    state: str
    created_at: datetime
    internal: bool = False  # it belongs to an internal note


_COLUMNS = """
    a.id, a.workspace_id, a.item_kind, a.item_id, a.comment_id, a.uploader_id, a.name,
    a.content_type, a.size, a.sha256, a.object_key, a.state, a.created_at, a.internal
"""


def _attachment(row: asyncpg.Record) -> Attachment:
    return Attachment(
        id=row["id"],
        workspace_id=row["workspace_id"],
        item_kind=row["item_kind"],
        item_id=row["item_id"],
        comment_id=row["comment_id"],
        uploader_id=row["uploader_id"],
        name=row["name"],
        content_type=row["content_type"],
        size=row["size"],
        sha256=row["sha256"],
        object_key=row["object_key"],
        state=row["state"],
        created_at=row["created_at"],
        internal=row["internal"],
    )


async def insert_uploading(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    attachment_id: uuid.UUID,
    uploader_id: uuid.UUID | None,
    name: str,
    object_key: str,
) -> None:
    await conn.execute(
        """
        insert into attachments (workspace_id, id, uploader_id, name, object_key, state)
        values ($1, $2, $3, $4, $5, 'uploading')
        """,
        workspace_id,
        attachment_id,
        uploader_id,
        name,
        object_key,
    )


async def mark_staged(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    attachment_id: uuid.UUID,
    content_type: str,
    size: int,
    sha256: str,
) -> Attachment:
    row = await conn.fetchrow(
        f"""
        update attachments a set state = 'staged', content_type = $3, size = $4,
            sha256 = $5
        where a.workspace_id = $1 and a.id = $2 and a.state = 'uploading'
        returning {_COLUMNS}
        """,  # noqa: S608
        workspace_id,
        attachment_id,
        content_type,
        size,
        sha256,
    )
    assert row is not None
    return _attachment(row)


async def mark_quarantined(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    attachment_id: uuid.UUID,
    stored: tuple[str, int, str],
    object_key: str,
    malware: str,
) -> None:
    """The upload is infected: kept (for an operator) where no query that serves files looks,
    never staged, attached or swept. `stored` is (content type, size, SHA-256)."""
    content_type, size, sha256 = stored
    await conn.execute(
        """
        update attachments set state = 'quarantined', content_type = $3, size = $4,
            sha256 = $5, object_key = $6, malware = $7
        where workspace_id = $1 and id = $2 and state = 'uploading'
        """,
        workspace_id,
        attachment_id,
        content_type,
        size,
        sha256,
        object_key,
        malware,
    )


async def delete(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, attachment_id: uuid.UUID
) -> None:
    await conn.execute(
        "delete from attachments where workspace_id = $1 and id = $2",
        workspace_id,
        attachment_id,
    )


async def staged_totals(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, uploader_id: uuid.UUID | None
) -> tuple[int, int]:
    """(count, bytes) of the files this person has staged and not attached yet."""
    row = await conn.fetchrow(
        """
        select count(*) as n, coalesce(sum(size), 0) as bytes from attachments
        where workspace_id = $1 and uploader_id is not distinct from $2 and state = 'staged'
        """,
        workspace_id,
        uploader_id,
    )
    assert row is not None
    return int(row["n"]), int(row["bytes"])


async def item_totals(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, kind: str, item_id: uuid.UUID
) -> tuple[int, int]:
    """(count, bytes) of the files attached to an item and its comments."""
    row = await conn.fetchrow(
        """
        select count(*) as n, coalesce(sum(size), 0) as bytes from attachments
        where workspace_id = $1 and item_kind = $2 and item_id = $3 and state = 'attached'
        """,
        workspace_id,
        kind,
        item_id,
    )
    assert row is not None
    return int(row["n"]), int(row["bytes"])


async def attach(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    ids: Sequence[uuid.UUID],
    uploader_id: uuid.UUID | None,
    kind: str,
    item_id: uuid.UUID,
    comment_id: uuid.UUID | None,
    internal: bool,
) -> list[Attachment]:
    """Attach the uploader's staged files `ids`; returns those that were (the caller compares)."""
    rows = await conn.fetch(
        f"""
        update attachments a set state = 'attached', item_kind = $4, item_id = $5,
            comment_id = $6, internal = $7
        where a.workspace_id = $1 and a.id = any($2::uuid[])
            and a.uploader_id is not distinct from $3 and a.state = 'staged'
        returning {_COLUMNS}
        """,  # noqa: S608
        workspace_id,
        list(ids),
        uploader_id,
        kind,
        item_id,
        comment_id,
        internal,
    )
    return sorted((_attachment(r) for r in rows), key=lambda a: ids.index(a.id))


async def list_for_item(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    kind: str,
    item_id: uuid.UUID,
    include_internal: bool,
) -> list[Attachment]:
    rows = await conn.fetch(
        f"""
        select {_COLUMNS} from attachments a
        where a.workspace_id = $1 and a.item_kind = $2 and a.item_id = $3
            and a.state = 'attached' and ($4 or not a.internal)
        order by a.created_at, a.id
        """,  # noqa: S608
        workspace_id,
        kind,
        item_id,
        include_internal,
    )
    return [_attachment(r) for r in rows]


async def get_for_item(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    kind: str,
    item_id: uuid.UUID,
    attachment_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> Attachment | None:
    lock = "for update" if for_update else ""
    row = await conn.fetchrow(
        f"""
        select {_COLUMNS} from attachments a
        where a.workspace_id = $1 and a.item_kind = $2 and a.item_id = $3 and a.id = $4
            and a.state = 'attached'
        {lock}
        """,  # noqa: S608
        workspace_id,
        kind,
        item_id,
        attachment_id,
    )
    return _attachment(row) if row is not None else None


async def mark_removed(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, attachment_id: uuid.UUID
) -> None:
    await conn.execute(
        "update attachments set state = 'removed' where workspace_id = $1 and id = $2",
        workspace_id,
        attachment_id,
    )


async def expire_abandoned(conn: asyncpg.Connection, older_than: datetime) -> int:
    """Mark uploads and staged files older than `older_than` removed (abandoned: the item's
    transaction failed or the client went away). A file marked so can no longer be attached."""
    status: str = await conn.execute(
        """
        update attachments set state = 'removed'
        where state in ('uploading', 'staged') and created_at < $1
        """,
        older_than,
    )
    return int(status.rsplit(" ", 1)[-1])


async def removed(conn: asyncpg.Connection, limit: int) -> list[Attachment]:
    """Rows marked removed, whose objects the sweeper deletes (then the rows)."""
    rows = await conn.fetch(
        f"""
        select {_COLUMNS} from attachments a where a.state = 'removed'
        order by a.created_at limit $1
        """,  # noqa: S608
        limit,
    )
    return [_attachment(r) for r in rows]


async def delete_removed(
    conn: asyncpg.Connection, workspace_id: uuid.UUID, attachment_id: uuid.UUID
) -> None:
    await conn.execute(
        "delete from attachments where workspace_id = $1 and id = $2 and state = 'removed'",
        workspace_id,
        attachment_id,
    )
