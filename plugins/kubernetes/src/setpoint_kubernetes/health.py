"""Health of live objects: built-in checks for the workload and infrastructure kinds, kstatus-style
conditions for custom resources, and the ``setpoint_check_health`` hook for everything else.

Statuses follow the kinds' controllers: a rollout the controller has not observed yet, or one still
replacing pods, is Progressing; a controller that gave up (``ProgressDeadlineExceeded``, a failed
Job, a lost volume) is Degraded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from setpoint.api import Health, HealthStatus

H = HealthStatus
Check = Callable[[dict[str, Any]], tuple[HealthStatus, str]]


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or [] if isinstance(c, dict)}


def _observed(obj: dict[str, Any]) -> bool:
    """Has the controller seen the current spec? (No observedGeneration at all: not yet.)"""
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    return observed is not None and (generation is None or observed >= generation)


def deployment(obj: dict[str, Any]) -> tuple[HealthStatus, str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if spec.get("paused"):
        return H.HEALTHY, "paused"
    if not _observed(obj):
        return H.PROGRESSING, "waiting for the deployment controller to observe the new spec"
    progressing = _conditions(obj).get("Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return H.DEGRADED, f"progress deadline exceeded: {progressing.get('message', '')}".strip()
    want = spec.get("replicas", 1)
    updated, ready = status.get("updatedReplicas", 0), status.get("availableReplicas", 0)
    total = status.get("replicas", 0)
    if updated < want:
        return H.PROGRESSING, f"{updated} of {want} replicas updated"
    if total > updated:
        return H.PROGRESSING, f"{total - updated} old replicas pending termination"
    if ready < updated:
        return H.PROGRESSING, f"{ready} of {updated} updated replicas available"
    return H.HEALTHY, f"{ready} of {want} replicas available"


def statefulset(obj: dict[str, Any]) -> tuple[HealthStatus, str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not _observed(obj):
        return H.PROGRESSING, "waiting for the statefulset controller to observe the new spec"
    want = spec.get("replicas", 1)
    ready = status.get("availableReplicas", status.get("readyReplicas", 0))
    if ready < want:
        return H.PROGRESSING, f"{ready} of {want} replicas ready"
    strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
    if strategy == "RollingUpdate":
        partition = ((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition", 0)
        if status.get("updatedReplicas", 0) < want - partition:
            return H.PROGRESSING, f"{status.get('updatedReplicas', 0)} of {want - partition} replicas updated"
        if partition == 0 and status.get("updateRevision") and status.get("currentRevision") != status.get("updateRevision"):
            return H.PROGRESSING, "rolling update in progress"
    return H.HEALTHY, f"{ready} of {want} replicas ready"


def daemonset(obj: dict[str, Any]) -> tuple[HealthStatus, str]:
    status = obj.get("status") or {}
    if not _observed(obj):
        return H.PROGRESSING, "waiting for the daemonset controller to observe the new spec"
    want = status.get("desiredNumberScheduled", 0)
    if status.get("updatedNumberScheduled", 0) < want:
        return H.PROGRESSING, f"{status.get('updatedNumberScheduled', 0)} of {want} pods updated"
    if status.get("numberAvailable", 0) < want:
        return H.PROGRESSING, f"{status.get('numberAvailable', 0)} of {want} pods available"
    return H.HEALTHY, f"{want} pods available"


def replicaset(obj: dict[str, Any]) -> tuple[HealthStatus, str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not _observed(obj):
        return H.PROGRESSING, "waiting for the replicaset controller"
    failure = _conditions(obj).get("ReplicaFailure") or {}
    if failure.get("status") == "True":
        return H.DEGRADED, failure.get("message", "replica failure")
    want, ready = spec.get("replicas", 1), status.get("availableReplicas", 0)
    if ready < want:
        return H.PROGRESSING, f"{ready} of {want} replicas available"
    return H.HEALTHY, f"{ready} of {want} replicas available"


def pod(obj: dict[str, Any]) -> tuple[HealthStatus, str]:
    status = obj.get("status") or {}
    phase = status.get("phase", "Pending")
    if phase == "Succeeded":
        return H.HEALTHY, "completed"
    if phase == "Failed":
        return H.DEGRADED, status.get("message") or status.get("reason") or "failed"
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
                                     "InvalidImageName"):
            return H.DEGRADED, f"{container.get('name')}: {waiting['reason']}"
    if phase == "Running" and (_conditions(obj).get("Ready") or {}).get("status") == "True":
        return H.HEALTHY, "running and ready"
    return H.PROGRESSING, f"{phase.lower()}"


def job(obj: dict[str, Any]) -> tuple[HealthStatus, str]:
    conditions = _conditions(obj)
    if (conditions.get("Failed") or {}).get("status") == "True":
        return H.DEGRADED, conditions["Failed"].get("message") or conditions["Failed"].get("reason") or "failed"
    if (conditions.get("Complete") or {}).get("status") == "True":
        return H.HEALTHY, "complete"
    if (obj.get("spec") or {}).get("suspend"):
        return H.HEALTHY, "suspended"
    return H.PROGRESSING, f"{(obj.get('status') or {}).get('active', 0)} active pod(s)"


def _load_balanced(obj: dict[str, Any], what: str) -> tuple[HealthStatus, str]:
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    if ingress:
        return H.HEALTHY, "address " + ", ".join(str(i.get("ip") or i.get("hostname")) for i in ingress)
    return H.PROGRESSING, f"waiting for the {what} to get an address"


def service(obj: dict[str, Any]) -> tuple[HealthStatus, str]:
    if (obj.get("spec") or {}).get("type") == "LoadBalancer":
        return _load_balanced(obj, "load balancer")
    return H.HEALTHY, ""


def ingress(obj: dict[str, Any]) -> tuple[HealthStatus, str]:
    return _load_balanced(obj, "ingress")


def pvc(obj: dict[str, Any]) -> tuple[HealthStatus, str]:
    phase = (obj.get("status") or {}).get("phase", "Pending")
    if phase == "Bound":
        return H.HEALTHY, "bound"
    if phase == "Lost":
        return H.DEGRADED, "the bound volume is lost"
    return H.PROGRESSING, "waiting for a volume"


def crd(obj: dict[str, Any]) -> tuple[HealthStatus, str]:
    conditions = _conditions(obj)
    if (conditions.get("NamesAccepted") or {}).get("status") == "False":
        return H.DEGRADED, conditions["NamesAccepted"].get("message", "names not accepted")
    if (conditions.get("Established") or {}).get("status") == "True":
        return H.HEALTHY, "established"
    return H.PROGRESSING, "not established yet"


def namespace(obj: dict[str, Any]) -> tuple[HealthStatus, str]:
    phase = (obj.get("status") or {}).get("phase", "Active")
    if phase == "Terminating":
        return H.PROGRESSING, "terminating"
    return H.HEALTHY, ""


def kstatus(obj: dict[str, Any]) -> tuple[HealthStatus, str] | None:
    """Conditions as kstatus reads them (Ready, Stalled, Reconciling, observedGeneration);
    None when the object has no status conditions at all."""
    status = obj.get("status") or {}
    conditions = _conditions(obj)
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if observed is not None and generation is not None and observed < generation:
        return H.PROGRESSING, "the controller has not observed the latest generation"
    stalled = conditions.get("Stalled") or {}
    if stalled.get("status") == "True":
        return H.DEGRADED, stalled.get("message") or stalled.get("reason") or "stalled"
    if (conditions.get("Reconciling") or {}).get("status") == "True":
        return H.PROGRESSING, conditions["Reconciling"].get("message") or "reconciling"
    ready = conditions.get("Ready") or conditions.get("Available")
    if ready is not None:
        if ready.get("status") == "True":
            return H.HEALTHY, ready.get("message", "")
        if ready.get("status") == "False" and ready.get("reason") in ("Failed", "Error"):
            return H.DEGRADED, str(ready.get("message") or ready.get("reason"))
        return H.PROGRESSING, ready.get("message") or ready.get("reason") or "not ready"
    if not conditions:
        return None
    return H.HEALTHY, ""


def declares_conditions(crd: dict[str, Any], version: str) -> bool:
    """The CRD's schema for ``version`` has ``status.conditions``: its controller reports them."""
    for served in (crd.get("spec") or {}).get("versions") or []:
        if served.get("name") != version:
            continue
        schema = (served.get("schema") or {}).get("openAPIV3Schema") or {}
        status = (schema.get("properties") or {}).get("status") or {}
        return "conditions" in (status.get("properties") or {})
    return False


CHECKS: dict[tuple[str, str], Check] = {
    ("apps", "Deployment"): deployment,
    ("apps", "StatefulSet"): statefulset,
    ("apps", "DaemonSet"): daemonset,
    ("apps", "ReplicaSet"): replicaset,
    ("", "Pod"): pod,
    ("batch", "Job"): job,
    ("", "Service"): service,
    ("", "PersistentVolumeClaim"): pvc,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): crd,
    ("", "Namespace"): namespace,
    ("networking.k8s.io", "Ingress"): ingress,
}

#: Built-in kinds that are healthy when they exist (no controller reports on them).
PASSIVE_GROUPS = {"", "rbac.authorization.k8s.io", "storage.k8s.io", "scheduling.k8s.io", "policy",
                  "admissionregistration.k8s.io", "networking.k8s.io", "coordination.k8s.io", "node.k8s.io",
                  "autoscaling", "apps", "batch", "discovery.k8s.io", "certificates.k8s.io", "apiregistration.k8s.io"}


def builtin_check(group: str, kind: str, obj: dict[str, Any]) -> tuple[HealthStatus, str] | None:
    check = CHECKS.get((group, kind))
    if check is not None:
        return check(obj)
    if group in PASSIVE_GROUPS:
        return H.HEALTHY, ""
    return None


def summarize(statuses: dict[str, tuple[HealthStatus, str]], missing: list[str]) -> Health:
    per_key = {k: s for k, (s, _) in statuses.items()} | {k: H.MISSING for k in missing}
    overall = HealthStatus.worst(list(per_key.values()))
    if overall == H.HEALTHY:
        return Health(overall, f"{len(per_key)} object(s) healthy", per_key)
    if overall == H.MISSING:
        return Health(overall, f"missing: {', '.join(missing[:5])}", per_key)
    worst = [(k, m) for k, (s, m) in sorted(statuses.items()) if s == overall]
    text = "; ".join(f"{k}: {m}" if m else k for k, m in worst[:3])
    more = f" (and {len(worst) - 3} more)" if len(worst) > 3 else ""
    return Health(overall, f"{overall.value}: {text}{more}", per_key)
