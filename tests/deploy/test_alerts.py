"""The alert rules: promtool accepts them (expressions and annotation templates), and its unit
tests (alerts_test.yaml) show each alert firing on its signal and staying quiet when healthy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.deploy.test_manifests import _tool

HERE = Path(__file__).resolve().parent
RULE = HERE.parents[1] / "deploy/k8s/base/monitoring/prometheusrule.yaml"


def _spec() -> dict[str, object]:
    (rule,) = [d for d in yaml.safe_load_all(RULE.read_text()) if d]
    assert rule["kind"] == "PrometheusRule"
    spec: dict[str, object] = rule["spec"]
    return spec


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    promtool = _tool("promtool")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_spec()))
    done = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / "rules.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 15 rules found" in done.stdout


def test_each_alert_fires_on_its_signal_and_not_when_healthy(tmp_path: Path) -> None:
    promtool = _tool("promtool")
    spec = _spec()
    for group in spec["groups"]:  # type: ignore[attr-defined]
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    shutil.copy(HERE / "alerts_test.yaml", tmp_path / "alerts_test.yaml")
    done = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    firing = yaml.safe_load((HERE / "alerts_test.yaml").read_text())["tests"][0]
    tested = {t["alertname"] for t in firing["alert_rule_test"]}
    alerts = {r["alert"] for g in spec["groups"] for r in g["rules"] if "alert" in r}  # type: ignore[attr-defined]
    assert tested == alerts
