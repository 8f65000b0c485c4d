"""The Prometheus config `make run` writes and the alerts (the Helm chart's files/alerts.yml) are valid, and the
alerts fire when they should."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.local.stack import Stack, default_ports

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: apt-get install prometheus (make test installs it)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, cwd=PROMETHEUS)


def test_the_stacks_config_is_valid(tmp_path: Path) -> None:
    """What `make run PROMETHEUS=1 REPLICAS=detector=2` hands Prometheus: both detectors are scraped."""
    stack = Stack(ports=default_ports(), log_dir=tmp_path, data_dir=tmp_path, replicas={"detector": 2})
    config = stack.write_prometheus_config()
    result = promtool("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in json.loads(config.read_text())["scrape_configs"]
    }
    every_replica = [f"{i}-metrics" for s in stack.services for i in stack.instances(s)]
    assert "detector-1-metrics" in every_replica
    assert jobs["faceplane-services"] == [f"127.0.0.1:{stack.ports[name]}" for name in every_replica]
    assert jobs["faceplane-gateway"] == [f"127.0.0.1:{stack.ports['gateway']}"]


def test_the_alert_rules_are_valid() -> None:
    result = promtool("check", "rules", "../helm/faceplane/files/alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_when_they_should() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
