"""A small client library for internal services that follow Frontdesk's events.

    feed = Feed(nats_url, directory_addr, workspace_id)
    await feed.connect()
    snapshot = await feed.bootstrap()            # the access state + the stream sequence S
    async for event in feed.follow("my-service"):  # durable consumer from S + 1, de-duplicated
        ...                                       # event.name, event.payload (typed protobuf)

`AccessState` applies a snapshot and the directory's events into "who may access what".
The catalogue of subjects and payloads is protos/asyncapi.json (served at /api/v1/asyncapi.json).
"""

from frontdesk_events.access import AccessState, PersonAccess
from frontdesk_events.feed import Decoded, Feed, Snapshot, decode

__all__ = ["AccessState", "Decoded", "Feed", "PersonAccess", "Snapshot", "decode"]
