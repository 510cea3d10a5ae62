"""Metrics scraped over HTTP during the five-phase scenario: the transitions and counters each
phase should leave, parsed with Prometheus' own text parser; names and labels follow the rules."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import yaml
from opshelpers import serving
from prometheus_client.parser import text_string_to_metric_families

from setpoint.errors import TemporaryError
from setpoint.testing import FakePlugin, GitRepo, make_engine, write_config

ALLOWED_LABELS = {"target", "kind", "source", "stage", "result", "provider", "status", "le"}


def resources(*items: dict) -> str:  # type: ignore[type-arg]
    return yaml.safe_dump(list(items), sort_keys=False)


def web(replicas: int, image: str) -> dict:  # type: ignore[type-arg]
    return {"kind": "Deployment", "name": "web", "replicas": replicas, "image": image}


class Scrape:
    """One scrape: samples by (name, labels) for easy lookups."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = list(text_string_to_metric_families(text))
        self.samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in self.families for s in f.samples}

    def get(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(base: str) -> Scrape:
    response = httpx.get(f"{base}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


def test_five_phases_seen_through_metrics(tmp_path: Path, git_repo: GitRepo) -> None:
    plugin = FakePlugin()
    git_repo.commit({"app/web.yaml": resources(web(2, "web:1"))}, "Deploy web 1", author="Alice <alice@example.com>")
    config = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app", "prune": True,
                                                      "hold_deletions": True}], server={"listen": "127.0.0.1:0"})
    engine = make_engine(config, plugin)
    cluster = plugin.cluster("app")
    with serving(engine) as base:
        before = scrape(base)
        assert before.get("setpoint_target_sync_status", target="app", status="Unknown") == 1
        assert before.get("setpoint_target_info", target="app", kind="fake", source="repo") == 1

        # 1. initial deploy
        engine.reconcile("app")
        m = scrape(base)
        assert m.get("setpoint_target_sync_status", target="app", status="Synced") == 1
        assert m.get("setpoint_target_sync_status", target="app", status="Unknown") == 0
        assert m.get("setpoint_target_health_status", target="app", status="Healthy") == 1
        assert m.get("setpoint_applies_total", target="app", result="ok") == 1
        assert m.get("setpoint_git_fetches_total", source="repo") == 1
        assert m.get("setpoint_git_fetch_duration_seconds_count", source="repo") == 1
        assert m.get("setpoint_source_up", source="repo") == 1
        assert m.get("setpoint_source_last_poll_timestamp_seconds", source="repo") > 0

        # 2. no-op: one more reconcile, no apply
        engine.reconcile("app")
        m = scrape(base)
        assert m.get("setpoint_reconciles_total", target="app", result="ok") == 2
        assert m.get("setpoint_applies_total", target="app", result="ok") == 1
        assert m.get("setpoint_git_polls_total", source="repo", result="moved") == 1
        assert m.get("setpoint_git_polls_total", source="repo", result="unchanged") == 1, "a quiet poll counts too"

        # 3. manual drift, detected and repaired
        cluster.manual_change("Deployment/web", replicas=5)
        engine.reconcile("app")
        m = scrape(base)
        assert m.get("setpoint_drifts_detected_total", target="app") == 1
        assert m.get("setpoint_drifts_repaired_total", target="app") == 1
        assert m.get("setpoint_applies_total", target="app", result="ok") == 1, "a revert is not a deploy"

        # 4. a new commit, and a failure on the way: errors by stage, failures in a row, then recovery
        git_repo.commit({"app/web.yaml": resources(web(3, "web:2"))}, "Web 2")
        cluster.fail_next("apply", TemporaryError("connection refused"))
        engine.reconcile("app")
        m = scrape(base)
        assert m.get("setpoint_errors_total", target="app", stage="apply") == 1
        assert m.get("setpoint_applies_total", target="app", result="failed") == 1
        assert m.get("setpoint_target_consecutive_failures", target="app") == 1
        assert m.get("setpoint_reconciles_total", target="app", result="failed") == 1
        engine.reconcile("app")
        m = scrape(base)
        assert m.get("setpoint_applies_total", target="app", result="ok") == 2
        assert m.get("setpoint_target_consecutive_failures", target="app") == 0
        assert m.get("setpoint_git_fetches_total", source="repo") == 2

        # 5. rollback by git revert
        git_repo.revert()
        engine.reconcile("app")
        m = scrape(base)
        assert m.get("setpoint_applies_total", target="app", result="ok") == 3
        assert m.get("setpoint_target_sync_status", target="app", status="Synced") == 1
        assert m.get("setpoint_reconcile_duration_seconds_count", target="app", result="ok") == 5
        assert m.get("setpoint_reconcile_duration_seconds_count", target="app", result="failed") == 1
        assert m.get("setpoint_target_last_reconcile_timestamp_seconds", target="app") > 0

        # a deletion is held for approval, then approved and applied
        git_repo.commit({"app/web.yaml": None, "app/api.yaml": resources({"kind": "Deployment", "name": "api"})}, "Swap")
        out = engine.reconcile("app")
        m = scrape(base)
        assert m.get("setpoint_plans_held_total", target="app") == 1
        assert m.get("setpoint_target_plan_held", target="app") == 1
        engine.approve("app", out.held_plan_id, "alice")
        engine.reconcile("app")
        m = scrape(base)
        assert m.get("setpoint_target_plan_held", target="app") == 0
        assert m.get("setpoint_applies_total", target="app", result="ok") == 4

        # pause and resume move the paused gauge
        engine.pause("app", "maintenance", "alice", None)
        assert scrape(base).get("setpoint_target_paused", target="app") == 1
        engine.resume("app", "alice")
        assert scrape(base).get("setpoint_target_paused", target="app") == 0
        assert m.get("setpoint_plugin_load_errors") == 0

    # Prometheus conventions: prefix, _total counters, _seconds histograms, bounded labels
    for family in m.families:
        assert family.name.startswith("setpoint_"), family.name
        if family.type == "counter" and family.samples:
            assert any(s.name == family.name + "_total" for s in family.samples), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, (sample.name, sample.labels)
    assert not re.search(r"Web 2|Deploy web|Deployment/web|alice", m.text)
    engine.close()


def test_each_engine_has_its_own_registry(tmp_path: Path, git_repo: GitRepo) -> None:
    git_repo.commit({"app/web.yaml": resources(web(1, "web:1"))}, "v1")
    engines = []
    for name in ("one", "two"):
        directory = tmp_path / name
        directory.mkdir()
        config = write_config(directory, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}])
        engines.append(make_engine(config, FakePlugin()))
    engines[0].reconcile("app")
    first, second = (e.registry.pm.get_plugin("metrics") for e in engines)
    assert first is not second
    assert Scrape(first.exposition().decode()).get("setpoint_reconciles_total", target="app", result="ok") == 1
    assert Scrape(second.exposition().decode()).get("setpoint_reconciles_total", target="app", result="ok") == 0
    for engine in engines:
        engine.close()


def test_a_failed_revision_is_never_reported_synced(tmp_path: Path, git_repo: GitRepo) -> None:
    """Issue 14 item 11: sync compares the revision a run resolved with the one last applied, in the
    outcome, the status row (what the API serves) and the metrics; never applied at all is Unknown."""
    plugin = FakePlugin()
    git_repo.commit({"app/web.yaml": resources(web(2, "web:1"))}, "Deploy web 1")
    config = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}],
                          server={"listen": "127.0.0.1:0"})
    engine = make_engine(config, plugin)
    with serving(engine) as base:
        assert engine.reconcile("app").sync.value == "Synced"
        git_repo.commit({"app/web.yaml": "kind: [unclosed"}, "broken")
        for _ in range(2):  # the retry of the same failure says the same
            out = engine.reconcile("app")
            assert out.error_stage == "render" and out.sync.value == "OutOfSync"
            status = engine.store.status("app")
            assert status is not None and status.sync.value == "OutOfSync"
            assert status.applied_revision != status.revision
            m = scrape(base)
            assert m.get("setpoint_target_sync_status", target="app", status="OutOfSync") == 1
            assert m.get("setpoint_target_sync_status", target="app", status="Synced") == 0
    engine.close()

    # a target whose very first revision fails was never applied: Unknown, not Synced
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    engine = make_engine(write_config(fresh, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}]),
                         FakePlugin())
    out = engine.reconcile("app")
    assert out.error_stage == "render" and out.sync.value == "Unknown"
    engine.close()
