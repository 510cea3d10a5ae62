"""A YAML alias bomb in a manifest is refused at render with the file named; no API server needed
(the render runs before any request, so nothing is applied)."""

from __future__ import annotations

from pathlib import Path

import pytest

from setpoint.api import Revision, SourceTree
from setpoint.errors import RenderError
from setpoint_kubernetes.render import Renderer
from setpoint_kubernetes.settings import KubernetesSettings

BOMB = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n"
        '  l0: &l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]\n'
        + "".join(f"  l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]\n" for n in range(1, 8)))


def test_an_alias_bomb_in_a_manifest_is_refused_at_render(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\ndata: {a: '1'}\n")
    (tmp_path / "bomb.yaml").write_text(BOMB)
    renderer = Renderer(KubernetesSettings(), "t", lambda p: Path(p), lambda group, kind: True)
    with pytest.raises(RenderError, match=r"bomb\.yaml.*expands to more than"):
        renderer.render(SourceTree(tmp_path, tmp_path, Revision("0" * 40)))
