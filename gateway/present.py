"""What every feature module does the same way when it turns protos into JSON and pages.

Times (proto Timestamp <-> RFC 3339 text, datetimes, "pretty" page times), enum names, the
portal's stripped-down Caller, query and form parsing, cursor page links, field-error
messages, and the display names of persons. Kept here once so that the features agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from frontdesk.v1 import common_pb2, directory_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.errors import ApiError
from gateway.routing import Ctx

# -- times ----------------------------------------------------------------------------------


def rfc3339(ts: Timestamp, *, whole_seconds: bool = False) -> str:
    """A Timestamp as RFC 3339 text in UTC ("2024-05-01T09:30:00.250000Z")."""
    value = ts.ToDatetime(tzinfo=UTC)
    if whole_seconds:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat().replace("+00:00", "Z")


def time_of(msg: Any, name: str, *, whole_seconds: bool = False) -> str | None:
    """The Timestamp field `name` of `msg` as RFC 3339 text; None when it is not set."""
    if not msg.HasField(name):
        return None
    return rfc3339(getattr(msg, name), whole_seconds=whole_seconds)


def stamp(value: datetime | None) -> Timestamp | None:
    """A datetime as a Timestamp; one without a zone (a form input) is taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def pretty_time(value: str | None) -> str:
    """RFC 3339 text as pages show it: "2024-05-01 09:30 UTC"."""
    if not value:
        return ""
    return value.replace("T", " ")[:16] + " UTC"


# -- enums ----------------------------------------------------------------------------------


def enum_name(wrapper: Any, prefix: str, value: int) -> str:
    """TICKET_STATUS_IN_PROGRESS -> "in_progress"; "" for UNSPECIFIED (0)."""
    if value == 0:
        return ""
    return str(wrapper.Name(value))[len(prefix) :].lower()


def enum_value(wrapper: Any, prefix: str, name: str | None) -> Any:
    """ "in_progress" -> TICKET_STATUS_IN_PROGRESS; 0 (UNSPECIFIED) for "" or None."""
    return int(wrapper.Value(prefix + name.upper())) if name else 0


# -- callers --------------------------------------------------------------------------------


def portal_caller(ctx: Ctx, portal_permissions: Iterable[str]) -> common_pb2.Caller:
    """The Caller for portal calls: only the portal permissions the person holds, never a
    management one, so a service treats a manager in the portal like anyone else."""
    return common_pb2.Caller(
        workspace_id=ctx.workspace_id,
        person_id=ctx.person_id,
        permissions=[p for p in portal_permissions if ctx.has(p)],
    )


def system_caller(ctx: Ctx) -> common_pb2.Caller:
    """A Caller without a person, for reads the page needs whoever asks (names, menus): the
    call carries the gateway's own service principal in the workspace, with the gateway's
    rights only (gateway/principals.py)."""
    return common_pb2.Caller(workspace_id=ctx.workspace_id)


# -- query and form values ------------------------------------------------------------------

TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


def query_params(request: web.Request, keys: Iterable[str]) -> dict[str, str]:
    """The named query parameters, "" for the missing ones (a page's filters)."""
    return {k: request.query.get(k, "") for k in keys}


def copy_given(source: Any, target: Any, names: Iterable[str]) -> None:
    """Set each of `names` on `target` (a protobuf request) that `source` (a PATCH body) gives,
    i.e. is not None: fields left out keep their current value in the service."""
    for name in names:
        value = getattr(source, name)
        if value is not None:
            setattr(target, name, value)


def split_list(raw: str) -> list[str]:
    """ "Open, resolved," -> ["open", "resolved"]."""
    return [part.strip().lower() for part in raw.split(",") if part.strip()]


def flag(raw: str, field: str, fields: dict[str, str]) -> bool | None:
    """A yes/no query value; None when absent; an error in `fields` when it is neither."""
    value = raw.strip().lower()
    if not value:
        return None
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    fields[field] = "use true or false"
    return None


def checked(raw: Mapping[str, str], name: str) -> bool:
    """Whether a form checkbox was ticked (browsers send its value, "on" by default)."""
    return raw.get(name, "") in ("1", "on", "true", "yes")


def me_or(ctx: Ctx, value: str) -> str:
    """A person filter where "me" stands for the signed-in person."""
    value = value.strip()
    return ctx.person_id if value.lower() == "me" else value


def page_request(
    size: int, token: str, fields: dict[str, str], limit: int = 100
) -> common_pb2.PageRequest:
    if size < 1 or size > limit:
        fields["page_size"] = f"must be between 1 and {limit}"
        size = 0  # the caller answers 422; a huge number must not crash building the request
    return common_pb2.PageRequest(page_size=size, page_token=token)


def fields_message(fields: Mapping[str, str]) -> str:
    """{"status": "unknown"} -> "status: unknown" (the message of a 422)."""
    return "; ".join(f"{k}: {v}" for k, v in fields.items())


def raise_invalid(fields: Mapping[str, str]) -> None:
    """A 422 naming every bad field, when there is any."""
    if fields:
        raise ApiError(422, "invalid", fields_message(fields), dict(fields))


def form_errors(exc: ApiError) -> dict[str, str]:
    """The errors to show next to a form's fields; the message alone when it names none."""
    return exc.fields or {"form": exc.message}


def notice(request: web.Request, messages: Mapping[str, str]) -> str:
    """The message for ?done=... after a successful POST (redirect-after-post)."""
    return messages.get(request.query.get("done", ""), "")


# -- page links -----------------------------------------------------------------------------


def filter_query(params: Mapping[str, str]) -> str:
    """The filters of a list page as a query string, without its page token."""
    return urlencode({k: v for k, v in params.items() if v and k != "page_token"})


def page_links(path: str, params: Mapping[str, str], next_token: str) -> tuple[str, str]:
    """(first page link when not on the first page, next page link when there is one)."""
    query = {k: v for k, v in params.items() if v and k != "page_token"}
    first = f"{path}?{urlencode(query)}" if params.get("page_token") else ""
    nxt = f"{path}?{urlencode({**query, 'page_token': next_token})}" if next_token else ""
    return first, nxt


# -- responses ------------------------------------------------------------------------------


def see_other(location: str) -> web.Response:
    """A 303 returned (not raised), so the cookies queued on ctx go with it."""
    return web.Response(status=303, headers={"Location": location})


# -- persons --------------------------------------------------------------------------------

NAME_BATCH = 500  # ids per ListPersons call (the directory's largest page)
_NAMES: web.RequestKey[dict[str, str]] = web.RequestKey("frontdesk_person_names")


def display_name(person: directory_pb2.Person) -> str:
    return person.name or person.email or person.id[:8]


def remember_names(ctx: Ctx, persons: Iterable[directory_pb2.Person]) -> None:
    """Names a page already holds (a persons list) need no lookup later in the request."""
    memo = ctx.request.setdefault(_NAMES, {})
    for p in persons:
        memo[p.id] = display_name(p)


async def person_names(ctx: Ctx, ids: Iterable[str]) -> dict[str, str]:
    """Display names of persons for a page, in one directory call; best effort: an id the
    directory cannot name (unknown, another workspace's, or the directory is down) stays short.

    Answers are remembered for the rest of the request.
    """
    memo = ctx.request.setdefault(_NAMES, {})
    wanted = {pid for pid in ids if pid}
    missing = sorted(wanted - memo.keys())
    caller = system_caller(ctx)
    for start in range(0, len(missing), NAME_BATCH):
        chunk = missing[start : start + NAME_BATCH]
        try:
            found = await ctx.call(
                ctx.backends.directory.ListPersons,
                directory_pb2.ListPersonsRequest(
                    caller=caller, ids=chunk, page=common_pb2.PageRequest(page_size=len(chunk))
                ),
                safe=True,
            )
        except ApiError:
            found = directory_pb2.ListPersonsResponse()
        named = {p.id: display_name(p) for p in found.persons}
        memo.update({pid: named.get(pid, pid[:8]) for pid in chunk})
    return {pid: memo[pid] for pid in wanted}


def who(names: Mapping[str, str], person_id: str, me: str = "", default: str = "System") -> str:
    """The author or actor as a page shows it: "You", a name, or `default` for nobody."""
    if me and person_id == me:
        return "You"
    return names.get(person_id, default) if person_id else default


def assignee_text(names: Mapping[str, str], person_id: str) -> str:
    return names.get(person_id, person_id) if person_id else "nobody"


def change_text(label: str, old: str, new: str) -> str:
    return f"{label}: {old or '—'} → {new or '—'}"


def forget_sessions(ctx: Ctx, person_id: str) -> None:
    """After auth ended a person's sessions: this replica stops honouring them at once (its
    cached copies go); the other replicas drop theirs on auth's session_revoked event."""
    ctx.state.caches.drop_sessions_of(ctx.workspace_id, person_id)
