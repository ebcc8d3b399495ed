"""NATS consumers of the compliance service: none yet (compliance reads persons from the directory over gRPC when it needs them).

A consumer added here is a durable JetStream consumer (`services.chassis.inbox.Consumer`) whose
effect commits with its inbox row, so a redelivered event changes nothing; app.py runs them.
"""

from __future__ import annotations

import asyncpg
from nats.js import JetStreamContext

from services.chassis.inbox import Consumer


def consumers(pool: asyncpg.Pool, js: JetStreamContext) -> list[Consumer]:
    """The durable consumers this service runs (none)."""
    return []
