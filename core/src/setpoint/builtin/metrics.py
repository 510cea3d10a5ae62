"""Prometheus metrics, fed only through the core's hooks (a built-in plugin like any other).

Every registry of plugins gets its own :class:`MetricsPlugin` with its own
``prometheus_client.CollectorRegistry`` (see ``make_plugin``), so two engines in one process (tests,
embedding) never share counters. The reconcile loop never imports this module: it calls
``setpoint_reconcile_finished`` and ``setpoint_event``, and this plugin counts what they report.

Labels are bounded on purpose: target, kind, source, stage, result, provider and a status out of a
fixed set. Nothing from Git content (commit messages, resource names, triggers that embed them)
becomes a label, so a busy repository cannot explode the series count. Names and meanings are
documented in docs/operations.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from setpoint import hookimpl
from setpoint.api import HealthStatus, Outcome, SyncStatus, TargetInfo
from setpoint.state import TargetStatus

if TYPE_CHECKING:
    from setpoint.builtin.engine_view import EngineView

RECONCILE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _SourceCollector(Collector):
    """Read at scrape time from the engine's sources: when each last polled and whether it is failing.
    A poller that silently stopped shows as a growing ``time() - last_poll`` (see the alert example)."""

    def __init__(self, engine: EngineView) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        last = GaugeMetricFamily("setpoint_source_last_poll_timestamp_seconds",
                                 "Unix time of the last successful poll of the source's branch", labels=["source"])
        up = GaugeMetricFamily("setpoint_source_up", "1 if the last poll of the source succeeded, else 0",
                               labels=["source"])
        for name, source in sorted(self.engine.sources.items()):
            if source.last_poll_at is not None:
                last.add_metric([name], source.last_poll_at)
            up.add_metric([name], 0.0 if source.last_error else 1.0)
        yield last
        yield up


class _ReloadCollector(Collector):
    """SIGHUP reloads of setpoint.yaml, read from the process's reload status, which outlives the
    engine a good reload replaces (so the counts do not restart with it)."""

    def __init__(self, reloads: Any) -> None:
        self.reloads = reloads

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        total = CounterMetricFamily("setpoint_config_reloads", "SIGHUP reloads of setpoint.yaml by result "
                                    "(ok: applied; failed: rejected, the previous configuration runs on)",
                                    labels=["result"])
        for result, count in sorted(self.reloads.counts.items()):
            total.add_metric([result], count)
        yield total
        yield GaugeMetricFamily("setpoint_config_last_reload_successful",
                                "0 after a rejected reload until a good one (1 otherwise)",
                                value=0.0 if self.reloads.last_result == "failed" else 1.0)


class MetricsPlugin:
    """Counters, gauges and histograms of one engine."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.target_info = Gauge("setpoint_target_info", "Configured targets (always 1)",
                                 ["target", "kind", "source"], registry=r)
        self.sync = Gauge("setpoint_target_sync_status", "1 for the target's current sync status, 0 for the others",
                          ["target", "status"], registry=r)
        self.health = Gauge("setpoint_target_health_status", "1 for the target's current health, 0 for the others",
                            ["target", "status"], registry=r)
        self.paused = Gauge("setpoint_target_paused", "1 while the target is paused", ["target"], registry=r)
        self.plan_held = Gauge("setpoint_target_plan_held", "1 while the target has a plan held for approval",
                               ["target"], registry=r)
        self.failures = Gauge("setpoint_target_consecutive_failures", "Reconciles failed in a row (0 when healthy)",
                              ["target"], registry=r)
        self.last_run = Gauge("setpoint_target_last_reconcile_timestamp_seconds", "Unix time of the last reconcile",
                              ["target"], registry=r)
        self.duration = Histogram("setpoint_reconcile_duration_seconds", "Time one reconcile of a target took",
                                  ["target", "result"], buckets=RECONCILE_BUCKETS, registry=r)
        self.reconciles = Counter("setpoint_reconciles", "Reconciles by result (ok, failed)",
                                  ["target", "result"], registry=r)
        self.applies = Counter("setpoint_applies", "Apply calls that deployed Git changes, by result",
                               ["target", "result"], registry=r)
        self.drift_detected = Counter("setpoint_drifts_detected", "Objects found drifted from Git (counted when first seen)",
                                      ["target"], registry=r)
        self.drift_repaired = Counter("setpoint_drifts_repaired", "Drifted objects reverted to Git", ["target"], registry=r)
        self.held = Counter("setpoint_plans_held", "Plans newly held for approval", ["target"], registry=r)
        self.errors = Counter("setpoint_errors", "Failed reconciles by the stage that failed", ["target", "stage"], registry=r)
        self.fetches = Counter("setpoint_git_fetches", "Fetches after a source's branch moved", ["source"], registry=r)
        self.fetch_seconds = Histogram("setpoint_git_fetch_duration_seconds", "Poll and fetch time of a moved branch",
                                       ["source"], buckets=FETCH_BUCKETS, registry=r)
        self.polls = Counter("setpoint_git_polls", "Successful polls of a source, by result (unchanged, moved)",
                             ["source", "result"], registry=r)
        self.poll_errors = Counter("setpoint_git_poll_errors", "Failed polls of a source", ["source"], registry=r)
        self.webhooks = Counter("setpoint_webhook_deliveries", "Webhook deliveries by provider and result",
                                ["provider", "result"], registry=r)
        self.notifications = Counter("setpoint_notifications", "Notifications by notifier kind and result (sent, failed)",
                                     ["kind", "result"], registry=r)
        self.plugin_errors = Gauge("setpoint_plugin_load_errors", "Plugins that failed to load (setpoint plugins names them)",
                                   registry=r)
        self._bound = False

    # ------------------------------------------------------------------ engine binding

    def bind(self, engine: EngineView) -> None:
        """Start from what the engine knows (stored status, plugin errors) and watch its sources."""
        if self._bound:
            return
        self._bound = True
        self.plugin_errors.set(sum(1 for p in engine.registry.plugins if p.error))
        stored = engine.store.all_status()
        for name, runner in engine.runners.items():
            info = runner.info
            self.target_info.labels(info.name, info.kind, info.source).set(1)
            status = stored.get(name) or TargetStatus(name)
            self._set_state(name, status.sync.value, status.health.value)
            pause = engine.store.get_pause(name)
            self.paused.labels(name).set(1 if pause and not pause.expired() else 0)
            self.failures.labels(name).set(status.consecutive_failures)
            self.plan_held.labels(name).set(1 if engine.store.held_plans(name, ("pending",)) else 0)
            if status.last_run:
                self.last_run.labels(name).set(status.last_run)
        self.registry.register(_SourceCollector(engine))
        reloads = getattr(engine, "reloads", None)  # set by setpoint run (setpoint.reload)
        if reloads is not None:
            self.registry.register(_ReloadCollector(reloads))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def _set_state(self, target: str, sync: str, health: str) -> None:
        for status in SyncStatus:
            self.sync.labels(target, status.value).set(1 if status.value == sync else 0)
        for hstatus in HealthStatus:
            self.health.labels(target, hstatus.value).set(1 if hstatus.value == health else 0)

    # ------------------------------------------------------------------ hooks

    @hookimpl
    def setpoint_reconcile_finished(self, outcome: Outcome) -> None:
        name = outcome.target.name
        result = "failed" if outcome.failed else "ok"
        self.target_info.labels(name, outcome.target.kind, outcome.target.source).set(1)
        self._set_state(name, outcome.sync.value, outcome.health.value)
        self.reconciles.labels(name, result).inc()
        self.duration.labels(name, result).observe(outcome.duration_seconds)
        self.last_run.labels(name).set(outcome.finished_at.timestamp())
        self.paused.labels(name).set(1 if outcome.paused else 0)
        self.plan_held.labels(name).set(1 if outcome.held_plan_id else 0)
        if outcome.failed:
            self.failures.labels(name).inc()
            self.errors.labels(name, outcome.error_stage or "unknown").inc()
        else:
            self.failures.labels(name).set(0)
        for action in outcome.actions:
            kind = action.get("action")
            if kind == "apply":
                self.applies.labels(name, "ok" if action.get("result") == "ok" else "failed").inc()
            elif kind == "drift-detected":
                self.drift_detected.labels(name).inc()
            elif kind == "revert-drift" and action.get("result") == "ok":
                self.drift_repaired.labels(name).inc(int(action.get("count") or 1))
            elif kind == "held":
                self.held.labels(name).inc()

    @hookimpl
    def setpoint_event(self, name: str, target: TargetInfo | None, details: dict[str, Any]) -> None:
        if name == "source_polled":
            self.polls.labels(str(details.get("source")), "moved" if details.get("moved") else "unchanged").inc()
        elif name == "source_fetched":
            source = str(details.get("source"))
            self.fetches.labels(source).inc()
            if isinstance(details.get("seconds"), int | float):
                self.fetch_seconds.labels(source).observe(details["seconds"])
        elif name == "source_poll_failed":
            self.poll_errors.labels(str(details.get("source"))).inc()
        elif name in ("paused", "resumed") and target is not None:
            self.paused.labels(target.name).set(1 if name == "paused" else 0)
        elif name == "webhook_received":
            self.webhooks.labels(str(details.get("provider")), str(details.get("result"))).inc()
        elif name == "notification_sent":
            self.notifications.labels(str(details.get("kind")), str(details.get("result"))).inc()


def make_plugin() -> MetricsPlugin:
    """Called by the plugin loader once per registry (see setpoint.plugins)."""
    return MetricsPlugin()
