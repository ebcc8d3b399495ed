"""The AuthService gRPC servicer: protobuf <-> use cases, auth errors -> status codes. Thin."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime

import grpc
from frontdesk.v1 import auth_pb2, auth_pb2_grpc, common_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.auth.domain import (
    AlreadyExists,
    ApiToken,
    Caller,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Session,
    Throttled,
    Unauthenticated,
    Unavailable,
)
from services.auth.service import AuthService, LoginResult
from services.chassis.grpcio import mapped_errors

_CODES: list[tuple[type[Exception], grpc.StatusCode]] = [
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (Throttled, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
]


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _caller(c: common_pb2.Caller) -> Caller:
    return Caller(c.workspace_id, c.person_id, frozenset(c.permissions))


def _login(result: LoginResult) -> auth_pb2.LoginResponse:
    return auth_pb2.LoginResponse(
        status=result.status,
        session_token=result.session_token,
        pending_token=result.pending_token,
        person_id=result.person_id,
        expires_at=_ts(result.expires_at),
    )


def _session_info(s: Session) -> auth_pb2.SessionInfo:
    return auth_pb2.SessionInfo(
        session_id=s.id,
        workspace_id=s.workspace_id,
        person_id=s.person_id,
        surface=s.surface,
        created_at=_ts(s.created_at),
        expires_at=_ts(s.expires_at),
        idle_expires_at=_ts(s.idle_expires_at),
        two_factor_pending_enrollment=s.enroll_only,
        kind="session",
    )


def _token_summary(t: ApiToken) -> auth_pb2.ApiTokenSummary:
    return auth_pb2.ApiTokenSummary(
        id=t.id,
        name=t.name,
        prefix=t.prefix,
        created_at=_ts(t.created_at),
        last_used_at=_ts(t.last_used_at),
        expires_at=_ts(t.expires_at),
    )


def _retry_after(exc: Exception) -> list[tuple[str, str]]:
    return [("retry-after", str(exc.retry_after))] if isinstance(exc, Throttled) else []


def _errors(context: grpc.aio.ServicerContext) -> AbstractAsyncContextManager[None]:
    """Map an AuthError to its status; a throttle adds trailing metadata retry-after."""
    return mapped_errors(context, _CODES, _retry_after)


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, service: AuthService) -> None:
        self._service = service

    async def Login(
        self, request: auth_pb2.LoginRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.LoginResponse:
        async with _errors(context):
            result = await self._service.login(
                workspace_id=request.workspace_id,
                email=request.email,
                password=request.password,
                surface=request.surface,
                client_ip=request.client_ip,
                user_agent=request.user_agent,
            )
        return _login(result)

    async def VerifySecondFactor(
        self, request: auth_pb2.VerifySecondFactorRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.LoginResponse:
        async with _errors(context):
            result = await self._service.verify_second_factor(
                workspace_id=request.workspace_id,
                pending_token=request.pending_token,
                code=request.code,
                client_ip=request.client_ip,
                user_agent=request.user_agent,
            )
        return _login(result)

    async def ResolveSession(
        self, request: auth_pb2.ResolveSessionRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.SessionInfo:
        async with _errors(context):
            session = await self._service.resolve_session(
                workspace_id=request.workspace_id, token=request.token, touch=request.touch
            )
        return _session_info(session)

    async def ResolveApiToken(
        self, request: auth_pb2.ResolveApiTokenRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.SessionInfo:
        async with _errors(context):
            token = await self._service.resolve_api_token(
                workspace_id=request.workspace_id, token=request.token
            )
        return auth_pb2.SessionInfo(
            session_id=token.id,
            workspace_id=token.workspace_id,
            person_id=token.person_id,
            surface="management",
            created_at=_ts(token.created_at),
            expires_at=_ts(token.expires_at),
            kind="api_token",
        )

    async def Logout(
        self, request: auth_pb2.LogoutRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        async with _errors(context):
            await self._service.logout(workspace_id=request.workspace_id, token=request.token)
        return common_pb2.Empty()

    async def LogoutEverywhere(
        self, request: auth_pb2.LogoutEverywhereRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        async with _errors(context):
            await self._service.logout_everywhere(_caller(request.caller))
        return common_pb2.Empty()

    async def ListSessions(
        self, request: auth_pb2.ListSessionsRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.ListSessionsResponse:
        async with _errors(context):
            sessions, current = await self._service.list_sessions(
                _caller(request.caller), request.current_token
            )
        return auth_pb2.ListSessionsResponse(
            sessions=[
                auth_pb2.SessionSummary(
                    session_id=s.id,
                    surface=s.surface,
                    client_ip=s.client_ip,
                    user_agent=s.user_agent,
                    created_at=_ts(s.created_at),
                    last_seen_at=_ts(s.last_seen_at),
                    current=s.id == current,
                )
                for s in sessions
            ]
        )

    async def RevokeSession(
        self, request: auth_pb2.RevokeSessionRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        async with _errors(context):
            await self._service.revoke_session(_caller(request.caller), request.session_id)
        return common_pb2.Empty()

    async def SetPassword(
        self, request: auth_pb2.SetPasswordRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        async with _errors(context):
            await self._service.set_password(
                _caller(request.caller), request.person_id, request.password
            )
        return common_pb2.Empty()

    async def ChangePassword(
        self, request: auth_pb2.ChangePasswordRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        async with _errors(context):
            await self._service.change_password(
                _caller(request.caller),
                request.current_password,
                request.new_password,
                request.keep_session_token,
            )
        return common_pb2.Empty()

    async def GetTwoFactorStatus(
        self, request: auth_pb2.GetTwoFactorStatusRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.TwoFactorStatus:
        async with _errors(context):
            state = await self._service.two_factor_status(
                _caller(request.caller), request.person_id
            )
        return auth_pb2.TwoFactorStatus(
            enabled=state.enabled,
            recovery_codes_left=state.recovery_codes_left,
            required_by_workspace=state.required_by_workspace,
        )

    async def BeginTotpEnrollment(
        self, request: auth_pb2.BeginTotpEnrollmentRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.TotpEnrollment:
        async with _errors(context):
            enrollment = await self._service.begin_totp(
                _caller(request.caller), request.account_label
            )
        return auth_pb2.TotpEnrollment(
            secret=enrollment.secret, provisioning_uri=enrollment.uri, qr_svg=enrollment.qr_svg
        )

    async def ConfirmTotpEnrollment(
        self, request: auth_pb2.ConfirmTotpEnrollmentRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.RecoveryCodes:
        async with _errors(context):
            codes = await self._service.confirm_totp(
                _caller(request.caller), request.code, request.keep_session_token
            )
        return auth_pb2.RecoveryCodes(codes=codes)

    async def DisableTotp(
        self, request: auth_pb2.DisableTotpRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        async with _errors(context):
            await self._service.disable_totp(
                _caller(request.caller), request.password, request.code, request.keep_session_token
            )
        return common_pb2.Empty()

    async def RegenerateRecoveryCodes(
        self, request: auth_pb2.RegenerateRecoveryCodesRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.RecoveryCodes:
        async with _errors(context):
            codes = await self._service.regenerate_recovery_codes(
                _caller(request.caller), request.code
            )
        return auth_pb2.RecoveryCodes(codes=codes)

    async def AdminResetTwoFactor(
        self, request: auth_pb2.AdminResetTwoFactorRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        async with _errors(context):
            await self._service.admin_reset_two_factor(_caller(request.caller), request.person_id)
        return common_pb2.Empty()

    async def Register(
        self, request: auth_pb2.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.RegisterResponse:
        async with _errors(context):
            result = await self._service.register(
                workspace_id=request.workspace_id,
                email=request.email,
                name=request.name,
                password=request.password,
                confirm_url_base=request.confirm_url_base,
            )
        return auth_pb2.RegisterResponse(
            person_id=result.person_id, confirmation_required=result.confirmation_required
        )

    async def ConfirmEmail(
        self, request: auth_pb2.ConfirmEmailRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        async with _errors(context):
            await self._service.confirm_email(
                workspace_id=request.workspace_id, token=request.token
            )
        return common_pb2.Empty()

    async def GetSsoConfig(
        self, request: auth_pb2.GetSsoConfigRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.SsoConfig:
        caller = _caller(request.caller) if request.caller.workspace_id else None
        async with _errors(context):
            config, full = await self._service.get_sso_config(caller, request.workspace_id)
        if config is None:
            return auth_pb2.SsoConfig(configured=False)
        if not full:
            return auth_pb2.SsoConfig(configured=True, enabled=config.enabled)
        return auth_pb2.SsoConfig(
            configured=True,
            enabled=config.enabled,
            issuer=config.issuer,
            client_id=config.client_id,
            has_client_secret=bool(config.client_secret),
            allowed_domains=list(config.allowed_domains),
            create_unknown_persons=config.create_unknown_persons,
        )

    async def PutSsoConfig(
        self, request: auth_pb2.PutSsoConfigRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.SsoConfig:
        async with _errors(context):
            config = await self._service.put_sso_config(
                _caller(request.caller),
                enabled=request.enabled,
                issuer=request.issuer,
                client_id=request.client_id,
                client_secret=request.client_secret,
                allowed_domains=list(request.allowed_domains),
                create_unknown_persons=request.create_unknown_persons,
            )
        return auth_pb2.SsoConfig(
            configured=True,
            enabled=config.enabled,
            issuer=config.issuer,
            client_id=config.client_id,
            has_client_secret=bool(config.client_secret),
            allowed_domains=list(config.allowed_domains),
            create_unknown_persons=config.create_unknown_persons,
        )

    async def StartSso(
        self, request: auth_pb2.StartSsoRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.StartSsoResponse:
        async with _errors(context):
            url, state = await self._service.start_sso(
                workspace_id=request.workspace_id,
                redirect_uri=request.redirect_uri,
                surface=request.surface,
                next_url=request.next,
            )
        return auth_pb2.StartSsoResponse(authorization_url=url, state=state)

    async def FinishSso(
        self, request: auth_pb2.FinishSsoRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.LoginResponse:
        async with _errors(context):
            result, next_url = await self._service.finish_sso(
                workspace_id=request.workspace_id,
                state=request.state,
                code=request.code,
                iss=request.iss,
                redirect_uri=request.redirect_uri,
                client_ip=request.client_ip,
                user_agent=request.user_agent,
                error=request.error,
            )
        response = _login(result)
        response.next = next_url
        return response

    async def CreateApiToken(
        self, request: auth_pb2.CreateApiTokenRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.CreateApiTokenResponse:
        async with _errors(context):
            token, secret = await self._service.create_api_token(
                _caller(request.caller), request.name, request.expires_in_days
            )
        return auth_pb2.CreateApiTokenResponse(token=_token_summary(token), secret=secret)

    async def ListApiTokens(
        self, request: auth_pb2.ListApiTokensRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.ListApiTokensResponse:
        async with _errors(context):
            tokens = await self._service.list_api_tokens(_caller(request.caller))
        return auth_pb2.ListApiTokensResponse(tokens=[_token_summary(t) for t in tokens])

    async def RevokeApiToken(
        self, request: auth_pb2.RevokeApiTokenRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        async with _errors(context):
            await self._service.revoke_api_token(_caller(request.caller), request.token_id)
        return common_pb2.Empty()
