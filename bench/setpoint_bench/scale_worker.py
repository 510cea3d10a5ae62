"""One setpoint process of the scale case: load a config, run a first full pass and a no-op pass,
report times and peak RSS as one JSON line on stdout.

A process of its own per size, because peak RSS only ever grows: measured in the runner it would
include every earlier case. The peak is the kernel's VmHWM of this process's own memory, not
ru_maxrss: Linux keeps ru_maxrss across exec, so a worker started by a runner that had grown to
267 MiB (case 1 at N=5000) reported 267 MiB for every size.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import time
from pathlib import Path


def main() -> None:
    config = Path(sys.argv[1])
    started = time.perf_counter()
    logging.getLogger("setpoint").setLevel(logging.ERROR)
    from setpoint.testing import make_engine

    engine = make_engine(config, load_entrypoints=True)
    startup = time.perf_counter() - started
    profile_to = os.environ.get("SETPOINT_BENCH_PROFILE")  # a directory: pyinstrument text of the first pass
    profiler = None
    if profile_to:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.005)
        profiler.start()
    t0 = time.perf_counter()
    first = engine.sync()
    first_s = time.perf_counter() - t0
    if profiler is not None and profile_to:
        profiler.stop()
        out = Path(profile_to) / f"scale-{config.parent.name}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
    t0 = time.perf_counter()
    noop = engine.sync()
    noop_s = time.perf_counter() - t0
    errors = [f"{o.target.name}: {o.error_stage}: {o.error}" for o in [*first, *noop] if o.error]
    changed_on_noop = [o.target.name for o in noop if any(a.get("action") == "apply" for a in o.actions)]
    rss_mib = peak_rss_mib()
    engine.close()
    print(json.dumps({"targets": len(first), "startup_s": startup, "first_s": first_s, "noop_s": noop_s,
                      "rss_mib": rss_mib, "errors": errors[:5], "error_count": len(errors),
                      "changed_on_noop": changed_on_noop[:5]}))


def peak_rss_mib() -> float:
    """This process's peak resident memory since its exec (VmHWM), in MiB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: may include the parent's peak


if __name__ == "__main__":
    main()
