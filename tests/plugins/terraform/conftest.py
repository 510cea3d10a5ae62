"""Fixtures for the terraform target's tests: a module writer, a config writer and an engine that
loads the plugin through its real entry point. Every test runs the real binary and the
repository's test provider (tests/service_fixtures.py); the provider plugin cache is shared."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from setpoint.testing import GitRepo, make_engine, write_config


@pytest.fixture(scope="session")
def tf_plugin_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tf-plugin-cache")


def sg_module(provider: Any, world: Path, ports: list[int], *, name: str = "web", extra: str = "",
              backend: str = "") -> str:
    """A root module with one security group (a JSON document in ``world``) and an output."""
    head = provider.required_providers_block()
    if backend:
        head = head.replace("terraform {\n", "terraform {\n" + backend, 1)
    return head + f'''
resource "setpointtest_security_group" "{name}" {{
  path          = "{world / (name + '.json')}"
  name          = "{name}"
  ingress_ports = {json.dumps(ports)}
}}

output "sg_path" {{
  value = setpointtest_security_group.{name}.id
}}
{extra}'''


@dataclass
class TfSetup:
    tmp: Path
    repo: GitRepo
    world: Path
    provider: Any
    cli_config: str
    cache: Path
    terraform_bin: str
    env: dict[str, str]

    def config(self, settings: dict[str, Any] | None = None, top: dict[str, Any] | None = None, **target: Any) -> Path:
        block = {"cli_config": self.cli_config, "plugin_cache_dir": str(self.cache), "lock_timeout": "1s",
                 "binary": self.terraform_bin, **(settings or {})}
        spec = {"name": "net", "kind": "terraform", "path": "infra/net", "interval": "30s", "terraform": block,
                **target}
        return write_config(self.tmp, self.repo.path, [spec], **(top or {}))

    def engine(self, settings: dict[str, Any] | None = None, top: dict[str, Any] | None = None, **target: Any) -> Any:
        return make_engine(self.config(settings, top, **target), load_entrypoints=True)

    def sg(self, name: str = "web") -> dict[str, Any]:
        return json.loads((self.world / f"{name}.json").read_text())

    def terraform(self, cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None,
                  **kwargs: Any) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.terraform_bin, *args], cwd=cwd, env=env or self.env, capture_output=True, text=True,
                              timeout=300, **kwargs)
        if check and proc.returncode != 0:
            raise AssertionError(f"terraform {' '.join(args)}: {proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture(params=["terraform", pytest.param("tofu", marks=pytest.mark.tofu)])
def tf_binary(request: pytest.FixtureRequest, terraform_bin: str) -> str:
    """Every test of the plugin runs against terraform and against OpenTofu (docs/targets/terraform.md
    lists the differences found)."""
    if request.param == "tofu":
        return str(request.getfixturevalue("tofu_bin"))
    return terraform_bin


@pytest.fixture
def tfs(tmp_path: Path, git_repo: GitRepo, tf_provider: Any, tf_cli_config: str, tf_plugin_cache: Path,
        tf_binary: str, terraform_env: dict[str, str]) -> Iterator[TfSetup]:
    world = tmp_path / "world"
    world.mkdir()
    cache = tf_plugin_cache / Path(tf_binary).name  # one provider cache per binary
    cache.mkdir(exist_ok=True)
    env = {**terraform_env, "TF_PLUGIN_CACHE_DIR": str(cache)}
    yield TfSetup(tmp_path, git_repo, world, tf_provider, tf_cli_config, cache, tf_binary, env)


def realistic_module(provider: Any, world: Path, *, sg_name: str = "group", files_name: str = "config_files",
                     extra: str = "") -> dict[str, str]:
    """A root module written the way users write them: validated variables, locals, ``for_each``, a
    nested local module with ``count``, sensitive variables and outputs. ``sg_name``/``files_name``
    are the resource and module names, so a refactor can rename them (with ``moved`` blocks in
    ``extra``). Returns the files under the target's folder."""
    head = provider.required_providers_block()
    main = head + f'''
variable "environment" {{
  type    = string
  default = "prod"
  validation {{
    condition     = contains(["prod", "staging"], var.environment)
    error_message = "environment must be prod or staging."
  }}
}}

variable "groups" {{
  type = map(list(number))
  default = {{
    web   = [443]
    admin = [22, 443]
  }}
  validation {{
    condition     = alltrue([for ports in values(var.groups) : alltrue([for p in ports : p > 0 && p < 65536])])
    error_message = "ports must be between 1 and 65535."
  }}
}}

variable "db_password" {{
  type      = string
  default   = "s3cr3t-db-pass-91c2"
  sensitive = true
}}

locals {{
  prefix = "${{var.environment}}-net"
  world  = "{world}"
}}

resource "setpointtest_security_group" "{sg_name}" {{
  for_each      = var.groups
  path          = "${{local.world}}/${{local.prefix}}-${{each.key}}.json"
  name          = "${{local.prefix}}-${{each.key}}"
  description   = "managed by setpoint (${{each.key}})"
  ingress_ports = each.value
}}

module "{files_name}" {{
  source   = "./modules/files"
  dir      = local.world
  replicas = 2
  header   = "# ${{local.prefix}}"
}}

output "group_ids" {{
  value = {{ for k, g in setpointtest_security_group.{sg_name} : k => g.id }}
}}

output "db_password" {{
  value     = var.db_password
  sensitive = true
}}
{extra}'''
    files = head + '''
variable "dir" {
  type = string
}

variable "replicas" {
  type = number
  validation {
    condition     = var.replicas >= 1 && var.replicas <= 5
    error_message = "replicas must be 1 to 5."
  }
}

variable "header" {
  type = string
}

resource "setpointtest_file" "cfg" {
  count   = var.replicas
  path    = "${var.dir}/cfg-${count.index}.conf"
  content = "${var.header}\\nreplica = ${count.index}\\n"
}

output "paths" {
  value = setpointtest_file.cfg[*].path
}
'''
    return {"main.tf": main, "modules/files/main.tf": files}


def under(folder: str, files: dict[str, str]) -> dict[str, str]:
    return {f"{folder}/{name}": text for name, text in files.items()}
