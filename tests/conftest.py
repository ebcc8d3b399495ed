"""Shared fixtures: a real PostgreSQL, a real NATS server and a real S3 server (SeaweedFS),
embedded unless the environment names external ones (FRONTDESK_TEST_DATABASE_URL,
FRONTDESK_TEST_NATS_URL, FRONTDESK_TEST_S3_ENDPOINT with FRONTDESK_TEST_S3_ACCESS_KEY and
FRONTDESK_TEST_S3_SECRET_KEY)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from deploy.embedded import EmbeddedNats, EmbeddedPostgres, EmbeddedS3, free_port
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


@pytest.fixture(scope="session")
def s3_server(workdir: Path) -> Iterator[dict[str, str]]:
    """The S3 endpoint and credentials every test's services use (each Stack its own bucket)."""
    external = os.environ.get("FRONTDESK_TEST_S3_ENDPOINT")
    if external:
        yield {
            "FRONTDESK_S3_ENDPOINT": external,
            "FRONTDESK_S3_ACCESS_KEY": os.environ["FRONTDESK_TEST_S3_ACCESS_KEY"],
            "FRONTDESK_S3_SECRET_KEY": os.environ["FRONTDESK_TEST_S3_SECRET_KEY"],
        }
        return
    server = EmbeddedS3(workdir / "s3", free_port(), [free_port() for _ in range(9)])
    server.start()
    try:
        access, secret = server.credentials()
        yield {
            "FRONTDESK_S3_ENDPOINT": server.endpoint,
            "FRONTDESK_S3_ACCESS_KEY": access,
            "FRONTDESK_S3_SECRET_KEY": secret,
        }
    finally:
        server.stop()


@pytest.fixture
async def stack(pg_url: str, nats_url: str, s3_server: dict[str, str]) -> AsyncIterator[Stack]:
    s = Stack(pg_url=pg_url, nats_url=nats_url)
    s.extra_env.update(s3_server)
    s.extra_env["FRONTDESK_S3_BUCKET"] = "fd-" + s.prefix.rstrip("_").replace("_", "-")
    try:
        yield s
    finally:
        await s.close()
