"""Case 8: the cost of an unchanged Git poll of a long history, versus ``git fetch`` of the same remote.

setpoint polls with ``git ls-remote`` of one branch and fetches only when the head moved; the
daemon does this every ``poll_interval`` per source, so its cost is what idle setpoint spends.
The anchor is what a tool that always fetches (as a cron ``git pull`` would) pays per poll.
"""

from __future__ import annotations

from setpoint.config import SourceConfig
from setpoint.source.git import GitSource
from setpoint_bench.gitdata import bare_with_history, git
from setpoint_bench.harness import Ctx, Row, compare

CASE = "8 Git poll"


def run(ctx: Ctx) -> list[Row]:
    commits = 500 if ctx.smoke else 10_000
    base = ctx.scratch("git-poll")
    remote = bare_with_history(base / "remote.git", commits)
    source = GitSource("bench", SourceConfig(url=str(remote), branch="main"), base / "cache")
    first = source.poll()  # the first poll fetches the whole history; not what is measured
    assert first.moved
    clone = base / "clone"
    git("clone", "--quiet", "--bare", str(remote), str(clone))

    def poll() -> None:
        assert not source.poll().moved

    def fetch() -> None:
        git("--git-dir", str(clone), "fetch", "--quiet", "origin", "+refs/heads/main:refs/heads/main")

    reps = max(ctx.reps * 4, 20) if not ctx.smoke else ctx.reps
    ours, theirs = compare(poll, fetch, reps, ctx.warmup)
    assert theirs is not None
    ms = 1000
    ratio = theirs.median / ours.median
    return [Row(CASE, f"unchanged poll, {commits} commits", unit="ms",
                setpoint=type(ours)([v * ms for v in ours.values]), anchor_name="git fetch (up to date)",
                anchor=type(theirs)([v * ms for v in theirs.values]), ratio=ratio,
                target="<= 20 ms per unchanged poll", met=ours.median * ms <= 20,
                note="one ls-remote of the branch (the known head needs no cat-file)")]
