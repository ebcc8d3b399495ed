"""X-Forwarded-For is believed only from trusted proxies (sign-in throttling keys on the IP)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from gateway.routing import client_ip
from gateway.settings import _networks
from services.chassis.settings import SettingsError


def _request(remote: str, xff: str | None) -> object:
    headers = {"X-Forwarded-For": xff} if xff else {}
    req = make_mocked_request("GET", "/", headers=headers)
    return req.clone(remote=remote)


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_ip(_request("203.0.113.9", "1.2.3.4"), ()) == "203.0.113.9"  # type: ignore[arg-type]


def test_the_first_untrusted_hop_from_the_right_is_the_client() -> None:
    trusted = _networks("10.0.0.0/8")
    req = _request("10.0.0.5", "198.51.100.7, 10.1.2.3")
    assert client_ip(req, trusted) == "198.51.100.7"  # type: ignore[arg-type]
    # A client cannot spoof an address by sending its own header through the proxy.
    req = _request("10.0.0.5", "1.1.1.1, 198.51.100.7")
    assert client_ip(req, trusted) == "198.51.100.7"  # type: ignore[arg-type]


def test_a_direct_untrusted_caller_cannot_claim_another_address() -> None:
    assert (
        client_ip(_request("198.51.100.7", "10.0.0.1"), _networks("10.0.0.0/8")) == "198.51.100.7"
    )  # type: ignore[arg-type]


def test_a_malformed_proxy_setting_fails_at_start() -> None:
    with pytest.raises(SettingsError, match="FRONTDESK_TRUSTED_PROXIES"):
        _networks("10.0.0.0/8, not-an-ip")
