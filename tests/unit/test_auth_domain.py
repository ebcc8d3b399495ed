"""Auth rules without I/O: password policy, throttling waits, tokens, TOTP steps, sealing."""

from __future__ import annotations

import itertools

import pytest
from cryptography.exceptions import InvalidTag

from services.auth.crypto import Passwords, SecretBox, code_at, current_step, matching_step
from services.auth.domain import (
    ThrottlePolicy,
    check_new_password,
    common_passwords,
    domain_allowed,
    new_api_token,
    new_recovery_codes,
    normalize_recovery_code,
    recovery_code_hash,
    token_hash,
)
from services.chassis.errors import InvalidField


def test_common_password_list_is_shipped_and_large() -> None:
    words = common_passwords()
    assert len(words) > 10_000
    assert "password" in words and "qwertyuiop" in words


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short", "at least 8"),
        ("x" * 257, "at most 256"),
        ("Password", "too common"),
        ("qwertyuiop", "too common"),
        ("ann@example.com", "e-mail"),
    ],
)
def test_weak_passwords_are_refused_with_the_field_named(password: str, problem: str) -> None:
    with pytest.raises(InvalidField) as exc:
        check_new_password(password, field="new_password", context=("ann@example.com", "Ann"))
    assert str(exc.value).startswith("new_password: ")
    assert problem in str(exc.value)


def test_long_passphrases_without_composition_rules_are_accepted() -> None:
    assert (
        check_new_password("correct horse battery staple", field="p")
        == "correct horse battery staple"
    )
    assert check_new_password("ü" * 128, field="p") == "ü" * 128


def test_throttle_waits_grow_then_cap_at_fifteen_minutes() -> None:
    policy = ThrottlePolicy(free_failures=5, wait_seconds=2, max_wait_seconds=900, max_failures=30)
    waits = [policy.wait_after(n) for n in range(1, 32)]
    assert waits[:5] == [0, 0, 0, 0, 0]
    assert waits[5:9] == [2, 4, 8, 16]
    assert all(a <= b for a, b in itertools.pairwise(waits))
    assert max(waits) == 900
    assert policy.wait_after(30) == 900


def test_tokens_are_random_and_only_their_hash_is_an_id() -> None:
    secret, prefix = new_api_token()
    assert secret.startswith("fdt_") and secret.startswith(prefix) and len(secret) > 40
    assert token_hash(secret) != secret and len(token_hash(secret)) == 64
    codes = new_recovery_codes()
    assert len(codes) == 10 and len(set(codes)) == 10
    assert recovery_code_hash(codes[0].lower().replace("-", " ")) == recovery_code_hash(codes[0])
    assert normalize_recovery_code("abcd-efgh") == "ABCDEFGH"


def test_totp_code_matches_its_step_within_one_step_window() -> None:
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    now = 1_700_000_000.0
    step = current_step(now)
    assert matching_step(secret, code_at(secret, step), now=now) == step
    assert matching_step(secret, code_at(secret, step - 1), now=now) == step - 1
    assert matching_step(secret, code_at(secret, step - 3), now=now) is None
    assert matching_step(secret, "12345", now=now) is None


def test_domains() -> None:
    assert domain_allowed("a@acme.com", ())
    assert domain_allowed("a@eu.acme.com", ("acme.com",))
    assert not domain_allowed("a@notacme.com", ("acme.com",))


def test_secret_box_seals_with_a_key_and_refuses_the_wrong_context() -> None:
    box = SecretBox(b"k" * 32)
    sealed = box.seal("JBSWY3DPEHPK3PXP", context="totp:ws:p")
    assert "JBSWY3DPEHPK3PXP" not in sealed
    assert box.open(sealed, context="totp:ws:p") == "JBSWY3DPEHPK3PXP"
    with pytest.raises(InvalidTag):
        box.open(sealed, context="totp:ws:other")


async def test_argon2id_with_owasp_parameters() -> None:
    passwords = Passwords()
    stored = await passwords.hash("correct horse battery staple")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await passwords.verify(stored, "correct horse battery staple")
    assert not await passwords.verify(stored, "wrong horse battery staple")
    assert not await passwords.verify(None, "anything at all")
    assert not passwords.needs_rehash(stored)
