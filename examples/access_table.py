"""An example internal service: an in-memory "who may access" table of one workspace, kept
current from Frontdesk's access-change feed with the frontdesk_events library.

    python examples/access_table.py --nats nats://127.0.0.1:4222 \
        --directory 127.0.0.1:50061 --workspace <workspace id> [--http 8099]

It bootstraps from the directory's access snapshot, then follows FD_DIRECTORY with a durable
consumer from the snapshot's sequence, so no change between the two is lost; it survives NATS
restarts (the consumer keeps its place). With --http it answers GET /table and
GET /persons/<id> with what it knows (active, portal access, effective permissions).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from typing import Any

from aiohttp import web

from frontdesk_events import AccessState, Feed
from services.chassis.identity import Identity
from services.chassis.settings import IdentitySettings

log = logging.getLogger("access_table")


class AccessTable:
    """The table and the loop that keeps it."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.state = AccessState()
        self.applied = 0
        self.last_sequence = 0
        self.ready = asyncio.Event()

    async def run(self, durable: str = "access-table") -> None:
        snapshot = await self.feed.bootstrap()
        self.state.load(snapshot)
        self.last_sequence = snapshot.sequence
        self.ready.set()
        log.info(
            "bootstrapped %d persons at sequence %d", len(self.state.persons), snapshot.sequence
        )
        async for event in self.feed.follow(durable):
            refetch = self.state.apply(event)
            if refetch:
                self.state.load(await self.feed.snapshot(refetch), replace=False)
            self.applied += 1
            self.last_sequence = event.stream_sequence

    def table(self) -> dict[str, dict[str, Any]]:
        return {
            pid: {"active": a, "portal_access": p, "permissions": sorted(perms)}
            for pid, (a, p, perms) in self.state.table().items()
        }


def http_app(table: AccessTable) -> web.Application:
    async def whole(request: web.Request) -> web.Response:
        return web.json_response(
            {"sequence": table.last_sequence, "applied": table.applied, "persons": table.table()}
        )

    async def one(request: web.Request) -> web.Response:
        entry = table.table().get(request.match_info["person_id"])
        if entry is None:
            return web.json_response(
                {"error": {"code": "not_found", "message": "unknown person"}}, status=404
            )
        return web.json_response(entry)

    app = web.Application()
    app.router.add_get("/table", whole)
    app.router.add_get("/persons/{person_id}", one)
    return app


async def main(args: argparse.Namespace) -> None:
    # Calls to the directory carry this service's signed principal: its key in
    # FRONTDESK_IDENTITY_KEY_FILE, registered with auth like every component's.
    identity = Identity.from_settings(args.name, IdentitySettings.from_env(os.environ))
    feed = Feed(
        args.nats,
        args.directory,
        args.workspace,
        directory_channel=identity.channel(args.directory, "directory"),
    )
    await feed.connect()
    table = AccessTable(feed)
    runner: web.AppRunner | None = None
    if args.http:
        runner = web.AppRunner(http_app(table))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", args.http).start()
    task = asyncio.create_task(table.run(args.durable))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    task.cancel()
    if runner is not None:
        await runner.cleanup()
    await feed.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nats", required=True)
    parser.add_argument("--directory", required=True, help="host:port of the directory (gRPC)")
    parser.add_argument("--workspace", required=True, help="workspace id")
    parser.add_argument("--durable", default="access-table")
    parser.add_argument("--name", default="access-table", help="this service's identity name")
    parser.add_argument("--http", type=int, default=0, help="port for GET /table (0: none)")
    asyncio.run(main(parser.parse_args()))
