"""A target whose render reads files outside its path (a Kustomize base, a Terraform module) is
never rendered at an older revision than those files at the head: not in a new process that
remembers nothing, not when Git adds the dependency (issue 18, item 1; the Kubernetes plugin's
test_k8s_render_revision.py does the same against the real API server)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

from setpoint import hookimpl
from setpoint.api import Desired, Resource, SourceTree, TargetDriver
from setpoint.testing import FakePlugin, FakeTarget, GitRepo, make_engine, write_config


class BasedTarget(FakeTarget):
    """The fake kind, plus the resources of the folders named in ``uses`` (relative to the checkout)."""

    def _bases(self, tree: SourceTree) -> list[str]:
        uses = tree.root / "uses"
        return uses.read_text().split() if uses.is_file() else []

    def render(self, tree: SourceTree) -> Desired:
        desired = super().render(tree)
        resources = list(desired.resources.values())
        for base in self._bases(tree):
            for path in sorted((tree.checkout / base).glob("*.yaml")):
                for item in yaml.safe_load(path.read_text()):
                    body = {f: item[f] for f in ("replicas", "image") if f in item}
                    resources.append(Resource(f"{item['kind']}/{item['name']}", item["kind"], item["name"], body))
        return Desired.of(resources)

    def watched_paths(self, tree: SourceTree) -> list[str]:
        return self._bases(tree)


class BasedPlugin(FakePlugin):
    @hookimpl
    def setpoint_register_target_kinds(self, register: Callable[[type[TargetDriver]], None]) -> None:
        register(type("BoundBasedTarget", (BasedTarget,), {"plugin": self, "kind": "based"}))


def image(plugin: BasedPlugin) -> str:
    return str(plugin.cluster("app").resources["Deployment/web"]["image"])


def test_render_reveals_newer_watched_files(tmp_path: Path, git_repo: GitRepo) -> None:
    plugin = BasedPlugin()
    config = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "based", "path": "app"}])
    git_repo.commit({"base/web.yaml": yaml.safe_dump([{"kind": "Deployment", "name": "web", "image": "web:5"}]),
                     "app/uses": "base\n", "app/cm.yaml": yaml.safe_dump([{"kind": "ConfigMap", "name": "c"}])}, "v5")
    engine = make_engine(config, plugin)
    assert engine.reconcile("app").error is None and image(plugin) == "web:5"
    engine.close()
    six = git_repo.commit({"base/web.yaml": yaml.safe_dump([{"kind": "Deployment", "name": "web", "image": "web:6"}])},
                          "v6: only the base")
    # a new process: the fake driver remembers no watched paths, so the first pick is the app's last commit
    engine = make_engine(config, plugin)
    out = engine.reconcile("app")
    assert out.error is None and out.revision.sha == six and image(plugin) == "web:6", "never the older base"
    assert engine.runners["app"].watched_paths == ["base"]
    engine.close()
