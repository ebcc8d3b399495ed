"""An issue's comments and change history: their JSON shape and the history shown on its pages."""

from __future__ import annotations

import msgspec
from frontdesk.v1 import compliance_pb2

from gateway.features.compliance.common import STATUSES
from gateway.present import (
    assignee_text,
    change_text,
    pretty_time,
    time_of,
    who,
)


class IssueCommentOut(msgspec.Struct):
    id: str
    author_id: str | None
    body: str
    created_at: str | None


class IssueChangeOut(msgspec.Struct):
    field: str
    old_value: str
    new_value: str
    actor_id: str | None
    note: str
    changed_at: str | None


class CommentIn(msgspec.Struct, forbid_unknown_fields=True):
    body: str = ""  # may be empty when files are attached
    # Files staged with POST .../issues/{id}/uploads, attached with the comment.
    attachment_ids: list[str] = msgspec.field(default_factory=list)


def comment_out(c: compliance_pb2.IssueComment) -> IssueCommentOut:
    return IssueCommentOut(
        id=c.id, author_id=c.author_id or None, body=c.body, created_at=time_of(c, "created_at")
    )


def change_out(h: compliance_pb2.IssueChange) -> IssueChangeOut:
    return IssueChangeOut(
        field=h.field,
        old_value=h.old_value,
        new_value=h.new_value,
        actor_id=h.actor_id or None,
        note=h.note,
        changed_at=time_of(h, "changed_at"),
    )


def issue_history(
    detail: compliance_pb2.IssueDetail, names: dict[str, str], me: str = ""
) -> list[dict[str, str]]:
    out = []
    for h in detail.history:
        old, new = h.old_value, h.new_value
        if h.field == "assignee_id":
            old, new = assignee_text(names, old), assignee_text(names, new)
        if h.field == "status":
            old = STATUSES.get(old, old)
            new = " ".join(
                [STATUSES.get(new.split(" ")[0], new.split(" ")[0]), *new.split(" ")[1:]]
            )
        what = (
            "Created"
            if h.field == "created"
            else change_text(h.field.removesuffix("_id").replace("_", " ").capitalize(), old, new)
        )
        out.append(
            {
                "at": pretty_time(time_of(h, "changed_at")),
                "who": who(names, h.actor_id, me),
                "what": what,
                "note": h.note,
            }
        )
    return out
