"""Audit windows typed the way people say them resolve to the absolute instants they mean."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from setpoint.server.dashboard.windows import WindowError, parse_window, presets

TZ = timezone(timedelta(hours=1))
FRIDAY = datetime(2026, 11, 20, 10, 30, tzinfo=TZ)


@pytest.mark.parametrize(("text", "since", "until"), [
    ("last Thursday 14:00-17:00", datetime(2026, 11, 19, 14, tzinfo=TZ), datetime(2026, 11, 19, 17, tzinfo=TZ)),
    ("  LAST   thursday  14:00 - 17:00 ", datetime(2026, 11, 19, 14, tzinfo=TZ), datetime(2026, 11, 19, 17, tzinfo=TZ)),
    ("thursday", datetime(2026, 11, 19, tzinfo=TZ), datetime(2026, 11, 20, tzinfo=TZ)),
    # on a Friday, "last Friday" is a week ago, never today
    ("last Friday", datetime(2026, 11, 13, tzinfo=TZ), datetime(2026, 11, 14, tzinfo=TZ)),
    ("today", datetime(2026, 11, 20, tzinfo=TZ), datetime(2026, 11, 21, tzinfo=TZ)),
    ("yesterday 9-12", datetime(2026, 11, 19, 9, tzinfo=TZ), datetime(2026, 11, 19, 12, tzinfo=TZ)),
    # a night shift runs past midnight
    ("yesterday 22:00-02:00", datetime(2026, 11, 19, 22, tzinfo=TZ), datetime(2026, 11, 20, 2, tzinfo=TZ)),
    ("last 2h", datetime(2026, 11, 20, 8, 30, tzinfo=TZ), FRIDAY),
    ("last week", datetime(2026, 11, 13, 10, 30, tzinfo=TZ), FRIDAY),
    ("2026-11-19 14:00+01:00 - 2026-11-19 17:00+01:00", datetime(2026, 11, 19, 14, tzinfo=TZ),
     datetime(2026, 11, 19, 17, tzinfo=TZ)),
])
def test_spoken_windows(text: str, since: datetime, until: datetime) -> None:
    window = parse_window(text, FRIDAY)
    assert (window.since, window.until) == (since, until)


def test_labels_and_presets() -> None:
    assert parse_window("last Thursday 14:00-17:00", FRIDAY).label == "Thu 2026-11-19 14:00 - 17:00"
    assert parse_window("today", FRIDAY).label == "Fri 2026-11-20 00:00 - 24:00"
    names = presets(FRIDAY)
    assert "last Thursday 14:00-17:00" in names and "yesterday" in names
    for name in names:
        parse_window(name, FRIDAY)


@pytest.mark.parametrize("text", ["", "the other day", "last Thursday 25:00-26:00", "last fortnight",
                                  "2026-11-19 17:00 - 2026-11-19 14:00", "2026-13-45"])
def test_unreadable_windows_say_how_to_write_one(text: str) -> None:
    with pytest.raises(WindowError) as info:
        parse_window(text, FRIDAY)
    assert "14:00" in str(info.value)
