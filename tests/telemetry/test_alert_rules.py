"""The shipped monitoring: Prometheus alert rules and scrape configuration (deploy/prometheus/) checked by
Prometheus's own `promtool` (rule syntax, and the rules' unit tests in alerts.test.yml), and the alert
rules, the Grafana dashboard (deploy/grafana/ticketflow.json) and docs/operations.md naming only metrics
the code exports, with every exported metric documented."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS, GRAFANA = ROOT / "deploy" / "prometheus", ROOT / "deploy" / "grafana" / "ticketflow.json"
OPERATIONS = ROOT / "docs" / "operations.md"
# The modules that define instruments (the process registry), and the per-instance ones.
MODULES = (
    "ticketflow.messaging.metrics", "ticketflow.runtime.http_telemetry", "ticketflow.runtime.service",
    "ticketflow.sla.metrics", "ticketflow.notifications.adapters.delivery",
)  # fmt: skip
NAME = re.compile(r"\b(ticketflow_[a-z_]+|up)\b")
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


@pytest.fixture(scope="module")
def promtool() -> str:
    """Prometheus's promtool from Debian's package, unpacked into .local/tools (deploy/scripts/promtool.sh)."""
    run = subprocess.run(
        ["bash", str(ROOT / "deploy/scripts/promtool.sh")], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, f"promtool could not be installed: {run.stderr}"
    return run.stdout.strip().splitlines()[-1]


def exported() -> set[str]:
    """Every metric family the code registers (names as scraped, with their sample suffixes)."""
    for module in MODULES:
        importlib.import_module(module)
    from ticketflow.intake.metrics import Metrics
    from ticketflow.routing.metrics import RoutingMetrics

    private = CollectorRegistry()
    Metrics(private), RoutingMetrics(private)
    names: set[str] = set()
    for registry in (REGISTRY, private):
        for family in registry.collect():
            if family.name.startswith("ticketflow_"):
                names.add(family.name)
    return names


def _base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def test_the_rules_and_the_scrape_configuration_pass_promtool_and_the_rules_unit_tests(promtool: str) -> None:
    for command in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"],
                    ["test", "rules", "alerts.test.yml"]):  # fmt: skip
        run = subprocess.run([promtool, *command], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, f"promtool {' '.join(command)}:\n{run.stdout}\n{run.stderr}"


def test_alerts_and_dashboard_name_only_metrics_the_code_exports() -> None:
    known = {_base(n) for n in exported()} | {"up"}
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert expressions and all(rule.get("annotations", {}).get("description")
                               for group in rules["groups"] for rule in group["rules"])  # fmt: skip
    dashboard = json.loads(GRAFANA.read_text())
    targets = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert len(targets) > 20
    for expression in expressions + targets:
        for name in NAME.findall(expression):
            assert _base(name) in known, f"{name} (in {expression!r}) is not a metric the code exports"


def test_operations_md_lists_every_metric_and_nothing_else() -> None:
    text = OPERATIONS.read_text()
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    documented = {_base(n) for n in re.findall(r"`(ticketflow_[a-z_]+)", section)}
    code = {_base(n) for n in exported()}
    assert code - documented == set(), "exported but not in docs/operations.md"
    assert documented - code == set(), "in docs/operations.md but not exported"
