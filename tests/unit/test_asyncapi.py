"""The AsyncAPI catalogue committed in protos/asyncapi.json is what scripts/gen_asyncapi.py makes
of protos/ now, names every event subject, and documents each event and the guarantees."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from frontdesk.v1 import events_pb2

ROOT = Path(__file__).resolve().parents[2]
DOC = json.loads((ROOT / "protos" / "asyncapi.json").read_text())


def test_the_committed_document_is_not_stale() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_asyncapi.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_event_of_the_envelope_has_its_subject_payload_and_meaning() -> None:
    expected = set()
    for service_field in events_pb2.Event.DESCRIPTOR.oneofs_by_name["payload"].fields:
        for event in service_field.message_type.oneofs_by_name["kind"].fields:
            expected.add((service_field.name, event.name, event.message_type.full_name))
    assert DOC["asyncapi"] == "3.0.0"
    found = set()
    for key, channel in DOC["channels"].items():
        service, event = key.split(".")
        assert channel["address"] == f"fd.{service}.{{workspace_id}}.{event}"
        assert "workspace_id" in channel["parameters"]
        message = DOC["components"]["messages"][key]
        assert len(message["summary"]) > 20, key  # a sentence, not the name again
        payload = message["payload"]["properties"][service]["properties"]
        (ref,) = payload.values()
        schema_name = ref["$ref"].rsplit("/", 1)[-1]
        assert schema_name in DOC["components"]["schemas"]
        operation = DOC["operations"][f"receive.{key}"]
        assert operation["action"] == "receive"
        assert operation["channel"]["$ref"] == f"#/channels/{key}"
        found.add((service, event, schema_name))
    assert found == expected
    deactivated = DOC["components"]["schemas"]["frontdesk.v1.PersonChanged"]["properties"]
    assert {"personId", "active", "portalAccess"} <= set(deactivated)


def test_the_delivery_guarantees_and_the_snapshot_pattern_are_stated() -> None:
    text = DOC["info"]["description"]
    for phrase in (
        "At least once",
        "De-duplicate by `event_id`",
        "Order per person",
        "opt_start_seq = S + 1",
    ):
        assert phrase in text, phrase


def test_the_official_asyncapi_parser_finds_no_error() -> None:
    """@asyncapi/parser (tests/asyncapi, installed by ./dev test) validates the document."""
    node, npm = shutil.which("node"), shutil.which("npm")
    folder = ROOT / "tests" / "asyncapi"
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("node is required in CI to validate the AsyncAPI document")
        pytest.skip("node is not installed")
    if not (folder / "node_modules" / "@asyncapi" / "parser").is_dir():
        if npm is None:
            pytest.fail("tests/asyncapi/node_modules is missing and npm is not installed")
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=folder, check=True
        )
    result = subprocess.run(
        [node, str(folder / "validate.mjs"), str(ROOT / "protos" / "asyncapi.json")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary == {"ok": True, "version": "3.0.0", "channels": len(DOC["channels"])}
