"""`setpoint run` with one extra kind, ``fake``, whose apply takes SLOW_APPLY_SECONDS: the real CLI,
signal handling and state store, with an apply slow enough to be caught in flight. Each apply
touches MARKER_DIR/apply-started-N before it waits. Usage: python slow_daemon.py -c setpoint.yaml run"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import setpoint.plugins
from setpoint.testing import FakeCluster, FakePlugin

SECONDS = float(os.environ.get("SLOW_APPLY_SECONDS", "0"))
MARKERS = Path(os.environ["MARKER_DIR"])


class SlowCluster(FakeCluster):
    def _maybe_fail(self, stage: str) -> None:
        if stage == "apply":
            count = len(list(MARKERS.glob("apply-started-*")))
            (MARKERS / f"apply-started-{count + 1}").touch()
            time.sleep(SECONDS)
        super()._maybe_fail(stage)


class SlowPlugin(FakePlugin):
    def cluster(self, target: str) -> FakeCluster:
        return self.clusters.setdefault(target, SlowCluster())


_original = setpoint.plugins.get_plugin_manager


def _with_slow(load_entrypoints: bool = True, extra_plugins: Any = (), **options: Any) -> Any:
    return _original(load_entrypoints, [*extra_plugins, SlowPlugin()], **options)


setpoint.plugins.get_plugin_manager = _with_slow  # before setpoint.engine imports it

if __name__ == "__main__":
    from setpoint.cli import main

    sys.exit(main(sys.argv[1:]))
