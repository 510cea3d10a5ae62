"""The notifier kinds people use, each over real HTTP to a local receiver that checks the payload
the service documents: Microsoft Teams (Adaptive Card message), PagerDuty Events v2 (trigger, then
resolve with the same dedup_key on recovery), Opsgenie (create, close by alias), Alertmanager
(API v2 alerts, resolved by endsAt), commit statuses on GitLab, Gitea, Forgejo and Bitbucket Cloud
and Data Center. The noise policy is the core's: one incident per failure streak, none for a
failure under the threshold. Tokens come from files or variables and appear in no message, log
line or metric."""

from __future__ import annotations

import io
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from opshelpers import CANARY, CanaryPlugin, Receiver, notify_plugin, wait_for

from setpoint.errors import ConfigError, TemporaryError
from setpoint.secrets import RedactingFilter
from setpoint.testing import FakePlugin, GitRepo, make_engine, write_config

PD_KEY = "R0UTINGKEY0123456789abcdefABCDEF"   # PagerDuty integration keys are 32 characters
GENIE = "genie-K3Y-0000-1111-2222"
GITLAB = "glpat-T0KEN-gitlab-555"
GITEA = "gitea-T0KEN-666"
BITBUCKET = "bb-T0KEN-777"
TEAMS_PATH = "/teams/workflows/abc/triggers/manual/paths/invoke?sig=TEAMS-S1G"
SECRETS = (PD_KEY, GENIE, GITLAB, GITEA, BITBUCKET, "TEAMS-S1G")
SHA = re.compile(r"^[0-9a-f]{40}$")


def manifests(image: str) -> str:
    return "CANARY-ENC\n" + yaml.safe_dump([{"kind": "Deployment", "name": "web", "image": image, "config": CANARY}])


def rfc3339(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


# --------------------------------------------------------------------------- documented payloads


def check_teams(body: dict[str, Any]) -> str:
    """Workflows / connector webhook: a ``message`` with exactly one Adaptive Card attachment."""
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["$schema"].startswith("http://adaptivecards.io/")
    assert re.match(r"^1\.[0-5]$", card["version"])
    assert card["body"] and all(element["type"] in ("TextBlock", "FactSet") for element in card["body"])
    for element in card["body"]:
        if element["type"] == "FactSet":
            assert all(set(f) == {"title", "value"} and isinstance(f["value"], str) for f in element["facts"])
    return str(card["body"][0]["text"])


def check_pagerduty(body: dict[str, Any]) -> None:
    """Events API v2: routing_key, event_action, dedup_key; a trigger needs payload.summary/source/severity."""
    assert body["routing_key"] == PD_KEY
    assert body["event_action"] in ("trigger", "acknowledge", "resolve")
    assert 0 < len(body["dedup_key"]) <= 255
    if body["event_action"] == "trigger":
        payload = body["payload"]
        assert 0 < len(payload["summary"]) <= 1024 and payload["source"]
        assert payload["severity"] in ("critical", "error", "warning", "info")
        assert all(isinstance(v, str) for v in payload["custom_details"].values())
    else:
        assert "payload" not in body


def check_opsgenie_create(body: dict[str, Any]) -> None:
    assert 0 < len(body["message"]) <= 130 and len(body["alias"]) <= 512 and len(body["description"]) <= 15000
    assert body["priority"] in ("P1", "P2", "P3", "P4", "P5")
    assert isinstance(body["tags"], list) and all(isinstance(v, str) for v in body["details"].values())


def check_alertmanager(body: Any) -> dict[str, Any]:
    """API v2 postableAlerts: a list; labels a non-empty string map with alertname; RFC 3339 times."""
    [alert] = body
    assert alert["labels"]["alertname"] and all(isinstance(v, str) and v for v in alert["labels"].values())
    assert set(alert) <= {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    for key in ("startsAt", "endsAt"):
        if key in alert:
            rfc3339(alert[key])
    return dict(alert)


def check_status(host: str, body: dict[str, Any]) -> tuple[str, str]:
    if host == "gitlab":
        assert body["state"] in ("pending", "running", "success", "failed", "canceled")
        return body["name"], body["state"]
    if host == "gitea":
        assert body["state"] in ("pending", "success", "error", "failure", "warning")
        return body["context"], body["state"]
    assert body["state"] in ("INPROGRESS", "SUCCESSFUL", "FAILED", "STOPPED")
    assert body["url"].startswith("https://") and 0 < len(body["key"]) <= 40
    return body["key"], body["state"]


# --------------------------------------------------------------------------- the scenario


@pytest.fixture
def receiver() -> Any:
    r = Receiver()
    yield r
    r.close()


def test_incidents_chat_and_commit_statuses(tmp_path: Path, git_repo: GitRepo, receiver: Receiver,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # the daemon's own log handler (with its redacting filter), at DEBUG: what an operator would see
    logged = io.StringIO()
    handler = logging.StreamHandler(logged)
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    # setLevel, not an assignment: it also clears the loggers' isEnabledFor caches, which an earlier
    # test at a higher level may have filled (httpx's INFO lines would then never be logged here)
    level = root.level
    root.setLevel(logging.DEBUG)
    (tmp_path / "teams.url").write_text(receiver.url(TEAMS_PATH) + "\n")
    (tmp_path / "pd.key").write_text(PD_KEY + "\n")
    (tmp_path / "gitlab.token").write_text(GITLAB)
    for name, value in {"T_GENIE": GENIE, "T_GITEA": GITEA, "T_BB": BITBUCKET}.items():
        monkeypatch.setenv(name, value)
    git_repo.commit({"app/web.yaml": manifests("web:1"), "db/db.yaml": yaml.safe_dump(
        [{"kind": "StatefulSet", "name": "db", "replicas": 1}])}, "v1", author="Alice <a@example.com>")
    link = "https://setpoint.example.com/api/v1/targets"
    config = write_config(tmp_path, git_repo.path, [
        {"name": "app", "kind": "fake", "path": "app"}, {"name": "db", "kind": "fake", "path": "db"}],
        server={"enabled": False},
        notifications={"failure_threshold": 2, "digest": {"window": "1s"}, "notifiers": [
            {"name": "teams", "kind": "teams", "url_file": "teams.url", "teams": {"link_url": link}},
            {"name": "pd", "kind": "pagerduty", "pagerduty": {
                "routing_key_file": "pd.key", "events_url": receiver.url("/v2/enqueue"), "severity": "critical",
                "client_url": link}},
            {"name": "genie", "kind": "opsgenie", "opsgenie": {"token_env": "T_GENIE", "api_url": receiver.url(""),
                                                              "priority": "P2"}},
            {"name": "am", "kind": "alertmanager", "alertmanager": {
                "url": receiver.url("/am"), "labels": {"team": "platform"}, "expires_after": "1d"}},
            {"name": "gitlab", "kind": "gitlab_status", "gitlab_status": {
                "project": "acme/platform/config", "token_file": "gitlab.token", "api_url": receiver.url("/api/v4"),
                "target_url": link}},
            {"name": "gitea", "kind": "gitea_status", "gitea_status": {
                "repository": "acme/config", "token_env": "T_GITEA", "api_url": receiver.url("/gitea/api/v1")}},
            {"name": "forgejo", "kind": "forgejo_status", "forgejo_status": {
                "repository": "acme/config", "token_env": "T_GITEA", "api_url": receiver.url("/forgejo/api/v1"),
                "context_prefix": "deploy"}},
            {"name": "bitbucket", "kind": "bitbucket_status", "bitbucket_status": {
                "repository": "acme/config", "token_env": "T_BB", "api_url": receiver.url("/bb/2.0"), "target_url": link}},
            {"name": "bitbucket-dc", "kind": "bitbucket_status", "bitbucket_status": {
                "server": "datacenter", "token_env": "T_BB", "api_url": receiver.url("/bbdc"), "target_url": link}},
        ]})
    plugin = FakePlugin()
    engine = make_engine(config, plugin, CanaryPlugin())
    from setpoint.server.runtime import start_operations

    ops = start_operations(engine, None)
    dispatcher = notify_plugin(engine).dispatcher

    def settle() -> None:
        assert dispatcher.drain(10)

    def at(prefix: str) -> list[Any]:
        settle()
        return [r for r in receiver.requests if r.path.startswith(prefix)]

    def statuses(host: str, path: str) -> list[tuple[str, str]]:
        return sorted(check_status(host, r.json) for r in at(path))

    try:
        v1 = git_repo.head()
        engine.sync()
        wait_for(lambda: len(at("/bbdc")) == 2)
        # deployed: one success status per target on every host, nothing for the incident kinds
        assert statuses("gitlab", f"/api/v4/projects/acme%2Fplatform%2Fconfig/statuses/{v1}") == [
            ("setpoint/app", "success"), ("setpoint/db", "success")]
        gl = at("/api/v4/")[0]
        assert gl.headers["private-token"] == GITLAB and gl.json["target_url"] == link
        assert statuses("gitea", f"/gitea/api/v1/repos/acme/config/statuses/{v1}") == [
            ("setpoint/app", "success"), ("setpoint/db", "success")]
        assert at("/gitea/")[0].headers["authorization"] == f"token {GITEA}"
        assert statuses("gitea", f"/forgejo/api/v1/repos/acme/config/statuses/{v1}") == [
            ("deploy/app", "success"), ("deploy/db", "success")]
        assert statuses("bitbucket", f"/bb/2.0/repositories/acme/config/commit/{v1}/statuses/build") == [
            ("setpoint/app", "SUCCESSFUL"), ("setpoint/db", "SUCCESSFUL")]
        assert statuses("bitbucket", f"/bbdc/rest/build-status/1.0/commits/{v1}") == [
            ("setpoint/app", "SUCCESSFUL"), ("setpoint/db", "SUCCESSFUL")]
        assert all(r.headers["authorization"] == f"Bearer {BITBUCKET}" for r in at("/bb"))
        assert not at("/v2/") and not at("/am")
        [digest] = at("/teams/")
        assert "1 target" not in check_teams(digest.json) and "2 target(s) deployed" in check_teams(digest.json)
        assert digest.path == TEAMS_PATH

        # one failure is under the threshold: no incident anywhere
        git_repo.commit({"app/web.yaml": manifests("web:2")}, "v2")
        v2 = git_repo.head()
        cluster = plugin.cluster("app")
        cluster.fail_next("apply", TemporaryError(f"backend refused {CANARY}"))
        assert engine.reconcile("app").failed
        assert not at("/v2/") and not at("/am") and len(at("/teams/")) == 1
        # the second failure in a row opens one incident on each service
        cluster.fail_next("apply", TemporaryError("backend unavailable"))
        assert engine.reconcile("app").failed
        cluster.fail_next("apply", TemporaryError("backend unavailable"))
        assert engine.reconcile("app").failed   # still failing: no second incident
        [trigger] = at("/v2/enqueue")
        check_pagerduty(trigger.json)
        assert trigger.json["event_action"] == "trigger" and trigger.json["dedup_key"] == "setpoint-app"
        assert trigger.json["payload"]["severity"] == "critical" and trigger.json["payload"]["component"] == "app"
        assert trigger.json["payload"]["custom_details"]["stage"] == "apply" and trigger.json["client_url"] == link
        [create] = at("/v2/alerts")
        check_opsgenie_create(create.json)
        assert create.headers["authorization"] == f"GenieKey {GENIE}"
        assert (create.json["alias"], create.json["priority"], create.json["entity"]) == ("setpoint-app", "P2", "app")
        [firing] = [check_alertmanager(r.json) for r in at("/am/api/v2/alerts")]
        assert firing["labels"] == {"alertname": "SetpointTargetFailing", "target": "app", "kind": "fake",
                                    "severity": "page", "team": "platform", "source": "setpoint"}
        ttl = rfc3339(firing["endsAt"]) - rfc3339(firing["startsAt"])
        assert ttl.total_seconds() == pytest.approx(86400, abs=2)
        assert [r.json["state"] for r in at(f"/gitea/api/v1/repos/acme/config/statuses/{v2}")] == ["failure"]
        assert [r.json["state"] for r in at(f"/api/v4/projects/acme%2Fplatform%2Fconfig/statuses/{v2}")] == ["failed"]
        assert [r.json["state"] for r in at(f"/bb/2.0/repositories/acme/config/commit/{v2}/")] == ["FAILED"]
        failing = at("/teams/")[-1].json
        assert "reconcile failing" in check_teams(failing)

        # recovery resolves the same incident everywhere
        assert not engine.reconcile("app").failed
        wait_for(lambda: len(at("/v2/enqueue")) == 2)
        resolve = at("/v2/enqueue")[1].json
        check_pagerduty(resolve)
        assert (resolve["event_action"], resolve["dedup_key"]) == ("resolve", "setpoint-app")
        [close] = at("/v2/alerts/setpoint-app/close")
        assert close.path == "/v2/alerts/setpoint-app/close?identifierType=alias" and close.json["source"] == "setpoint"
        assert close.headers["authorization"] == f"GenieKey {GENIE}"
        resolved = check_alertmanager(at("/am/api/v2/alerts")[1].json)
        assert resolved["labels"] == firing["labels"]
        assert abs((rfc3339(resolved["endsAt"]) - datetime.now(UTC)).total_seconds()) < 30
        assert [r.json["state"] for r in at(f"/gitea/api/v1/repos/acme/config/statuses/{v2}")][-1] == "success"
        assert any("recovered" in check_teams(r.json) for r in at("/teams/")[-2:])
    finally:
        ops.stop()
        engine.close()
        root.removeHandler(handler)
        root.setLevel(level)

    # no credential and no canary in any request body, log line or metric
    bodies = [r.body.decode() for r in receiver.requests if not r.path.startswith("/v2/enqueue")]
    logs = logged.getvalue()
    assert "HTTP Request: POST" in logs  # httpx logs each URL: scrubbed
    for text in [*bodies, logs]:
        assert CANARY not in text
        for secret in SECRETS:
            assert secret not in text
    # the PagerDuty routing key is in the PagerDuty body only, as its API requires
    assert all(CANARY not in r.body.decode() for r in at("/v2/enqueue"))


@pytest.mark.parametrize(("kind", "block", "message"), [
    ("pagerduty", {}, "give exactly one of routing_key_file or routing_key_env"),
    ("opsgenie", {"token_env": "X", "token_file": "y"}, "give exactly one of token_file or token_env"),
    ("gitlab_status", {"token_env": "X", "project": "no-namespace"}, "project"),
    ("bitbucket_status", {"token_env": "X", "target_url": "https://x.example"}, "Bitbucket Cloud needs repository"),
    ("alertmanager", {"url": "alertmanager:9093"}, "url"),
    ("email", {"host": "smtp", "from": "a@example.com", "to": ["b@example.com"], "username": "u",
               "password_env": "P", "security": "none"}, "a password is never sent without TLS"),
])
def test_settings_mistakes_are_refused_at_startup(tmp_path: Path, git_repo: GitRepo, kind: str,
                                                  block: dict[str, Any], message: str) -> None:
    git_repo.commit({"app/web.yaml": "[]\n"}, "v1")
    config = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}],
                          server={"enabled": False},
                          notifications={"notifiers": [{"name": "n", "kind": kind, kind: block}]})
    engine = make_engine(config, FakePlugin())
    from setpoint.server.runtime import start_operations

    try:
        with pytest.raises(ConfigError, match=re.escape(message)):
            start_operations(engine, None)
    finally:
        engine.close()
