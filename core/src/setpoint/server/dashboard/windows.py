"""Audit time windows typed the way people say them, resolved to absolute instants.

"last Thursday 14:00-17:00", "yesterday", "today 09:00-12:00", "last 2h", "2026-11-19 14:00-17:00",
"2026-11-19 14:00 - 2026-11-20 02:00". Times are the server's local time, like ``setpoint audit``.
A resolved window always has absolute ends, so its permalink means the same thing next week.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from setpoint.durations import parse_duration

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HOURS = r"(?P<start>\d{1,2}(?::\d{2})?)\s*-\s*(?P<end>\d{1,2}(?::\d{2})?)"
_DAY_WORDS = re.compile(rf"^(?P<day>today|yesterday|(?:last\s+)?(?:{'|'.join(WEEKDAYS)}))(?:\s+{_HOURS})?$")
_DATE_HOURS = re.compile(rf"^(?P<date>\d{{4}}-\d{{2}}-\d{{2}})(?:\s+{_HOURS})?$")
_LAST = re.compile(r"^(?:last|past)\s+(?P<span>\S+)$")


class WindowError(ValueError):
    pass


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime

    @property
    def label(self) -> str:
        same_day = self.since.date() == (self.until - timedelta(microseconds=1)).date()
        if same_day and self.until.date() != self.since.date():
            end = "24:00"
        else:
            end = self.until.strftime("%H:%M") if same_day else self.until.strftime("%Y-%m-%d %H:%M")
        return f"{self.since.strftime('%a %Y-%m-%d %H:%M')} - {end}"


def _clock(text: str) -> time:
    hour, _, minute = text.partition(":")
    if int(hour) == 24 and int(minute or 0) == 0:
        return time(23, 59, 59, 999999)
    try:
        return time(int(hour), int(minute or 0))
    except ValueError:
        raise WindowError(f"{text!r} is not a time of day (use e.g. 14:00)") from None


def _day_window(day: datetime, start: str | None, end: str | None) -> Window:
    midnight = day.replace(hour=0, minute=0, second=0, microsecond=0)
    if start is None or end is None:
        return Window(midnight, midnight + timedelta(days=1))
    since, until = datetime.combine(midnight.date(), _clock(start), midnight.tzinfo), \
        datetime.combine(midnight.date(), _clock(end), midnight.tzinfo)
    if until <= since:  # 22:00-02:00 runs past midnight
        until += timedelta(days=1)
    return Window(since, until)


def _absolute(text: str, now: datetime) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise WindowError(f"{text.strip()!r}: use a time like 2026-11-19 14:00") from None
    return moment.astimezone() if moment.tzinfo is None else moment


def parse_window(text: str, now: datetime | None = None) -> Window:
    """The window ``text`` names (see the module docstring); raises WindowError with an example."""
    now = now or datetime.now().astimezone()
    spoken = " ".join(text.strip().lower().split())
    if not spoken:
        raise WindowError("type a window, e.g. 'last Thursday 14:00-17:00', 'yesterday' or 'last 2h'")
    if match := _LAST.match(spoken):
        if match["span"] in ("week", "day", "hour"):
            span = {"week": 7 * 86400.0, "day": 86400.0, "hour": 3600.0}[match["span"]]
        else:
            try:
                span = parse_duration(match["span"])
            except ValueError:
                span = -1.0
        if span > 0:
            return Window(now - timedelta(seconds=span), now)
    if match := _DAY_WORDS.match(spoken):
        day_word = match["day"]
        if day_word == "today":
            day = now
        elif day_word == "yesterday":
            day = now - timedelta(days=1)
        else:
            weekday = WEEKDAYS.index(day_word.split()[-1])
            back = (now.weekday() - weekday) % 7 or 7  # "Thursday" on a Thursday means a week ago
            day = now - timedelta(days=back)
        return _day_window(day, match["start"], match["end"])
    if match := _DATE_HOURS.match(spoken):
        return _day_window(_absolute(match["date"], now), match["start"], match["end"])
    if " - " in spoken or " to " in spoken:
        first, _, second = spoken.partition(" - ") if " - " in spoken else spoken.partition(" to ")
        window = Window(_absolute(first, now), _absolute(second, now))
        if window.until <= window.since:
            raise WindowError("the window ends before it starts: write the earlier time first, e.g. "
                              "2026-11-19 14:00 - 2026-11-19 17:00")
        return window
    raise WindowError(f"cannot read {text.strip()!r} as a window: try 'last Thursday 14:00-17:00', "
                      "'yesterday', 'last 2h' or '2026-11-19 14:00 - 2026-11-19 17:00'")


def presets(now: datetime | None = None) -> list[str]:
    """Windows offered as one-click links: recent spans and every day of the past week, afternoons too."""
    now = now or datetime.now().astimezone()
    names = ["last 1h", "last 24h", "today", "yesterday"]
    for back in range(2, 8):
        names.append(f"last {WEEKDAYS[(now.weekday() - back) % 7].capitalize()}")
    names.append("last Thursday 14:00-17:00")  # the question the audit log exists to answer
    return names
