"""Hand a finished preview to a pull/merge request poster: the comment, then a commit status on
each commit that should carry it. Shared by ``setpoint preview --github-pr/--gitlab-mr`` and the
daemon's webhook-triggered previews."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from setpoint.preview import Preview, to_markdown


class Poster(Protocol):
    def comment(self, markdown: str) -> str: ...
    def status(self, sha: str, state: str, description: str) -> None: ...
    def close(self) -> None: ...


def summary(report: Preview) -> str:
    if report.failed:
        return "the preview failed for a target"
    if not report.changes:
        return "no change"
    return f"{report.changes} change(s) in {sum(1 for t in report.targets if t.changes)} target(s)"


def post(poster: Poster, report: Preview, status_shas: Iterable[str] = ()) -> str:
    """Comment (edited in place) and set ``setpoint/preview`` on ``status_shas`` (default: the
    previewed commits); returns where the comment is. Raises SetpointError."""
    where = poster.comment(to_markdown(report))
    for sha in list(status_shas) or sorted(set(report.commits.values())):
        poster.status(sha, "failure" if report.failed else "success", summary(report))
    return where
