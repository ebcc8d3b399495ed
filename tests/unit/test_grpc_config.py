"""The gRPC client service config: round_robin, and retries exactly for the calls marked safe."""

from __future__ import annotations

import json
import re
from pathlib import Path

from services.chassis.grpcio import is_safe_method, service_config

ROOT = Path(__file__).resolve().parents[2]
METHOD = re.compile(r"\.([A-Z]\w+)\s*,")


def safe_calls(source: str) -> set[str]:
    """Methods of every `call(<stub>.<Method>, ..., safe=True)` in `source`."""
    found = set()
    for start in (m.end() for m in re.finditer(r"\bcall\(", source)):
        depth, end = 1, start
        while depth and end < len(source):
            depth += {"(": 1, ")": -1}.get(source[end], 0)
            end += 1
        args = source[start:end]
        method = METHOD.search(args)
        if "safe=True" in args and method:
            found.add(method.group(1))
    return found


def test_every_call_marked_safe_is_retried_by_the_service_config() -> None:
    marked = set()
    for path in [*ROOT.glob("gateway/**/*.py"), *ROOT.glob("services/**/*.py")]:
        marked.update(safe_calls(path.read_text()))
    assert {"GetTicket", "ListPersons", "ResolveSession", "RecordPortalLogin"} <= marked
    assert sorted(m for m in marked if not is_safe_method(m)) == []


def test_service_config_balances_and_retries_only_reads() -> None:
    config = json.loads(service_config())
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    (method_config,) = config["methodConfig"]
    names = {(n["service"], n["method"]) for n in method_config["name"]}
    assert ("frontdesk.v1.TicketService", "GetTicket") in names
    assert ("frontdesk.v1.TicketService", "CreateTicket") not in names
    assert ("frontdesk.v1.AuthService", "Login") not in names
    assert method_config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
