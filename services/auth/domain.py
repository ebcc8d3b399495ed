"""Auth rules without I/O: errors, password policy, throttling waits, tokens and codes."""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from services.chassis.errors import InvalidField, PermissionDenied

SURFACES = ("portal", "management")
PASSWORD_MIN = 8
PASSWORD_MAX = 256
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
API_TOKEN_PREFIX = "fdt_"
COMMON_PASSWORDS_FILE = Path(__file__).parent / "common_passwords.txt"


class Refused(PermissionDenied):
    """Not allowed, for a reason the caller is told: `reason` (e.g. "portal_access_off")
    travels as trailing metadata `error-code`, and the gateway answers 403 with that code."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


# Never says whether the e-mail exists.
BAD_CREDENTIALS = "invalid e-mail or password"
PORTAL_ACCESS_OFF = "portal access is not enabled for this account"
ACCOUNT_INACTIVE = "this account is deactivated; contact your administrator"
EMAIL_UNCONFIRMED = "confirm your e-mail address first: follow the link in the e-mail we sent"


@dataclass(frozen=True)
class Person:
    """What auth needs to know about a directory person."""

    id: str
    workspace_id: str
    email: str
    name: str
    active: bool
    portal_access: bool


@dataclass(frozen=True)
class Credential:
    person_id: str
    password_hash: str | None
    email_confirmed: bool


@dataclass(frozen=True)
class Session:
    id: str  # sha256 of the token
    workspace_id: str
    person_id: str
    surface: str
    kind: str  # "session" or "api_token"
    created_at: datetime
    expires_at: datetime | None
    idle_expires_at: datetime | None
    last_seen_at: datetime | None
    client_ip: str
    user_agent: str
    enroll_only: bool


@dataclass(frozen=True)
class PendingLogin:
    id: str
    workspace_id: str
    person_id: str
    surface: str
    attempts: int
    throttle_key: str


@dataclass(frozen=True)
class ApiToken:
    id: str
    workspace_id: str
    person_id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


@dataclass(frozen=True)
class Totp:
    person_id: str
    secret: str | None
    enabled: bool
    pending_secret: str | None
    last_used_step: int | None


@dataclass(frozen=True)
class SsoConfig:
    workspace_id: str
    enabled: bool
    issuer: str
    client_id: str
    client_secret: str  # opened (plain) only inside the service
    allowed_domains: tuple[str, ...]
    create_unknown_persons: bool


@dataclass(frozen=True)
class SsoState:
    nonce: str
    code_verifier: str
    redirect_uri: str
    surface: str
    next: str


# --- tokens -------------------------------------------------------------------------------


def no_nul(field: str, *values: str) -> None:
    """PostgreSQL text cannot hold NUL: refuse it as bad input rather than fail storing it."""
    if any("\x00" in v for v in values):
        raise InvalidField(field, "must not contain NUL characters")


def new_token() -> str:
    """An opaque bearer token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The stored and published id of a token (sha256 hex); the token itself is never stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_api_token() -> tuple[str, str]:
    """(secret, prefix): the secret is shown once, the prefix helps people tell tokens apart."""
    secret = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return secret, secret[: len(API_TOKEN_PREFIX) + 6]


def new_recovery_codes() -> list[str]:
    """Ten codes of 16 characters (80 bits) formatted XXXX-XXXX-XXXX-XXXX."""
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return codes


def normalize_recovery_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def recovery_code_hash(code: str) -> str:
    return hashlib.sha256(("recovery:" + normalize_recovery_code(code)).encode()).hexdigest()


def looks_like_totp(code: str) -> bool:
    stripped = code.replace(" ", "")
    return len(stripped) == 6 and stripped.isdigit()


# --- passwords ----------------------------------------------------------------------------


def normalize_password(password: str) -> str:
    """NFKC, so the same password typed on different keyboards hashes the same (NIST 800-63B)."""
    return unicodedata.normalize("NFKC", password)


@cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def check_new_password(password: str, *, field: str, context: tuple[str, ...] = ()) -> str:
    """The normalized password, or InvalidArgument: length and a list of common passwords,
    no composition rules. `context` holds words the password must not be (e-mail, name)."""
    normalized = normalize_password(password)
    if len(normalized) < PASSWORD_MIN:
        raise InvalidField(field, f"must be at least {PASSWORD_MIN} characters")
    if len(normalized) > PASSWORD_MAX:
        raise InvalidField(field, f"must be at most {PASSWORD_MAX} characters")
    lowered = normalized.lower()
    if lowered in common_passwords():
        raise InvalidField(field, "is too common; choose a less predictable password")
    for word in context:
        if word and lowered == word.lower():
            raise InvalidField(field, "must not be your e-mail address or name")
    return normalized


# --- throttling ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ThrottlePolicy:
    free_failures: int
    wait_seconds: int
    max_wait_seconds: int
    max_failures: int

    def wait_after(self, failures: int) -> int:
        """Seconds to block after the `failures`-th consecutive failure (0: none).

        Keycloak-like: the first `free_failures` cost nothing, then the wait doubles from
        `wait_seconds` up to `max_wait_seconds`; from `max_failures` on it is the maximum.
        """
        if failures >= self.max_failures:
            return self.max_wait_seconds
        counted = failures - self.free_failures
        if counted <= 0:
            return 0
        return int(min(self.wait_seconds * 2 ** min(counted - 1, 30), self.max_wait_seconds))


def account_key(email: str) -> str:
    return "account:" + email.strip().lower()


def ip_key(client_ip: str) -> str:
    return "ip:" + client_ip.strip()


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[-1].strip().lower() if "@" in email else ""


def domain_allowed(email: str, domains: tuple[str, ...]) -> bool:
    """True when no domains are listed, or the e-mail is in one of them (or a subdomain)."""
    if not domains:
        return True
    domain = email_domain(email)
    return any(domain == d or domain.endswith("." + d) for d in domains)
