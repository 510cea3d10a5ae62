"""``setpoint preview`` of a Compose target (issue 22 review, gap 3): the preview's driver works over
a private copy of the target's folder (the stable tree bind mounts point into), so an unchanged
project previews as unchanged, a changed file shows as a change, and the live project's tree,
memory and containers are untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from compose_helpers import ComposeEnv

from setpoint.preview import preview


def project(image: str) -> str:
    web = {"image": image, "command": ["httpd", "-f", "-p", "8080"], "volumes": ["./conf:/etc/conf:ro"],
           "environment": {"GREETING": "hello"}, "stop_grace_period": "1s", "init": True}
    return yaml.safe_dump({"services": {"web": web}}, sort_keys=False)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def test_preview_of_a_compose_target_runs_on_a_private_copy(compose_env: ComposeEnv, test_image: str) -> None:
    env = compose_env
    env.repo.commit({"app/compose.yaml": project(test_image), "app/conf/site.conf": "mode = blue\n"}, "v1")
    engine = env.engine()
    assert [o.error for o in engine.sync()] == [None]
    ids, folder = env.ids(), engine.state_dir / "targets" / "app"
    before, memory = tree(folder), engine.store.memory("app")

    unchanged = preview(engine, env.repo.head(), ["app"])
    assert not unchanged.failed and unchanged.targets[0].changes == [], unchanged.to_dict()

    env.repo.git("checkout", "--quiet", "-b", "feature")
    env.repo.commit({"app/conf/site.conf": "mode = green\n"}, "green")
    env.repo.git("checkout", "--quiet", "main")
    report = preview(engine, "feature")
    assert not report.failed, report.to_dict()
    [item] = report.targets
    assert [c["action"] for c in item.changes] == ["update"], item.changes
    assert tree(folder) == before and engine.store.memory("app") == memory
    assert (folder / "tree" / "conf" / "site.conf").read_text() == "mode = blue\n"
    assert env.ids() == ids and all(c.status == "running" for c in env.containers())
    # and the reconciler still sees nothing to do
    outcome: Any = engine.reconcile("app")
    assert outcome.error is None and not outcome.actions
    engine.close()
