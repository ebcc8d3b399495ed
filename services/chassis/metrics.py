"""Prometheus metrics shared by the services, served on a port per process."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

GRPC_REQUESTS = Counter(
    "frontdesk_grpc_requests_total", "gRPC calls handled", ["service", "method", "code"]
)
GRPC_LATENCY = Histogram(
    "frontdesk_grpc_request_seconds", "gRPC call latency", ["service", "method"]
)
OUTBOX_PUBLISHED = Counter("frontdesk_outbox_published_total", "Outbox events published")
OUTBOX_FAILURES = Counter("frontdesk_outbox_failures_total", "Outbox relay failures")
EVENTS_HANDLED = Counter(
    "frontdesk_events_handled_total", "Events handled by consumers", ["consumer", "outcome"]
)


def serve(port: int) -> None:
    """Expose /metrics on `port` (0 turns it off)."""
    if port:
        start_http_server(port)
