"""``python -m setpoint_bench``: run the cases, print the machine and the table, write JSON and markdown."""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from setpoint_bench import machine, report
from setpoint_bench.harness import Ctx, NotRun, Row

#: case number -> (module, the service it needs or None, title)
CASES: dict[str, tuple[str, str | None, str]] = {
    "1": ("case_k8s", "kubernetes", "Kubernetes no-op reconcile and first sync"),
    "2": ("case_drift", None, "Drift-to-repair latency"),
    "3": ("case_commit", None, "Commit-to-applied latency"),
    "4": ("case_compose", "docker", "Compose no-op reconcile"),
    "5": ("case_terraform", "terraform", "Terraform overhead"),
    "6": ("case_sops", "sops", "SOPS decryption"),
    "7": ("case_scale", None, "Scale"),
    "8": ("case_git_poll", None, "Git polling cost"),
    "9": ("case_startup", None, "CLI start-up"),
    # named, not numbered: several branches add cases at the same time (issues 23 and 24)
    "ansible": ("case_ansible", "ansible-hosts", "Ansible no-op reconcile"),
    "compose-ssh": ("case_compose_ssh", "docker-hosts", "Compose over SSH: no-op and drift repair"),
    "10": ("case_long", None, "Memory over time"),
    "preview": ("case_preview", None, "Preview overhead"),
    "dashboard": ("case_dashboard", None, "Dashboard overview"),
    "replicas": ("case_replicas", "postgresql", "Replicas on PostgreSQL"),
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def _sizes(text: str) -> tuple[int, ...]:
    """``100,1000`` -> (100, 1000); ``none`` and ``""`` -> ()."""
    return () if text.strip() == "none" else tuple(int(n) for n in text.split(",") if n.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="setpoint_bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, 1-2 repetitions: only checks that the harness works and produces numbers")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case numbers (default: all)")
    parser.add_argument("--reps", type=int, help="measured repetitions per case (default 5; smoke 2)")
    parser.add_argument("--warmup", type=int, help="unmeasured warm-up runs (default 1)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "results",
                        help="directory for results.json / results.md (smoke.json / smoke.md in smoke mode)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--profile", type=Path, help="write pyinstrument profiles here (the scale case's first passes; for the other slow paths "
                             "see setpoint_bench.profiles)")
    parser.add_argument("--long", type=float, nargs="?", const=30.0, default=0.0, metavar="MINUTES",
                        help="run case 10 (memory over time) for MINUTES (default 30); without it case 10 is not run")
    parser.add_argument("--scale-files", default="", metavar="N,N,...",
                        help="case 7: numbers of files targets (default 100,1000,10000; smoke 10,50,100); "
                             "'none' runs no files targets")
    parser.add_argument("--scale-kubernetes", default="", metavar="N,N,...",
                        help="case 7: numbers of kubernetes targets of 10 objects each (default 1000; smoke 5); "
                             "'none' runs none")
    args = parser.parse_args(argv)

    if args.profile:
        # read by scale_worker.py: each worker's first pass under pyinstrument
        os.environ["SETPOINT_BENCH_PROFILE"] = str(args.profile.resolve())
    reps = args.reps or (2 if args.smoke else 5)
    warmup = args.warmup if args.warmup is not None else 1
    env = dict(os.environ)
    info = machine.describe(env)
    print("setpoint benchmarks" + (" (smoke)" if args.smoke else ""))
    for line in machine.summary_lines(info):
        print("  " + line)
    work = Path(tempfile.mkdtemp(prefix="setpoint-bench-"))
    ctx = Ctx(smoke=args.smoke, reps=reps, warmup=warmup, workdir=work, env=env, profile_dir=args.profile,
              long_minutes=args.long,
              scale_files=_sizes(args.scale_files), no_scale_files=args.scale_files.strip() == "none",
              scale_kubernetes=_sizes(args.scale_kubernetes) or ((0,) if args.scale_kubernetes.strip() == "none" else ()))
    started, t0 = datetime.now(UTC).isoformat(timespec="seconds"), time.monotonic()
    rows: list[Row] = []
    missing_services: list[str] = []
    failures: list[str] = []
    for number in [c.strip() for c in args.cases.split(",") if c.strip()]:
        module_name, service, title = CASES[number]
        case = f"{number} {title}"
        load0 = os.getloadavg()[0]
        print(f"\n== case {case} (load {load0:.2f})", flush=True)
        c0 = time.monotonic()
        try:
            if service is not None:
                from setpoint_bench import services

                services.require(service)
            module = importlib.import_module(f"setpoint_bench.{module_name}")
            new_rows: list[Row] = module.run(ctx)
        except NotRun as exc:
            new_rows = [Row(case, "—", status="not run", note=exc.reason)]
            if exc.service:
                missing_services.append(f"{case}: {exc.reason}")
        except Exception as exc:  # noqa: BLE001 - one broken case must not hide the others' numbers
            traceback.print_exc()
            new_rows = [Row(case, "—", status="failed", note=f"{type(exc).__name__}: {str(exc)[:300]}")]
            failures.append(f"{case}: {type(exc).__name__}: {exc}")
        load1 = os.getloadavg()[0]
        for row in new_rows:
            row.extra.setdefault("load", f"{load0:.1f}→{load1:.1f}")
            row.extra.setdefault("case_seconds", round(time.monotonic() - c0, 1))
            # a row that reported itself "not run" because of a missing service counts like a case would
            if row.status == "failed" and row.name != "—":  # a case that caught its own failure per size
                failures.append(f"{case} {row.name}: {row.note}")
            if row.status == "not run" and row.extra.get("service"):
                missing_services.append(f"{case} {row.name}: {row.note}")
            print(f"   {row.name}: " + (f"{row.status}: {row.note}" if row.status != "ok" else
                                        f"setpoint {report.fmt(row.setpoint, row.unit, row.style)}"
                                        + (f" | {row.anchor_name} {report.fmt(row.anchor, row.unit)}"
                                           if row.anchor else "")
                                        + (f" | ratio {row.ratio:.2f}" if row.ratio is not None else "")
                                        + (f" | target {row.target}: {'met' if row.met else 'MISSED'}"
                                           if row.met is not None else "")), flush=True)
        rows.extend(new_rows)
        # written after every case, so a long run stopped half-way still leaves its numbers
        report.write(args.out, rows, info, {"started": started, "smoke": args.smoke, "reps": reps,
                                            "warmup": warmup, "seconds": time.monotonic() - t0, "partial": True})
    meta = {"started": started, "smoke": args.smoke, "reps": reps, "warmup": warmup,
            "seconds": time.monotonic() - t0, "load_average_end": [round(x, 2) for x in os.getloadavg()]}
    json_path, md_path = report.write(args.out, rows, info, meta)
    print("\n" + report.markdown(rows, info, meta))
    print(f"written: {json_path} and {md_path}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"scratch kept: {work}")
    if args.smoke:
        produced = [r for r in rows if r.status == "ok" and r.setpoint is not None and r.setpoint.n > 0]
        if failures:
            print("smoke: FAILED cases:\n  " + "\n  ".join(failures))
            return 1
        if in_ci() and missing_services:
            print("smoke under CI=true: a service is missing (CI starts them all):\n  " + "\n  ".join(missing_services))
            return 1
        if not produced:
            print("smoke: no numbers were produced")
            return 1
        print(f"smoke: {len(produced)} rows with numbers, harness works")
    return 1 if failures else 0
