"""Log lines are JSON and carry the request id and event id of the work in progress."""

from __future__ import annotations

import json
import logging

from services.chassis.logs import JsonFormatter, event_id_var, request_id_var


def _format(record_msg: str, *args: object, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("svc", logging.INFO, __file__, 1, record_msg, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return json.loads(JsonFormatter("tickets").format(record))


def test_a_line_names_service_level_message_and_extra_fields() -> None:
    line = _format("ticket %s created", "INC-4", ticket_id="t-1")
    assert line["service"] == "tickets"
    assert line["level"] == "info"
    assert line["msg"] == "ticket INC-4 created"
    assert line["ticket_id"] == "t-1"
    assert "request_id" not in line and "event_id" not in line


def test_request_and_event_ids_come_from_the_context() -> None:
    r = request_id_var.set("req-123")
    e = event_id_var.set("evt-456")
    try:
        line = _format("handled")
    finally:
        request_id_var.reset(r)
        event_id_var.reset(e)
    assert line["request_id"] == "req-123"
    assert line["event_id"] == "evt-456"
