"""Prometheus metrics shared by the services, served on a port per process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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

# Supervised jobs and readiness (services/chassis/jobs.py, health.py).
JOB_RESTARTS = Counter(
    "frontdesk_job_restarts_total",
    "Restarts of supervised jobs after a failure",
    ["service", "job"],
)
JOB_UP = Gauge("frontdesk_job_up", "1 while a supervised job runs", ["service", "job"])
READY = Gauge("frontdesk_ready", "1 while the service is ready (database, jobs)", ["service"])
DEPENDENCY_UP = Gauge(
    "frontdesk_dependency_up",
    "1 while a dependency of the service answers its probe (database, nats, clamd)",
    ["service", "dependency"],
)
# Uploads scanned by clamd (services/chassis/attachments.py): clean, infected, unavailable,
# too_large (over clamd's StreamMaxLength).
MALWARE_SCANS = Counter(
    "frontdesk_malware_scans_total", "Uploads scanned for malware", ["service", "outcome"]
)
# The event pipeline's backlog (services/chassis/housekeeping.py).
OUTBOX_UNSENT = Gauge("frontdesk_outbox_unsent", "Outbox rows not yet published", ["service"])
OUTBOX_OLDEST_UNSENT = Gauge(
    "frontdesk_outbox_oldest_unsent_seconds", "Age of the oldest unsent outbox row", ["service"]
)
CONSUMER_PENDING = Gauge(
    "frontdesk_consumer_pending",
    "Messages not yet delivered to a durable consumer (JetStream num_pending)",
    ["service", "consumer"],
)
DEAD_LETTERS = Gauge("frontdesk_dead_letters", "Dead letters not replayed", ["service", "consumer"])
RETENTION_DELETED = Counter(
    "frontdesk_retention_deleted_total", "Rows removed by retention", ["service", "table"]
)


def serve(port: int) -> None:
    """Expose /metrics on `port` (0 turns it off)."""
    if port:
        start_http_server(port)
