"""Password hashing (argon2id), secrets sealed at rest (AES-GCM) and TOTP codes (pyotp).

Hashing is CPU work of tens of milliseconds, so it runs in a worker thread and never blocks
the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import os
import time

import pyotp
import segno
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

# OWASP Password Storage Cheat Sheet, argon2id first option: m=19 MiB, t=2, p=1.
OWASP_ARGON2ID = {"time_cost": 2, "memory_cost": 19456, "parallelism": 1}
TOTP_STEP = 30


class Passwords:
    """argon2id hashes with OWASP parameters, and a dummy verify for unknown accounts."""

    def __init__(
        self, *, time_cost: int = 2, memory_cost: int = 19456, parallelism: int = 1
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._dummy = self._hasher.hash(base64.b64encode(os.urandom(18)).decode())

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """True when `password` matches `stored`; with no stored hash the same work is done
        against a dummy hash, so the answer takes as long whether an account exists or not."""
        return await asyncio.to_thread(self._verify, stored, password)

    def _verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True


class SecretBox:
    """Seals secrets stored in the database. Without a key they are kept as they are (marked
    "plain:"), which the service warns about at start."""

    def __init__(self, key: bytes | None) -> None:
        self._aead = AESGCM(key) if key else None

    @property
    def encrypting(self) -> bool:
        return self._aead is not None

    def seal(self, plain: str, *, context: str) -> str:
        if self._aead is None:
            return "plain:" + plain
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plain.encode(), context.encode())
        return "v1:" + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, *, context: str) -> str:
        if sealed.startswith("plain:"):
            return sealed[len("plain:") :]
        if not sealed.startswith("v1:") or self._aead is None:
            raise ValueError("a sealed secret cannot be opened without the key")
        raw = base64.urlsafe_b64decode(sealed[3:])
        return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()


# --- TOTP ---------------------------------------------------------------------------------


def new_totp_secret() -> str:
    return pyotp.random_base32()  # 160 bits, as RFC 4226 recommends


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    return str(segno.make(uri, error="m").svg_inline(scale=4, border=2))


def current_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // TOTP_STEP)


def matching_step(
    secret: str, code: str, *, now: float | None = None, window: int = 1
) -> int | None:
    """The time step whose code equals `code` within ±window steps, or None.

    The caller stores the step it accepted and refuses any step not after it, so each code
    works once (RFC 6238 section 5.2)."""
    code = code.replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    step = current_step(now)
    for candidate in range(step - window, step + window + 1):
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            return candidate
    return None


def code_at(secret: str, step: int) -> str:
    """The code of a given step (tests and the enrollment check use it)."""
    return pyotp.TOTP(secret).generate_otp(step)
