"""What a test needs from the machine (Chromium, Node): skipped locally, a failure in CI.

With CI=true a missing browser or Node fails the run instead of skipping, so CI cannot pass
without the browser and SSO tests having run.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(reason: str) -> NoReturn:
    """Skip the test for `reason`, or fail it when running in CI."""
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)
