"""Units of the ansible plugin that need no host: settings, reading ansible-runner events, diffs
turned into fields with secrets redacted. The behaviour on real hosts is in the other modules."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from setpoint.secrets import Secret
from setpoint_ansible.runner import TaskResult, _collect
from setpoint_ansible.settings import AnsibleSettings
from setpoint_ansible.target import _fields


def test_settings_need_exactly_one_inventory_and_paths_inside_the_folder() -> None:
    with pytest.raises(ValidationError, match="exactly one of 'inventory'"):
        AnsibleSettings.model_validate({})
    with pytest.raises(ValidationError, match="exactly one of 'inventory'"):
        AnsibleSettings.model_validate({"inventory": "hosts.ini", "hosts": {"a": {}}})
    for key, value in (("playbook", "../site.yml"), ("inventory", "/etc/ansible/hosts"), ("vars_files", ["../x.yml"])):
        with pytest.raises(ValidationError, match="inside the target's folder"):
            AnsibleSettings.model_validate({"hosts": {"a": {}}, key: value})
    with pytest.raises(ValidationError, match="Extra inputs"):
        AnsibleSettings.model_validate({"hosts": {"a": {}}, "become_password": "x"})
    assert AnsibleSettings.model_validate({"hosts": {"a": {}}, "timeout": "5m"}).timeout == 300


def event(kind: str, host: str = "", task: str = "", **data: Any) -> dict[str, Any]:
    return {"event": kind, "event_data": {"host": host, "task": task, "resolved_action": "ansible.builtin.copy", **data}}


def test_events_per_host_and_task() -> None:
    censored = {"censored": "the output has been hidden due to the fact that 'no_log: true' was specified"}
    result = _collect([
        event("runner_on_ok", "a", "config", res={"changed": True, "diff": [{"before": "1", "after": "2"}]}),
        event("runner_on_ok", "a", "secret", res=censored),
        event("runner_on_ok", "a", "items", res={"changed": False, "results": [{"changed": True, "diff": {"after": "x"}}]}),
        event("playbook_on_notify", "a", "config", handler="restart"),
        event("runner_on_ok", "a", "restart", res={"changed": True}),
        event("runner_on_skipped", "a", "migrate", res={"msg": "skipped, running in check mode"}),
        event("runner_on_ok", "a", "config", res={"changed": False}),
        event("runner_on_failed", "b", "config", res={"msg": "Permission denied"}),
        event("runner_on_unreachable", "c", "config", res={"msg": "ssh: connect to host 127.0.0.1 port 22303: refused"}),
        event("playbook_on_stats", processed={"a": 1, "b": 1, "c": 1}, failures={"b": 1}, dark={"c": 1}),
    ])
    tasks = {t.key: t for t in result.tasks}
    assert tasks["a: config"].status == "changed" and tasks["a: config"].diffs == [{"before": "1", "after": "2"}]
    assert tasks["a: secret"].no_log and tasks["a: secret"].diffs == [] and tasks["a: secret"].message == ""
    assert tasks["a: items"].status == "changed" and tasks["a: items"].diffs == [{"after": "x"}]
    assert tasks["a: restart"].handler
    assert tasks["a: migrate"].check_mode_skip
    assert tasks["a: config #2"].status == "ok"  # a repeated task name gets its own key
    assert result.hosts["a"].status == "ok"
    assert result.hosts["b"].status == "failed" and "Permission denied" in result.hosts["b"].message
    assert result.hosts["c"].status == "unreachable" and "port 22303" in result.hosts["c"].message


def test_fields_redact_secrets_on_both_sides() -> None:
    task = TaskResult("a", "db", "a: db", "copy", "changed",
                      [{"before_header": "/etc/db.conf", "after_header": "/tmp/x.j2",
                        "before": "password=typed-by-hand\n", "after": "password=hunter2-long\n"}])
    [field] = _fields(task, {"hunter2-long"})
    assert field.path == "/etc/db.conf"
    assert isinstance(field.after, Secret) and isinstance(field.before, Secret)
    assert "hunter2" not in str(field.to_record())
    plain = TaskResult("a", "f", "a: f", "file", "changed", [{"before": {"path": "/x", "state": "absent"},
                                                                "after": {"path": "/x", "state": "directory"}}])
    assert [(f.path, f.before, f.after) for f in _fields(plain, set())] == [("diff.state", "absent", "directory")]
    hidden = TaskResult("a", "t", "a: t", "copy", "changed", no_log=True)
    assert [f.path for f in _fields(hidden, set())] == ["(no_log)"]


def test_a_no_log_result_still_counts_as_changed() -> None:
    censored = {"censored": "the output has been hidden due to the fact that 'no_log: true' was specified"}
    result = _collect([
        {**event("runner_on_ok", "a", "token", res=censored), "stdout": "\x1b[0;33mchanged: [a]\x1b[0m"},
        {**event("runner_on_ok", "a", "other", res=censored), "stdout": "ok: [a]"},
    ])
    assert [(t.key, t.status, t.no_log) for t in result.tasks] == [("a: token", "changed", True),
                                                                    ("a: other", "ok", True)]


def test_a_failure_a_rescue_handled_leaves_the_host_ok() -> None:
    result = _collect([
        event("runner_on_failed", "a", "try the fast path", res={"msg": "no fast path"}),
        event("runner_on_ok", "a", "fall back", res={"changed": True}),
        event("playbook_on_stats", processed={"a": 1}, failures={}, rescued={"a": 1}, dark={}),
    ])
    assert result.hosts["a"].status == "ok"
    assert [t.status for t in result.tasks] == ["failed", "changed"]
