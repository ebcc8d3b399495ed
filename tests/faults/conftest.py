"""The fault suite's one Frontdesk (every part its own process), shared by its tests; each test
leaves every process running and ready again."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.faults.harness import Suite
from tests.faults.world import World

# Two replicas of everything (auth's compete for its outbox and durable consumer), so a
# rolling restart can keep serving.
COMPONENTS = [
    ("directory", 0),
    ("directory", 1),
    ("auth", 0),
    ("auth", 1),
    ("tickets", 0),
    ("tickets", 1),
    ("compliance", 0),
    ("compliance", 1),
    ("gateway", 0),
    ("gateway", 1),
]


@pytest.fixture(scope="session")
async def world() -> AsyncIterator[World]:
    workdir = Path(tempfile.mkdtemp(prefix="frontdesk-faults-"))
    suite = Suite(workdir)
    w = World(suite)
    try:
        suite.start_infrastructure()
        procs = [suite.add(service, replica) for service, replica in COMPONENTS]
        for proc in procs:
            await suite.start(proc)
        await w.open()
        yield w
    finally:
        await w.close()
        suite.stop()
        if not os.environ.get("FRONTDESK_FAULTS_KEEP"):  # keep the logs for a look
            shutil.rmtree(workdir, ignore_errors=True)
