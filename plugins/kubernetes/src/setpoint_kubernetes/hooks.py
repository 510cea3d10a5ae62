"""Lifecycle hooks of other tools in rendered manifests: Helm's ``helm.sh/hook`` and Argo CD's
``argocd.argoproj.io/hook``, plus Argo CD's sync waves.

setpoint has no hook lifecycle (no "run this Job before the upgrade, then delete it"): applying a
hook as an ordinary object would keep it forever, re-create it on every render when its name is
random (``randAlphaNum``, ``generateName``) and fight its delete policy. So:

* Helm test hooks (``test``, ``test-success``, ``test-failure``) and Argo CD's ``Skip`` are left
  out: they are not part of the release's desired state;
* every other hook is refused with a message naming it, unless the target sets ``hooks: skip``,
  which leaves them out too (run what they do another way: a Job with a fixed name in Git, an
  init container, a separate target ordered with ``depends_on``);
* ``argocd.argoproj.io/sync-wave`` orders applies like setpoint's own wave (``setpoint.dev/wave`` wins
  when both are set; apply.py); setpoint orders the applies by wave but does not wait for health between waves.
"""

from __future__ import annotations

from typing import Any, Literal

from setpoint.errors import RenderError

HELM_HOOK = "helm.sh/hook"
ARGO_HOOK = "argocd.argoproj.io/hook"
ARGO_WAVE = "argocd.argoproj.io/sync-wave"
ARGO_SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
HELM_TESTS = {"test", "test-success", "test-failure"}


def _annotations(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return annotations if isinstance(annotations, dict) else {}


def _describe(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or f"{meta.get('generateName', '')}*"
    return f"{obj.get('kind')}/{name}"


def filter_hooks(objects: list[dict[str, Any]], policy: Literal["refuse", "skip"]) -> tuple[list[dict[str, Any]], list[str]]:
    """The objects without hooks, and notes on what was left out. Raises for refused hooks."""
    kept: list[dict[str, Any]] = []
    skipped: list[str] = []
    refused: list[str] = []
    for obj in objects:
        annotations = _annotations(obj)
        helm = {h.strip() for h in str(annotations.get(HELM_HOOK, "")).split(",") if h.strip()}
        argo = {h.strip() for h in str(annotations.get(ARGO_HOOK, "")).split(",") if h.strip()}
        if not helm and not argo:
            kept.append(obj)
            continue
        what = f"{_describe(obj)} ({', '.join(sorted(helm | argo))})"
        if (helm and helm <= HELM_TESTS and not argo) or (argo == {"Skip"} and not helm):
            continue  # tests and Argo's Skip are not desired state
        if policy == "skip":
            skipped.append(what)
        else:
            refused.append(what)
    if refused:
        raise RenderError(
            f"the render contains lifecycle hooks, which setpoint does not run: {', '.join(refused[:5])}"
            + (f" and {len(refused) - 5} more" if len(refused) > 5 else "")
            + ". Set kubernetes.hooks: skip to leave them out (and do their work another way, e.g. a Job with a "
              "fixed name in Git), see docs/targets/kubernetes.md#hooks")
    notes = [f"left out {len(skipped)} hook object(s) (hooks: skip): {', '.join(skipped[:5])}"] if skipped else []
    return kept, notes


def argo_wave_note(objects: list[dict[str, Any]], wave_annotation: str) -> list[str]:
    """A note when objects order themselves with Argo CD's sync wave (apply.py honours it)."""
    count = sum(1 for obj in objects if ARGO_WAVE in _annotations(obj) and wave_annotation not in _annotations(obj))
    if not count:
        return []
    return [f"{count} object(s) carry {ARGO_WAVE}: applied in that order, as with {wave_annotation} "
            "(setpoint does not wait for health between waves; see docs/targets/kubernetes.md#argo-cd-annotations)"]
