"""Benchmark (not collected by pytest): the kubernetes target against kubectl on the test control plane.

    eval "$(dev/services env)"; .venv/bin/python tests/plugins/kubernetes/bench_k8s_noop.py 100 1000

For each N: N objects (80 % ConfigMaps, 10 % Deployments with zero replicas, 10 % Services) in fresh
namespaces. First sync: one setpoint reconcile vs `kubectl apply --server-side`. No-op: a setpoint
reconcile (median of 5, API requests counted) vs `kubectl diff --server-side` (median of 3).
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
from conftest import KUBECTL, configmap, deployment, k8s_target, manifests, service  # noqa: E402

from setpoint.testing import GitRepo, make_engine, write_config  # noqa: E402

KUBECONFIG = os.environ.get("SETPOINT_KUBECONFIG") or os.environ["KUBECONFIG"]


def kubectl(*args: str, check: bool = True) -> float:
    started = time.monotonic()
    proc = subprocess.run([KUBECTL, "--kubeconfig", KUBECONFIG, *args], capture_output=True, text=True)
    if check and proc.returncode not in (0, 1):
        raise RuntimeError(proc.stderr)
    return time.monotonic() - started


def objects(n: int) -> list[dict]:
    out = []
    for i in range(n):
        if i % 10 == 0:
            out.append(deployment(f"d{i}", replicas=0))
        elif i % 10 == 1:
            out.append(service(f"s{i}"))
        else:
            out.append(configmap(f"c{i}", {"index": str(i), "payload": "x" * 200}))
    return out


def bench(n: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="k8s-bench-"))
    tag = f"bench{n}-{os.getpid()}"
    ns_sp, ns_kc = f"{tag}-sp", f"{tag}-kc"
    for ns in (ns_sp, ns_kc):
        kubectl("create", "namespace", ns)
    try:
        docs = objects(n)
        repo = GitRepo(work / "repo")
        repo.commit({"app/all.yaml": manifests(*docs)})
        plain = work / "plain"
        plain.mkdir()
        (plain / "all.yaml").write_text(manifests(*docs))
        engine = make_engine(write_config(work, repo.path, [k8s_target(tag, KUBECONFIG, ns_sp)]),
                             load_entrypoints=True)
        started = time.monotonic()
        out = engine.reconcile(tag)
        first_sp = time.monotonic() - started
        assert out.error is None, out.error
        first_kc = kubectl("apply", "--server-side", "-n", ns_kc, "-f", str(plain))
        calls = engine.runners[tag].driver.cluster.calls
        noop = []
        for _ in range(5):
            before = sum(calls.values())
            started = time.monotonic()
            out = engine.reconcile(tag)
            noop.append(time.monotonic() - started)
            assert out.sync.value == "Synced" and not out.actions, out
            assert sum(calls.values()) == before, "a no-op reconcile made API requests"
        diff = [kubectl("diff", "--server-side", "-n", ns_kc, "-f", str(plain)) for _ in range(3)]
        sp, kc = statistics.median(noop), statistics.median(diff)
        print(f"N={n:5d}  first sync: setpoint {first_sp:6.2f}s  kubectl apply --server-side {first_kc:6.2f}s   "
              f"no-op: setpoint {sp * 1000:7.1f} ms  kubectl diff --server-side {kc:6.2f}s  ({kc / sp:5.0f}x)",
              flush=True)
        engine.close()
    finally:
        for ns in (ns_sp, ns_kc):
            kubectl("delete", "namespace", ns, "--wait=false", check=False)


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["100", "1000"]:
        bench(int(arg))
