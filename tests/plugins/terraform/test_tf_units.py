"""Fast checks without the binary: settings, HCL scanning, the plan JSON mapping, the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from setpoint.api import Action
from setpoint.secrets import Secret
from setpoint_terraform.binary import Result, StateLocked, Terraform, build_env
from setpoint_terraform.hcl import HclSyntaxError, scan
from setpoint_terraform.planjson import UNKNOWN, Redactor, parse
from setpoint_terraform.settings import TerraformSettings


def test_settings() -> None:
    s = TerraformSettings.model_validate({"lock_timeout": "2m", "timeout": 90, "apply_policy": "no-destroy"})
    assert (s.lock_timeout, s.timeout, s.apply_policy, s.workspace) == (120.0, 90.0, "no-destroy", "default")
    for bad in ({"module": "../other"}, {"apply_policy": "yolo"}, {"lock_timeout": "soon"}, {"unknown": 1},
                {"workspace": "a b"}, {"var_files": ["/etc/x.tfvars"]}):
        with pytest.raises(ValidationError):
            TerraformSettings.model_validate(bad)


def test_scan_finds_local_modules_and_init_inputs() -> None:
    files = {
        "infra/net/main.tf": b'terraform {\n  required_providers {\n    aws = { source = "hashicorp/aws", version = "~> 5.0" }\n'
                             b'  }\n  backend "s3" {\n    bucket = "b"\n  }\n}\nmodule "vpc" {\n  source = "../modules/vpc"\n}\n'
                             b'resource "aws_instance" "x" {}\n',
        "infra/modules/vpc/main.tf": b'module "sub" {\n  source = "./sub"\n}\nmodule "remote" {\n'
                                     b'  source = "terraform-aws-modules/vpc/aws"\n  version = "5.1.0"\n}\n',
        "infra/modules/vpc/sub/main.tf": b'data "http" "x" {}\n',
    }
    result = scan("infra/net", files, lambda path, content: "broken")
    assert result.local_modules == ["infra/modules/vpc", "infra/modules/vpc/sub"]
    assert result.backend == "s3"
    inputs = result.init_inputs
    assert inputs["provider_types"] == ["aws", "http"]
    assert inputs["modules"]["infra/modules/vpc:remote"] == {"source": "terraform-aws-modules/vpc/aws", "version": "5.1.0"}
    assert inputs["providers"]["infra/net:aws"]["version"] == "~> 5.0"


def test_syntax_error_has_file_and_line_unless_terraform_accepts_it() -> None:
    files = {"m/a.tf": b'variable "x" {\n  default = [1, 2\n}\n'}
    with pytest.raises(HclSyntaxError) as err:
        scan("m", files, lambda path, content: "terraform says no")
    assert str(err.value).startswith("m/a.tf:3:1: syntax error")
    # a file python-hcl2 cannot read but terraform accepts is scanned by pattern instead
    files["m/a.tf"] += b'module "v" {\n  source = "./v"\n}\n'
    result = scan("m", files, lambda path, content: None)
    assert result.unparsed == ["m/a.tf"] and result.local_modules == ["m/v"]
    with pytest.raises(HclSyntaxError, match="outside the repository"):
        scan("m", {"m/a.tf": b'module "v" {\n  source = "../../v"\n}\n'}, lambda p, c: None)


def plan_doc(ports_live: list[int], timestamp: str = "2026-11-28T00:00:00Z") -> dict:
    return {
        "timestamp": timestamp,
        "resource_drift": [{"address": "sg.web", "mode": "managed", "type": "sg", "change": {
            "actions": ["update"], "before": {"ports": [443]}, "after": {"ports": ports_live}}}],
        "resource_changes": [
            {"address": "sg.web", "mode": "managed", "type": "sg", "change": {
                "actions": ["update"], "before": {"ports": ports_live, "pw": "old-password-1"},
                "after": {"ports": [443], "pw": "new-password-2"}, "after_unknown": {},
                "before_sensitive": {}, "after_sensitive": {}}},
            {"address": "module.m.f.x[0]", "module_address": "module.m", "mode": "managed", "type": "f", "change": {
                "actions": ["delete", "create"], "before": {"id": "a", "token": "t0k3n-abc"},
                "after": {"id": None, "token": "t0k3n-def"}, "after_unknown": {"id": True},
                "before_sensitive": {"token": True}, "after_sensitive": {"token": True}}},
            {"address": "data.d.x", "mode": "data", "type": "d", "change": {"actions": ["read"]}},
            {"address": "f.keep", "mode": "managed", "type": "f", "change": {"actions": ["no-op"]}},
            {"address": "f.gone", "mode": "managed", "type": "f", "change": {"actions": ["delete"], "before": {"id": "g"}}},
        ],
        "output_changes": {"dsn": {"actions": ["update"], "before": "x://old-password-1", "after": "x://new-password-2"},
                           "same": {"actions": ["no-op"], "before": 1, "after": 1}},
        "prior_state": {"values": {"outputs": {"dsn": {"value": "x://old", "sensitive": False}},
                                   "root_module": {"resources": [{"address": "sg.web", "mode": "managed", "type": "sg",
                                                                  "values": {"ports": ports_live}}]}}},
    }


def test_plan_mapping() -> None:
    plan = parse(plan_doc([22, 443]), Redactor(["new-password-2"]))
    changes = {c.key: c for c in plan.changes}
    assert list(changes) == ["sg.web", "module.m.f.x[0]", "f.gone", "outputs"]
    assert changes["module.m.f.x[0]"].action == Action.REPLACE and changes["module.m.f.x[0]"].namespace == "module.m"
    assert changes["f.gone"].action == Action.DELETE
    fields = {f.path: f for f in changes["sg.web"].fields}
    assert (fields["ports"].before, fields["ports"].after) == ([22, 443], [443])
    # a decrypted value is secret, and so is the old value on the other side of the diff
    assert isinstance(fields["pw"].after, Secret) and isinstance(fields["pw"].before, Secret)
    replaced = {f.path: f for f in changes["module.m.f.x[0]"].fields}
    assert replaced["id"].after == UNKNOWN and isinstance(replaced["token"].before, Secret)
    out = {f.path: f for f in changes["outputs"].fields}
    assert list(out) == ["dsn"] and isinstance(out["dsn"].after, Secret)
    assert plan.drift["sg.web"][0].path == "ports"
    assert set(plan.desired_keys) == {"sg.web", "module.m.f.x[0]", "f.keep", "outputs"}
    assert "old-password-1" not in repr([c.to_record() for c in plan.changes])
    # the id depends on what apply would do, not on when it was planned
    assert parse(plan_doc([22, 443], "2027-01-01T00:00:00Z"), Redactor(["new-password-2"])).content_id == plan.content_id
    assert parse(plan_doc([22, 8080]), Redactor(["new-password-2"])).content_id != plan.content_id


def test_environment_is_an_allow_list() -> None:
    source = {"PATH": "/bin", "HOME": "/root", "AWS_PROFILE": "prod", "AWS_SECRET_ACCESS_KEY": "k" * 20,
              "GITHUB_TOKEN": "ghp_x", "TF_VAR_db": "x", "SETPOINT_STATE": "y"}
    env = build_env(["AWS_*"], {"TF_DATA_DIR": "/d"}, source)
    assert set(env) == {"PATH", "HOME", "AWS_PROFILE", "AWS_SECRET_ACCESS_KEY", "TF_DATA_DIR", "TF_IN_AUTOMATION",
                        "TF_INPUT", "CHECKPOINT_DISABLE"}


def test_lock_error_names_the_holder_and_never_unlocks() -> None:
    detail = ("Error message: resource temporarily unavailable\nLock Info:\n  ID:        1234-abcd\n  Path:      x\n"
              "  Operation: OperationTypeApply\n  Who:       alice@laptop\n  Version:   1.11.4\n"
              "  Created:   2026-11-28 08:09:31 +0000 UTC\n")
    result = Result(1, "", "", [{"type": "diagnostic", "diagnostic": {"severity": "error",
                                                                     "summary": "Error acquiring the state lock",
                                                                     "detail": detail}}])
    with pytest.raises(StateLocked) as err:
        Terraform("/bin/terraform", {}, 10).fail("plan", result)
    message = str(err.value)
    assert "alice@laptop" in message and "OperationTypeApply" in message and "1234-abcd" in message
    assert "never force-unlocks" in message


def test_state_only_changes_are_updates_with_what_they_do() -> None:
    from setpoint_terraform.planjson import state_only

    same = {"id": "/w/a.json", "path": "/w/a.json"}
    doc = {"resource_changes": [
        {"address": "x.b", "previous_address": "x.a", "mode": "managed", "type": "x",
         "change": {"actions": ["no-op"], "before": same, "after": same}},
        {"address": "x.c", "mode": "managed", "type": "x",
         "change": {"actions": ["no-op"], "before": same, "after": same, "importing": {"id": "/w/c.json"}}},
        {"address": "x.d", "mode": "managed", "type": "x", "change": {"actions": ["forget"], "before": same}},
        {"address": "x.e", "previous_address": "x.old", "mode": "managed", "type": "x",
         "change": {"actions": ["update"], "before": {"n": 1}, "after": {"n": 2}}},
        {"address": "x.f", "mode": "managed", "type": "x", "change": {"actions": ["no-op"], "before": same, "after": same}},
    ]}
    plan = parse(doc, Redactor([]))
    by_key = {c.key: c for c in plan.changes}
    assert set(by_key) == {"x.b", "x.c", "x.d", "x.e"} and all(c.action == Action.UPDATE for c in plan.changes)
    assert [(f.path, f.before, f.after) for f in by_key["x.b"].fields] == [("(moved from)", "x.a", "x.b")]
    assert [(f.path, f.after) for f in by_key["x.c"].fields] == [("(imported)", "import id /w/c.json")]
    assert [f.path for f in by_key["x.e"].fields] == ["(moved from)", "n"]
    assert [state_only(by_key[k]) for k in ("x.b", "x.c", "x.d", "x.e")] == ["move", "import", "forget", None]
    assert "x.d" in plan.desired_keys  # the core records the forget against a desired resource


def test_held_plans_refuse_a_changed_record_or_file(tmp_path: Path) -> None:
    import json
    import stat

    from setpoint_terraform.heldplans import HeldPlans, TamperedPlan

    source = tmp_path / "p.tfplan"
    source.write_bytes(b"PK plan bytes")
    plans = HeldPlans(tmp_path / "plans")
    plans.pin("abc123", source, content_id="c" * 64, serial=3, lineage="L", snapshot_digest="d1")
    pinned = plans.get("abc123")
    assert pinned is not None and pinned.stale_reason(3, "L", "d1") is None
    assert "serial 3 -> 4" in (pinned.stale_reason(4, "L", "d1") or "")
    assert "lineage" in (pinned.stale_reason(3, "M", "d1") or "")
    assert "module or its inputs" in (pinned.stale_reason(3, "L", "d2") or "")
    assert stat.S_IMODE((tmp_path / "plans").stat().st_mode) == 0o700
    record = tmp_path / "plans" / "abc123.json"
    doc = json.loads(record.read_text())
    doc["record"]["serial"] = 4  # someone makes an old plan look current
    record.write_text(json.dumps(doc))
    with pytest.raises(TamperedPlan, match="signature"):
        plans.get("abc123")
    plans.discard("abc123")
    assert plans.get("abc123") is None
