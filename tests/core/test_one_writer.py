"""Issue 14 items 3 and 4: one writer per state. A process holding an older head (the daemon between
polls) never applies it over a newer one another process (a CLI sync) applied, unless Git itself moved
back, which is audited; a second ``setpoint run`` on the same state refuses to start, naming the owner,
and a SIGKILLed owner leaves no stale lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from setpoint.testing import FakePlugin, GitRepo, make_engine, write_config

from helpers import resources_yaml, web


def test_a_stale_head_never_rolls_back_what_another_process_applied(tmp_path: Path, git_repo: GitRepo) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web(1))}, "one")
    config = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}])
    plugin = FakePlugin()
    cluster = plugin.cluster("app")
    daemon = make_engine(config, plugin)  # polls, then holds its head until the next poll
    assert daemon.reconcile("app", poll=True).error is None
    git_repo.commit({"app/web.yaml": resources_yaml(web(2))}, "two")
    cli = make_engine(config, plugin)  # setpoint sync: asks Git, applies two
    assert cli.sync(["app"])[0].error is None and cluster.resources["Deployment/web"]["replicas"] == 2
    cli.close()
    applies = len(daemon.store.audit_entries(actions=("apply",)))
    out = daemon.reconcile("app", trigger="poll", poll=False)  # the daemon's head is still "one"
    assert out.error is None
    assert cluster.resources["Deployment/web"]["replicas"] == 2, "the daemon rolled back a newer apply"
    assert len(daemon.store.audit_entries(actions=("apply",))) == applies, "nothing to apply: already at two"
    assert out.revision is not None and out.revision.subject == "two"

    # Git itself moves back (a reset and force-push): that older commit is applied, audited as such
    git_repo.git("reset", "--hard", "HEAD~1")
    out = daemon.reconcile("app", trigger="poll", poll=True)  # the daemon's next poll sees it
    assert out.error is None and cluster.resources["Deployment/web"]["replicas"] == 1
    assert daemon.store.audit_entries(actions=("force-push",))
    daemon.close()


def _run(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "setpoint.cli", "-c", str(config), "run"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_run_on_the_same_state_refuses_to_start_until_the_owner_dies(tmp_path: Path,
                                                                             git_repo: GitRepo) -> None:
    git_repo.commit({"etc/a.conf": "a\n"})
    config = write_config(tmp_path, git_repo.path, [
        {"name": "host", "kind": "files", "path": "etc", "interval": "1h",
         "files": {"destination": str(tmp_path / "live")}}])
    first = _run(config)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "live" / "a.conf").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.2)
        second = _run(config)
        try:
            _, err = second.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            second.kill()
            second.communicate()
            raise AssertionError("a second setpoint run on the same state started") from None
        assert second.returncode != 0
        assert "already owned" in err and f"pid {first.pid}" in err and os.uname().nodename in err, err
        os.kill(first.pid, signal.SIGKILL)  # no clean shutdown: the kernel releases the lock
        first.wait(timeout=30)
        third = _run(config)
        try:
            time.sleep(3)
            assert third.poll() is None, third.communicate()
        finally:
            third.send_signal(signal.SIGTERM)
            third.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
