"""Cost of a no-op reconcile: setpoint's terraform target vs a bare `terraform plan -detailed-exitcode`.

Run: eval "$(dev/services env)"; .venv/bin/python tests/plugins/terraform/bench_tf_noop.py [ROUNDS]
Both sides plan the same one-resource module with the test provider, already initialised.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import sg_module  # noqa: E402

from setpoint.testing import GitRepo, make_engine, write_config  # noqa: E402


class Provider:
    source, version = os.environ.get("SETPOINT_TF_PROVIDER_SOURCE", "local.test/setpoint/setpointtest"), "0.1.0"

    def required_providers_block(self) -> str:
        return ("terraform {\n  required_providers {\n"
                f'    setpointtest = {{ source = "{self.source}", version = "{self.version}" }}\n  }}\n}}\n')


def main(rounds: int) -> None:
    binary, cli_config = os.environ["SETPOINT_TERRAFORM_BIN"], os.environ["SETPOINT_TF_CLI_CONFIG"]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        world = tmp / "world"
        world.mkdir()
        repo = GitRepo(tmp / "repo")
        repo.commit({"infra/net/main.tf": sg_module(Provider(), world, [443])}, "net")
        config = write_config(tmp, repo.path, [{"name": "net", "kind": "terraform", "path": "infra/net",
                                                "terraform": {"cli_config": cli_config, "binary": binary}}])
        engine = make_engine(config, load_entrypoints=True)
        assert engine.reconcile("net").error is None
        setpoint_times = []
        for _ in range(rounds):
            started = time.perf_counter()
            out = engine.reconcile("net")
            setpoint_times.append(time.perf_counter() - started)
            assert not out.actions and out.error is None
        engine.close()

        bare = tmp / "bare"
        bare.mkdir()
        (bare / "main.tf").write_text(sg_module(Provider(), world, [443]))
        env = {**os.environ, "TF_CLI_CONFIG_FILE": cli_config, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
        subprocess.run([binary, "init", "-input=false"], cwd=bare, env=env, check=True, capture_output=True)
        subprocess.run([binary, "apply", "-auto-approve", "-input=false"], cwd=bare, env=env, check=True,
                       capture_output=True)
        bare_times = []
        for _ in range(rounds):
            started = time.perf_counter()
            rc = subprocess.run([binary, "plan", "-input=false", "-detailed-exitcode", "-refresh=true"], cwd=bare,
                                env=env, capture_output=True).returncode
            bare_times.append(time.perf_counter() - started)
            assert rc == 0, rc
    print(f"no-op reconcile, median of {rounds}: setpoint {statistics.median(setpoint_times):.2f}s "
          f"(min {min(setpoint_times):.2f}s), bare terraform plan -detailed-exitcode "
          f"{statistics.median(bare_times):.2f}s (min {min(bare_times):.2f}s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
