"""Fast checks without the binary: settings, HCL scanning, the plan JSON mapping, the environment."""

from __future__ import annotations

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
