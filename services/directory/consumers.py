"""NATS consumers of the directory service: its own events, turned into webhook deliveries
(the directory publishes the access-change events that auth and the gateway consume).

A consumer added here is a durable JetStream consumer (`services.chassis.inbox.Consumer`) whose
effect commits with its inbox row, so a redelivered event changes nothing; app.py runs them.
"""

from __future__ import annotations

import asyncpg
from nats.js import JetStreamContext

from services.chassis.inbox import Consumer
from services.directory.webhooks import webhook_consumer


def consumers(pool: asyncpg.Pool, js: JetStreamContext) -> list[Consumer]:
    """The durable consumers this service runs: "directory-webhooks"."""
    return [webhook_consumer(pool, js)]
