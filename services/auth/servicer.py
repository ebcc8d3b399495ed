"""The AuthService gRPC servicer: requests -> use cases, auth errors -> status codes. Thin;
protobuf <-> domain conversion is in convert.py."""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager

import grpc
from frontdesk.v1 import auth_pb2, auth_pb2_grpc, common_pb2

from services.auth.convert import login_response, session_info, timestamp, token_summary
from services.auth.principals import PrincipalIssuer
from services.auth.service import AuthService
from services.chassis.caller import Caller, current_caller
from services.chassis.errors import (
    PermissionDenied,
    Throttled,
)
from services.chassis.grpcio import mapped_errors
from services.chassis.principals import public_jwk


def _caller() -> Caller:
    """The verified caller (principal interceptor); `request.caller` is not believed."""
    return current_caller()


def _component(right: str) -> None:
    """Sign-in flows and principal minting are the gateway's calls: they need its right."""
    if not current_caller().has(right):
        raise PermissionDenied(f"this call needs the right {right}")


def _retry_after(exc: Exception) -> list[tuple[str, str]]:
    """retry-after for throttling; error-code for a refusal that names its reason."""
    if isinstance(exc, Throttled):
        return [("retry-after", str(exc.retry_after))]
    reason = getattr(exc, "reason", "")
    return [("error-code", reason)] if isinstance(reason, str) and reason else []


def _errors(context: grpc.aio.ServicerContext) -> AbstractAsyncContextManager[None]:
    """Map an AuthError to its status; a throttle adds trailing metadata retry-after."""
    return mapped_errors(context, trailing=_retry_after)


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, service: AuthService, principals: PrincipalIssuer) -> None:
        self._service = service
        self._principals = principals

    async def GetPublicKeys(
        self, request: auth_pb2.GetPublicKeysRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.PublicKeys:
        return auth_pb2.PublicKeys(
            keys=[
                auth_pb2.PublicKey(kid=k.kid, issuer=k.issuer, jwk=json.dumps(public_jwk(k.key)))
                for k in self._principals.public_keys()
            ]
        )

    async def IssuePrincipal(
        self, request: auth_pb2.IssuePrincipalRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.IssuedPrincipal:
        async with _errors(context):
            _component("Principal:issue")
            issued = await self._principals.issue(
                workspace_id=request.workspace_id,
                session_token=request.session_token,
                api_token=request.api_token,
                surface=request.surface,
                permissions=list(request.permissions),
                audiences=list(request.audiences),
            )
        return auth_pb2.IssuedPrincipal(
            tokens=issued.tokens,
            person_id=issued.person_id,
            permissions=issued.permissions,
            expires_at=issued.expires_at,
        )

    async def Login(
        self, request: auth_pb2.LoginRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.LoginResponse:
        async with _errors(context):
            _component("Auth:sign-in")
            result = await self._service.login(
                workspace_id=request.workspace_id,
                email=request.email,
                password=request.password,
                surface=request.surface,
                client_ip=request.client_ip,
                user_agent=request.user_agent,
            )
        return login_response(result)

    async def VerifySecondFactor(
        self, request: auth_pb2.VerifySecondFactorRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.LoginResponse:
        async with _errors(context):
            _component("Auth:sign-in")
            result = await self._service.verify_second_factor(
                workspace_id=request.workspace_id,
                pending_token=request.pending_token,
                code=request.code,
                client_ip=request.client_ip,
                user_agent=request.user_agent,
            )
        return login_response(result)

    async def ResolveSession(
        self, request: auth_pb2.ResolveSessionRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.SessionInfo:
        async with _errors(context):
            _component("Auth:sign-in")
            session = await self._service.resolve_session(
                workspace_id=request.workspace_id, token=request.token, touch=request.touch
            )
        return session_info(session)

    async def ResolveApiToken(
        self, request: auth_pb2.ResolveApiTokenRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.SessionInfo:
        async with _errors(context):
            _component("Auth:sign-in")
            token = await self._service.resolve_api_token(
                workspace_id=request.workspace_id, token=request.token
            )
        return auth_pb2.SessionInfo(
            session_id=token.id,
            workspace_id=token.workspace_id,
            person_id=token.person_id,
            surface="management",
            created_at=timestamp(token.created_at),
            expires_at=timestamp(token.expires_at),
            kind="api_token",
        )

    async def Logout(
        self, request: auth_pb2.LogoutRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        async with _errors(context):
            _component("Auth:sign-in")
            await self._service.logout(workspace_id=request.workspace_id, token=request.token)
        return common_pb2.Empty()

    async def LogoutEverywhere(
        self, request: auth_pb2.LogoutEverywhereRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        async with _errors(context):
            await self._service.logout_everywhere(_caller())
        return common_pb2.Empty()

    async def ListSessions(
        self, request: auth_pb2.ListSessionsRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.ListSessionsResponse:
        async with _errors(context):
            sessions, current = await self._service.list_sessions(_caller(), request.current_token)
        return auth_pb2.ListSessionsResponse(
            sessions=[
                auth_pb2.SessionSummary(
                    session_id=s.id,
                    surface=s.surface,
                    client_ip=s.client_ip,
                    user_agent=s.user_agent,
                    created_at=timestamp(s.created_at),
                    last_seen_at=timestamp(s.last_seen_at),
                    current=s.id == current,
                )
                for s in sessions
            ]
        )

    async def RevokeSession(
        self, request: auth_pb2.RevokeSessionRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        async with _errors(context):
            await self._service.revoke_session(_caller(), request.session_id)
        return common_pb2.Empty()

    async def SetPassword(
        self, request: auth_pb2.SetPasswordRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        async with _errors(context):
            await self._service.set_password(_caller(), request.person_id, request.password)
        return common_pb2.Empty()

    async def ChangePassword(
        self, request: auth_pb2.ChangePasswordRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        async with _errors(context):
            await self._service.change_password(
                _caller(),
                request.current_password,
                request.new_password,
                request.keep_session_token,
            )
        return common_pb2.Empty()

    async def GetTwoFactorStatus(
        self, request: auth_pb2.GetTwoFactorStatusRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.TwoFactorStatus:
        async with _errors(context):
            state = await self._service.two_factor_status(_caller(), request.person_id)
        return auth_pb2.TwoFactorStatus(
            enabled=state.enabled,
            recovery_codes_left=state.recovery_codes_left,
            required_by_workspace=state.required_by_workspace,
        )

    async def BeginTotpEnrollment(
        self, request: auth_pb2.BeginTotpEnrollmentRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.TotpEnrollment:
        async with _errors(context):
            enrollment = await self._service.begin_totp(_caller(), request.account_label)
        return auth_pb2.TotpEnrollment(
            secret=enrollment.secret, provisioning_uri=enrollment.uri, qr_svg=enrollment.qr_svg
        )

    async def ConfirmTotpEnrollment(
        self, request: auth_pb2.ConfirmTotpEnrollmentRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.RecoveryCodes:
        async with _errors(context):
            codes = await self._service.confirm_totp(
                _caller(), request.code, request.keep_session_token
            )
        return auth_pb2.RecoveryCodes(codes=codes)

    async def DisableTotp(
        self, request: auth_pb2.DisableTotpRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        async with _errors(context):
            await self._service.disable_totp(
                _caller(), request.password, request.code, request.keep_session_token
            )
        return common_pb2.Empty()

    async def RegenerateRecoveryCodes(
        self, request: auth_pb2.RegenerateRecoveryCodesRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.RecoveryCodes:
        async with _errors(context):
            codes = await self._service.regenerate_recovery_codes(_caller(), request.code)
        return auth_pb2.RecoveryCodes(codes=codes)

    async def AdminResetTwoFactor(
        self, request: auth_pb2.AdminResetTwoFactorRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        async with _errors(context):
            await self._service.admin_reset_two_factor(_caller(), request.person_id)
        return common_pb2.Empty()

    async def Register(
        self, request: auth_pb2.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.RegisterResponse:
        async with _errors(context):
            _component("Auth:sign-in")
            result = await self._service.register(
                workspace_id=request.workspace_id,
                email=request.email,
                name=request.name,
                password=request.password,
                confirm_url_base=request.confirm_url_base,
                client_ip=request.client_ip,
            )
        return auth_pb2.RegisterResponse(
            person_id=result.person_id, confirmation_required=result.confirmation_required
        )

    async def ConfirmEmail(
        self, request: auth_pb2.ConfirmEmailRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        async with _errors(context):
            _component("Auth:sign-in")
            await self._service.confirm_email(
                workspace_id=request.workspace_id, token=request.token
            )
        return common_pb2.Empty()

    async def GetMailStatus(
        self, request: auth_pb2.GetMailStatusRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.MailStatus:
        return auth_pb2.MailStatus(configured=self._service.mail_configured)

    async def GetSsoConfig(
        self, request: auth_pb2.GetSsoConfigRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.SsoConfig:
        verified = _caller()
        caller = None if verified.is_service else verified
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
                _caller(),
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
            _component("Auth:sign-in")
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
            _component("Auth:sign-in")
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
        response = login_response(result)
        response.next = next_url
        return response

    async def CreateApiToken(
        self, request: auth_pb2.CreateApiTokenRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.CreateApiTokenResponse:
        async with _errors(context):
            token, secret = await self._service.create_api_token(
                _caller(),
                request.name,
                request.expires_in_days,
                request.session_token,
                request.code,
            )
        return auth_pb2.CreateApiTokenResponse(token=token_summary(token), secret=secret)

    async def ListApiTokens(
        self, request: auth_pb2.ListApiTokensRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.ListApiTokensResponse:
        async with _errors(context):
            tokens = await self._service.list_api_tokens(_caller())
        return auth_pb2.ListApiTokensResponse(tokens=[token_summary(t) for t in tokens])

    async def RevokeApiToken(
        self, request: auth_pb2.RevokeApiTokenRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Empty:
        async with _errors(context):
            await self._service.revoke_api_token(_caller(), request.token_id)
        return common_pb2.Empty()
