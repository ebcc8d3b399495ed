"""SCIM 2.0 provisioning (RFC 7643/7644) of a workspace's persons and groups: the use cases.

Identity providers (Entra ID, Okta) create, replace, patch, deactivate and search Users and
Groups with a workspace SCIM token, checked in the transaction of every call. Every change is
one transaction with its audit rows and the same access-change events as the console writes
(person_deactivated ends sessions at once; a membership change is group_member_added/removed).
DELETE deactivates a User and hides the resource; nothing is lost. Payloads and patches are
validated and applied by scim2-models. What a User or a Group is lives in scim_users and
scim_groups; the protocol pieces in scim_support.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
from frontdesk.v1 import events_pb2
from scim2_models import Context, PatchOp

from services.chassis import outbox
from services.chassis.caller import Caller
from services.chassis.errors import InvalidField
from services.directory import (
    events,
    scim_filter,
    scim_groups,
    scim_store,
    scim_users,
    store,
    store_groups,
    store_persons,
)
from services.directory.domain import clean_name, require
from services.directory.scim_models import (
    DEFAULT_COUNT,
    MAX_RESULTS,
    MODELS,
    POLICY,
    resource_types,
    schemas,
    service_provider_config,
)
from services.directory.scim_support import (
    Document,
    ScimCall,
    ScimError,
    check_match,
    list_response,
    loads,
    resource_id,
    respond,
    response_params,
    scim_errors,
    token_hash,
)

log = logging.getLogger(__name__)

TOKEN_PREFIX = "fdscim_"


class ScimService:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @contextlib.asynccontextmanager
    async def _tx(self, call: ScimCall) -> AsyncIterator[tuple[asyncpg.Connection, str]]:
        """A transaction in which the call's token is checked; yields (conn, audit actor)."""
        async with self._pool.acquire() as conn, conn.transaction():
            token_id = await self._authenticate(conn, call)
            yield conn, f"scim:{token_id}"

    async def _authenticate(self, conn: asyncpg.Connection, call: ScimCall) -> uuid.UUID:
        if not call.token.startswith(TOKEN_PREFIX):
            raise ScimError(401, "a workspace SCIM token is required")
        token_id = await scim_store.live_token(conn, call.workspace_id, token_hash(call.token))
        if token_id is None:
            raise ScimError(401, "the SCIM token is unknown or revoked")
        return token_id

    # ---- discovery ----

    async def discover(self, call: ScimCall, endpoint: str, item: str) -> Document:
        async with self._pool.acquire() as conn:
            await self._authenticate(conn, call)
        base = call.base_url
        if endpoint == "ServiceProviderConfig":
            return Document(service_provider_config(base))
        docs = resource_types(base) if endpoint == "ResourceTypes" else schemas(base)
        if endpoint not in ("ResourceTypes", "Schemas"):
            raise ScimError(404, f"unknown endpoint {endpoint}")
        if item:
            for doc in docs:
                if doc.get("id") == item:
                    return Document(doc, location=doc["meta"]["location"])
            raise ScimError(404, f"{endpoint[:-1]} {item!r} not found")
        return Document(list_response(docs, len(docs), 1))

    # ---- reads ----

    async def get(
        self, call: ScimCall, rtype: str, item: str, attributes: str, excluded: str
    ) -> Document:
        params = response_params(attributes, excluded)
        async with self._tx(call) as (conn, _):
            doc = await self._read(conn, call, rtype, resource_id(item, rtype))
        return respond(doc, rtype, params)

    async def _read(
        self, conn: asyncpg.Connection, call: ScimCall, rtype: str, item: uuid.UUID
    ) -> dict[str, Any]:
        docs = await self._render(conn, call, rtype, [item])
        if not docs:
            raise ScimError(404, f"{rtype} {item} not found")
        return docs[0]

    async def _render(
        self, conn: asyncpg.Connection, call: ScimCall, rtype: str, ids: list[uuid.UUID]
    ) -> list[dict[str, Any]]:
        if rtype == "User":
            return await scim_users.render_users(conn, call, ids)
        return await scim_groups.render_groups(conn, call, ids)

    async def search(
        self,
        call: ScimCall,
        rtype: str,
        filter_text: str,
        start_index: int,
        count: int | None,
        sort_by: str,
        sort_order: str,
        attributes: str,
        excluded: str,
    ) -> Document:
        params = response_params(attributes, excluded)
        if rtype and rtype not in MODELS:
            raise ScimError(404, f"unknown resource type {rtype}")
        start = max(start_index, 1)
        size = DEFAULT_COUNT if count is None else max(0, min(count, MAX_RESULTS))
        # POST /.search (no resource type) searches Users, then Groups; an attribute only one
        # of them has makes the filter false for the other (RFC 7644 §3.4.2.1).
        types = [rtype] if rtype else ["User", "Group"]
        queries: list[tuple[str, str, str, list[Any]]] = []
        for each in types:
            args: list[Any] = [call.workspace_id]
            columns = scim_filter.USER_COLUMNS if each == "User" else scim_filter.GROUP_COLUMNS
            default = (
                scim_filter.USER_SORT_DEFAULT if each == "User" else scim_filter.GROUP_SORT_DEFAULT
            )
            try:
                with scim_errors():
                    where = scim_filter.where_clause(filter_text, MODELS[each], columns, args)
                    order = scim_filter.sort_clause(sort_by, sort_order, columns, default)
            except ScimError:
                if rtype:
                    raise
                continue
            queries.append((each, where, order, args))
        if not queries:
            raise ScimError(
                400, "the filter names attributes no resource type has", "invalidFilter"
            )
        shown: list[dict[str, Any]] = []
        total = 0
        offset, room = start - 1, size
        async with self._tx(call) as (conn, _):
            for each, where, order, args in queries:
                search = scim_store.search_users if each == "User" else scim_store.search_groups
                ids, found = await search(
                    conn, call.workspace_id, where, args, order, max(offset, 0), room
                )
                total += found
                offset -= found
                room -= len(ids)
                docs = await self._render(conn, call, each, ids)
                shown.extend(respond(d, each, params).body for d in docs)
        return Document(list_response(shown, total, start))

    # ---- writes ----

    async def create(
        self, call: ScimCall, rtype: str, raw: bytes, attributes: str, excluded: str
    ) -> Document:
        params = response_params(attributes, excluded)
        payload = loads(raw, rtype)
        with scim_errors():
            model = MODELS[rtype].model_validate(
                payload, scim_ctx=Context.RESOURCE_CREATION_REQUEST, scim_policy=POLICY
            )
        async with self._tx(call) as (conn, actor):
            if rtype == "User":
                item = await scim_users.write_user(conn, call, actor, None, model)
            else:
                item = await scim_groups.write_group(conn, call, actor, None, model)
            doc = await self._read(conn, call, rtype, item)
        return respond(doc, rtype, params)

    async def replace(
        self,
        call: ScimCall,
        rtype: str,
        item: str,
        raw: bytes,
        if_match: str,
        attributes: str,
        excluded: str,
    ) -> Document:
        params = response_params(attributes, excluded)
        payload = loads(raw, rtype)
        target = resource_id(item, rtype)
        with scim_errors():
            model = MODELS[rtype].model_validate(
                payload, scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST, scim_policy=POLICY
            )
        async with self._tx(call) as (conn, actor):
            await self._lock(conn, call, rtype, target)
            current = await self._read(conn, call, rtype, target)
            check_match(if_match, current["meta"]["version"])
            with scim_errors():
                original = MODELS[rtype].model_validate(current, scim_policy=POLICY)
                model.replace(original)
            if rtype == "User":
                await scim_users.write_user(conn, call, actor, target, model)
            else:
                await scim_groups.write_group(conn, call, actor, target, model)
            doc = await self._read(conn, call, rtype, target)
        return respond(doc, rtype, params)

    async def patch(
        self,
        call: ScimCall,
        rtype: str,
        item: str,
        raw: bytes,
        if_match: str,
        attributes: str,
        excluded: str,
    ) -> Document:
        params = response_params(attributes, excluded)
        payload = loads(raw, rtype)
        target = resource_id(item, rtype)
        model_type = MODELS[rtype]
        with scim_errors():
            operations = PatchOp[model_type].model_validate(  # type: ignore[valid-type]
                payload, scim_ctx=Context.RESOURCE_PATCH_REQUEST, scim_policy=POLICY
            )
        async with self._tx(call) as (conn, actor):
            await self._lock(conn, call, rtype, target)
            current = await self._read(conn, call, rtype, target)
            check_match(if_match, current["meta"]["version"])
            with scim_errors():
                model = model_type.model_validate(current, scim_policy=POLICY)
                changed = operations.patch(model, scim_policy=POLICY)
            if changed:
                if rtype == "User":
                    await scim_users.write_user(conn, call, actor, target, model)
                else:
                    await scim_groups.write_group(conn, call, actor, target, model)
                current = await self._read(conn, call, rtype, target)
        return respond(current, rtype, params)

    async def delete(self, call: ScimCall, rtype: str, item: str, if_match: str) -> None:
        """A User is deactivated and hidden from SCIM (its data stays); a Group is deleted."""
        target = resource_id(item, rtype)
        async with self._tx(call) as (conn, actor):
            await self._lock(conn, call, rtype, target)
            current = await self._read(conn, call, rtype, target)
            check_match(if_match, current["meta"]["version"])
            ws = call.workspace_id
            if rtype == "User":
                before = await store_persons.get_person(conn, ws, target)
                assert before is not None
                outgoing: list[events_pb2.Event] = []
                if before.active:
                    await scim_users.keep_an_admin(conn, before)
                    after = replace(before, active=False)
                    await store_persons.update_person(conn, after)
                    outgoing.append(
                        events.person_changed("person_deactivated", after, "", ["active"])
                    )
                await scim_store.mark_user_deleted(conn, ws, target, current["userName"])
                await store.insert_audit(
                    conn,
                    ws,
                    actor,
                    "person.scim_deleted",
                    "person",
                    str(target),
                    before.as_json(),
                    {**before.as_json(), "active": False},
                )
                await outbox.add_many(conn, outgoing)
                return
            group = await store_groups.get_group(conn, ws, target)
            assert group is not None
            if group.builtin:
                raise ScimError(409, f"the built-in group {group.name!r} cannot be deleted")
            members = await store_groups.group_member_ids(conn, ws, target)
            await store_groups.delete_group(conn, ws, target)
            await store.insert_audit(
                conn,
                ws,
                actor,
                "group.deleted",
                "group",
                str(target),
                {**group.as_json(), "member_count": len(members)},
                None,
            )
            await outbox.add(conn, events.group_changed("group_deleted", group, members, ""))

    async def _lock(
        self, conn: asyncpg.Connection, call: ScimCall, rtype: str, target: uuid.UUID
    ) -> None:
        """Lock the row a write changes, so If-Match is checked against what we then change."""
        if rtype == "User":
            found = (
                await store_persons.get_person(conn, call.workspace_id, target, for_update=True)
                is not None
            )
        else:
            found = (
                await store_groups.get_group(conn, call.workspace_id, target, for_update=True)
                is not None
            )
        if not found:
            raise ScimError(404, f"{rtype} {target} not found")

    # ---- tokens (console, Settings:manage) ----

    async def create_token(self, caller: Caller, name: str) -> tuple[scim_store.TokenRow, str]:
        """The secret is returned once; only its hash is stored. Writes an audit row."""
        require(caller, "Settings:manage")
        name = clean_name(name)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self._pool.acquire() as conn, conn.transaction():
            if await store.get_settings(conn, caller.workspace_id) is None:
                raise InvalidField("workspace", "not found")
            row = await scim_store.insert_token(
                conn,
                caller.workspace_id,
                uuid.uuid4(),
                name,
                token_hash(secret),
                secret[: len(TOKEN_PREFIX) + 4],
                caller.actor,
            )
            await store.insert_audit(
                conn,
                caller.workspace_id,
                caller.actor,
                "scim_token.created",
                "scim_token",
                str(row.id),
                None,
                {"name": name, "prefix": row.prefix},
            )
        return row, secret

    async def list_tokens(self, caller: Caller) -> list[scim_store.TokenRow]:
        require(caller, "Settings:manage")
        async with self._pool.acquire() as conn:
            return await scim_store.list_tokens(conn, caller.workspace_id)

    async def revoke_token(self, caller: Caller, token_id: uuid.UUID) -> scim_store.TokenRow | None:
        """Takes effect on the next SCIM call (each call checks the token). Writes an audit row."""
        require(caller, "Settings:manage")
        async with self._pool.acquire() as conn, conn.transaction():
            row = await scim_store.revoke_token(conn, caller.workspace_id, token_id)
            if row is not None:
                await store.insert_audit(
                    conn,
                    caller.workspace_id,
                    caller.actor,
                    "scim_token.revoked",
                    "scim_token",
                    str(token_id),
                    None,
                    {"name": row.name},
                )
        return row
