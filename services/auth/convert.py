"""Protobuf <-> domain for the auth service: timestamps, sign-in results, sessions, API tokens."""

from __future__ import annotations

from datetime import datetime

from frontdesk.v1 import auth_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.auth.domain import (
    ApiToken,
    Session,
)
from services.auth.service_base import LoginResult


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def login_response(result: LoginResult) -> auth_pb2.LoginResponse:
    return auth_pb2.LoginResponse(
        status=result.status,
        session_token=result.session_token,
        pending_token=result.pending_token,
        person_id=result.person_id,
        expires_at=timestamp(result.expires_at),
    )


def session_info(s: Session) -> auth_pb2.SessionInfo:
    return auth_pb2.SessionInfo(
        session_id=s.id,
        workspace_id=s.workspace_id,
        person_id=s.person_id,
        surface=s.surface,
        created_at=timestamp(s.created_at),
        expires_at=timestamp(s.expires_at),
        idle_expires_at=timestamp(s.idle_expires_at),
        two_factor_pending_enrollment=s.enroll_only,
        kind="session",
    )


def token_summary(t: ApiToken) -> auth_pb2.ApiTokenSummary:
    return auth_pb2.ApiTokenSummary(
        id=t.id,
        name=t.name,
        prefix=t.prefix,
        created_at=timestamp(t.created_at),
        last_used_at=timestamp(t.last_used_at),
        expires_at=timestamp(t.expires_at),
    )
