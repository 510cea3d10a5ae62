"""The terraform target passes the driver conformance suite with the real binary and the test provider:
one ``setpointtest_file`` per resource, its value the file's content (read back on refresh)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from setpoint.testing.conformance import ConformanceAdapter, Encrypt, TargetConformance

pytestmark = pytest.mark.terraform


class TerraformAdapter(ConformanceAdapter):
    kind = "terraform"
    # terraform keeps every attribute, sensitive ones included, in clear in its state (as documented)
    secrets_kept_by_design = ("targets/*/terraform/state/terraform.tfstate*",)

    def __init__(self, workdir: Path, provider: Any, cli_config: str, plugin_cache: Path) -> None:
        self.world = workdir / "world"
        self.world.mkdir(parents=True, exist_ok=True)
        self.provider = provider
        self.cli_config = cli_config
        self.plugin_cache = plugin_cache

    def settings(self) -> dict[str, Any]:
        return {"cli_config": self.cli_config, "plugin_cache_dir": str(self.plugin_cache), "lock_timeout": "1s"}

    def _resource(self, name: str, content: str) -> str:
        return (f'resource "setpointtest_file" "{name}" {{\n'
                f'  path    = "{self.world / name}"\n  content = {content}\n}}\n')

    def files(self, values: Mapping[str, str]) -> dict[str, str | bytes]:
        body = "".join(self._resource(name, json.dumps(value)) for name, value in values.items())
        return {"main.tf": self.provider.required_providers_block() + body}

    def secret_files(self, values: Mapping[str, str], secret_name: str, encrypt: Encrypt) -> dict[str, str | bytes]:
        plain = {k: v for k, v in values.items() if k != secret_name}
        main = str(self.files(plain)["main.tf"])
        main += f'variable "{secret_name}" {{\n  type      = string\n  sensitive = true\n}}\n'
        main += self._resource(secret_name, f"var.{secret_name}")
        return {"main.tf": main, "secret.auto.tfvars": encrypt(f"{secret_name} = {json.dumps(values[secret_name])}\n")}

    def broken_files(self) -> dict[str, str | bytes]:
        return {"broken.tf": 'resource "setpointtest_file" "x" {\n  path = \n'}

    def read_live(self) -> dict[str, str]:
        return {p.name: p.read_text() for p in sorted(self.world.iterdir()) if p.is_file()}

    def change_by_hand(self, name: str, value: str) -> None:
        (self.world / name).write_text(value)

    def delete_by_hand(self, name: str) -> None:
        (self.world / name).unlink()

    def create_by_hand(self, name: str, value: str) -> None:
        (self.world / name).write_text(value)


@pytest.fixture(scope="module")
def plugin_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tf-conformance-plugins")


class TestTerraformConformance(TargetConformance):
    @pytest.fixture
    def adapter(self, tmp_path: Path, tf_provider: Any, tf_cli_config: str, plugin_cache: Path,
                terraform_bin: str) -> TerraformAdapter:
        return TerraformAdapter(tmp_path, tf_provider, tf_cli_config, plugin_cache)
