"""Auth use cases: sign-in, second factor, sessions, passwords, TOTP, API tokens,
self-registration and SSO. Each state change commits with its outbox row."""

from __future__ import annotations

from services.auth.service_accounts import AccountUseCases
from services.auth.service_sessions import SessionUseCases
from services.auth.service_sign_in import SignInUseCases
from services.auth.service_sso import SsoUseCases
from services.auth.service_tokens import ApiTokenUseCases
from services.auth.service_two_factor import TwoFactorUseCases


class AuthService(
    SignInUseCases,
    SessionUseCases,
    AccountUseCases,
    TwoFactorUseCases,
    ApiTokenUseCases,
    SsoUseCases,
):
    """All use cases of auth: one mixin per concept (service_<concept>.py)."""
