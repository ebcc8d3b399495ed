"""NATS connection with unlimited reconnects, and the JetStream streams every service publishes to."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import BadRequestError

from services.chassis.events import STREAMS

log = logging.getLogger(__name__)


async def connect(
    url: str,
    name: str,
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
    on_disconnect: Callable[[], Awaitable[None]] | None = None,
) -> NATS:
    async def disconnected() -> None:
        log.warning("nats disconnected")
        if on_disconnect is not None:
            await on_disconnect()

    async def reconnected() -> None:
        log.info("nats reconnected")
        if on_reconnect is not None:
            await on_reconnect()

    async def on_error(exc: Exception) -> None:
        log.warning("nats error: %s", exc)

    return await nats.connect(
        servers=[url],
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        drain_timeout=5,
        allow_reconnect=True,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=on_error,
    )


async def ensure_streams(js: JetStreamContext, replicas: int = 1) -> None:
    """Create (or keep) one stream per publishing service; duplicates detected for 10 minutes.

    `replicas` copies of each stream on a NATS cluster (FRONTDESK_NATS_STREAM_REPLICAS; 3 on
    the Kubernetes cluster of deploy/k8s, 1 on a single server).
    """
    for service, stream in STREAMS.items():
        config = StreamConfig(
            name=stream,
            subjects=[f"fd.{service}.>"],
            duplicate_window=600.0,
            max_age=7 * 24 * 3600.0,
            num_replicas=replicas,
        )
        try:
            await js.add_stream(config)
        except BadRequestError:
            await js.update_stream(config)
