"""Shared fixtures: a real PostgreSQL and a real NATS server, embedded unless the environment
names external ones (FRONTDESK_TEST_DATABASE_URL, FRONTDESK_TEST_NATS_URL)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from deploy.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from tests.stack import Stack


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="frontdesk-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url(workdir: Path) -> Iterator[str]:
    external = os.environ.get("FRONTDESK_TEST_DATABASE_URL")
    if external:
        yield external
        return
    server = EmbeddedPostgres(workdir / "pg", free_port(), fast=True)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def nats_server(workdir: Path) -> Iterator[EmbeddedNats | None]:
    """A fresh embedded NATS per test (it starts in milliseconds), or None when external."""
    if os.environ.get("FRONTDESK_TEST_NATS_URL"):
        yield None
        return
    server = EmbeddedNats(Path(tempfile.mkdtemp(dir=workdir, prefix="nats-")), free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_url(nats_server: EmbeddedNats | None) -> str:
    if nats_server is None:
        return os.environ["FRONTDESK_TEST_NATS_URL"]
    return nats_server.url


@pytest.fixture
async def stack(pg_url: str, nats_url: str) -> AsyncIterator[Stack]:
    s = Stack(pg_url=pg_url, nats_url=nats_url)
    try:
        yield s
    finally:
        await s.close()
