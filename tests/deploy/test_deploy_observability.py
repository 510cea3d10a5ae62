"""The alert rules file and the Grafana dashboard in deploy/: the rules are the ones docs/operations.md
shows, pass `promtool check rules` and behave as intended under `promtool test rules` (promtool built
from the Go module proxy by dev/deploy-tools); every metric the dashboard and the rules query is one
setpoint really exports, with the labels it really has."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from setpoint.builtin.metrics import MetricsPlugin, _SourceCollector

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "setpoint-rules.yml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "setpoint-rules.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "setpoint-dashboard.json"
METRIC = re.compile(r"\bsetpoint_[a-z_]+")


class _NoSources:
    sources: dict[str, Any] = {}


def exported() -> dict[str, set[str]]:
    """Every series name setpoint can expose, with its label names."""
    collectors = [MetricsPlugin().registry, _SourceCollector(_NoSources())]  # type: ignore[arg-type]
    names: dict[str, set[str]] = {}
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "gauge": ("",), "info": ("_info",)}
    for collector in collectors:
        for family in collector.collect():
            labels = set(getattr(family, "_labelnames", ()) or ())
            for sample in family.samples:
                labels |= set(sample.labels)
            for suffix in suffixes.get(family.type, ("",)):
                names[family.name + suffix] = labels
    # label names of labelled metrics that have no sample yet
    plugin = MetricsPlugin()
    for attribute in vars(plugin).values():
        describe = getattr(attribute, "_labelnames", None)
        if describe is not None:
            for name in list(names):
                if name.startswith(attribute._name):
                    names[name] |= set(describe)
    names["setpoint_source_last_poll_timestamp_seconds"] = {"source"}
    names["setpoint_source_up"] = {"source"}
    for name, labels in names.items():
        if name.endswith("_bucket"):
            labels.add("le")
    return names


def docs_rules() -> Any:
    text = (ROOT / "docs" / "operations.md").read_text()
    block = re.search(r"```yaml\n# setpoint-rules.yml\n(.*?)```", text, re.S)
    assert block, "docs/operations.md lost its rules example"
    return yaml.safe_load(block.group(1))


def test_rules_file_is_the_documented_one() -> None:
    assert yaml.safe_load(RULES.read_text()) == docs_rules()


def test_rules_schema_and_metrics() -> None:
    """The schema promtool enforces, checked here too so the file's shape is tested without Go."""
    names = exported()
    data = yaml.safe_load(RULES.read_text())
    assert set(data) == {"groups"}
    seen = set()
    for group in data["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"]) and rule["alert"] not in seen
            seen.add(rule["alert"])
            if "for" in rule:
                assert re.fullmatch(r"[0-9]+[smhd]", rule["for"])
            assert rule["labels"]["severity"] in ("page", "ticket")
            for metric in METRIC.findall(rule["expr"]):
                assert metric in names, f"{rule['alert']}: setpoint exports no {metric}"


@pytest.fixture(scope="module")
def promtool() -> str:
    """Built once from the Go module proxy (a few minutes cold, cached under ~/.cache/setpoint)."""
    proc = subprocess.run([str(ROOT / "dev" / "deploy-tools"), "promtool"], capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_promtool_check_and_unit_test_rules(promtool: str) -> None:
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 6 rules found" in check.stdout + check.stderr
    test = subprocess.run([promtool, "test", "rules", str(RULES_TEST)], capture_output=True, text=True, timeout=120,
                          cwd=RULES_TEST.parent)
    assert test.returncode == 0, test.stdout + test.stderr


def test_dashboard_queries_exported_metrics_and_labels() -> None:
    names = exported()
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "setpoint-overview" and dashboard["schemaVersion"] >= 36
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "target"}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    queries = 0
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"]
        for target in panel["targets"]:
            expr = target["expr"]
            queries += 1
            for metric in METRIC.findall(expr):
                assert metric in names, f"panel {panel['title']!r}: setpoint exports no {metric}"
            # every label matcher and grouping label exists on the metric(s) queried
            for selector in re.finditer(r"(setpoint_[a-z_]+)\{([^}]*)\}", expr):
                for label in re.findall(r"([a-z_]+)\s*=~?", selector.group(2)):
                    assert label in names[selector.group(1)], f"{selector.group(1)} has no label {label}"
            for grouping in re.findall(r"by \(([^)]*)\)", expr):
                used = {m for m in METRIC.findall(expr)}
                for label in (x.strip() for x in grouping.split(",")):
                    assert any(label in names[m] for m in used), f"no metric in {expr!r} has label {label}"
    assert queries >= 15
