"""The auth service's events (AuthEvent payloads in the Event envelope), written to the outbox.

They carry person ids, session ids (token hashes) and addresses, never e-mails, tokens or codes.
"""

from __future__ import annotations

from frontdesk.v1 import auth_events_pb2, events_pb2

from services.chassis.events import new_event


def login_succeeded(
    ws: str, person_id: str, surface: str, method: str, client_ip: str, user_agent: str = ""
) -> events_pb2.Event:
    payload = auth_events_pb2.LoginSucceeded(
        person_id=person_id,
        surface=surface,
        method=method,
        client_ip=client_ip,
        user_agent=user_agent[:512],
    )
    return new_event(ws, person_id, "auth", "login_succeeded", payload)


def login_failed(ws: str, person_id: str, reason: str, client_ip: str) -> events_pb2.Event:
    payload = auth_events_pb2.LoginFailed(person_id=person_id, reason=reason, client_ip=client_ip)
    return new_event(ws, "", "auth", "login_failed", payload)


def session_revoked(
    ws: str,
    actor_id: str,
    person_id: str,
    session_ids: list[str],
    reason: str,
    *,
    all_sessions: bool = False,
) -> events_pb2.Event:
    payload = auth_events_pb2.SessionRevoked(
        person_id=person_id,
        session_ids=[] if all_sessions else session_ids,
        all_sessions=all_sessions,
        reason=reason,
    )
    return new_event(ws, actor_id, "auth", "session_revoked", payload)


def person_event(ws: str, actor_id: str, name: str, person_id: str) -> events_pb2.Event:
    """two_factor_enabled, two_factor_disabled or password_changed."""
    return new_event(ws, actor_id, "auth", name, auth_events_pb2.PersonRef(person_id=person_id))


def identity_linked(ws: str, person_id: str, issuer: str, subject: str) -> events_pb2.Event:
    payload = auth_events_pb2.ExternalIdentityLinked(
        person_id=person_id, issuer=issuer, subject=subject
    )
    return new_event(ws, person_id, "auth", "external_identity_linked", payload)
