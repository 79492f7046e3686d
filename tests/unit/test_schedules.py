"""Policy schedules: cron slots as UTC instants across DST changes (Europe/Berlin, America/New_York), the one
slot made up after downtime, and the refusals of bad expressions and zones."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from zfsapi.domain.errors import InvalidArgument
from zfsapi.domain.schedules import (
    Schedule,
    check_timezone,
    latest_slot,
    missed_slot,
    next_runs,
    slot_id,
    slots_between,
)

UTC = timezone.utc
HOUR = timedelta(hours=1)
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def u(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def utc_strings(slots: list[datetime]) -> list[str]:
    return [s.strftime("%m-%d %H:%M") for s in slots]


# ---- Europe/Berlin 2026: 02:00 CET -> 03:00 CEST on March 29 (01:00Z); 03:00 CEST -> 02:00 CET on Oct 25 (01:00Z)

def test_hourly_across_spring_forward_stays_one_hour_apart():
    slots = slots_between(Schedule.parse("30 * * * *", "Europe/Berlin"), u(2026, 3, 28, 22), u(2026, 3, 29, 4))
    assert utc_strings(slots) == ["03-28 22:30", "03-28 23:30", "03-29 00:30", "03-29 01:30", "03-29 02:30",
                                  "03-29 03:30"]
    # 01:30 CET, then (no 02:30: it does not exist) 03:30 CEST, one hour later in real time
    assert [s.astimezone(BERLIN).strftime("%H:%M") for s in slots[2:4]] == ["01:30", "03:30"]


def test_hourly_across_fall_back_runs_in_both_passes_of_the_repeated_hour():
    slots = slots_between(Schedule.parse("30 * * * *", "Europe/Berlin"), u(2026, 10, 24, 22), u(2026, 10, 25, 3))
    assert utc_strings(slots) == ["10-24 22:30", "10-24 23:30", "10-25 00:30", "10-25 01:30", "10-25 02:30"]
    walls = [s.astimezone(BERLIN) for s in slots]
    assert [(w.strftime("%H:%M"), w.fold) for w in walls[2:4]] == [("02:30", 0), ("02:30", 1)]


def test_fixed_time_in_the_skipped_hour_runs_once_when_the_gap_ends():
    schedule = Schedule.parse("30 2 * * *", "Europe/Berlin")
    slots = slots_between(schedule, u(2026, 3, 27), u(2026, 3, 31))
    # 02:30 CET on the 27th and 28th (01:30Z), 03:00 CEST on the 29th (the change), 02:30 CEST on the 30th
    assert utc_strings(slots) == ["03-27 01:30", "03-28 01:30", "03-29 01:00", "03-30 00:30"]


def test_fixed_time_in_the_repeated_hour_runs_once_in_the_first_pass():
    schedule = Schedule.parse("30 2 * * *", "Europe/Berlin")
    slots = slots_between(schedule, u(2026, 10, 24), u(2026, 10, 27))
    assert utc_strings(slots) == ["10-24 00:30", "10-25 00:30", "10-26 01:30"]
    assert slots[1].astimezone(BERLIN).fold == 0


def test_several_fixed_slots_inside_one_gap_are_one_run():
    slots = slots_between(Schedule.parse("*/15 2 * * *", "Europe/Berlin"), u(2026, 3, 28, 12), u(2026, 3, 29, 12))
    assert utc_strings(slots) == ["03-29 01:00"]
    fall = slots_between(Schedule.parse("*/15 2 * * *", "Europe/Berlin"), u(2026, 10, 24, 12), u(2026, 10, 25, 12))
    assert utc_strings(fall) == ["10-25 00:00", "10-25 00:15", "10-25 00:30", "10-25 00:45"]  # first pass only


def test_quarter_hourly_through_the_repeated_hour_is_every_quarter_hour_in_real_time():
    slots = slots_between(Schedule.parse("*/15 * * * *", "Europe/Berlin"), u(2026, 10, 24, 23), u(2026, 10, 25, 2))
    assert len(slots) == 12
    assert all(b - a == timedelta(minutes=15) for a, b in zip(slots, slots[1:]))


def test_one_daily_run_per_local_day_over_a_whole_year_with_both_changes():
    slots = slots_between(Schedule.parse("30 2 * * *", "Europe/Berlin"), u(2025, 12, 31, 12), u(2026, 12, 31, 12))
    days = [s.astimezone(BERLIN).date() for s in slots]
    assert len(days) == 365 and len(set(days)) == 365


# ---- America/New_York 2026: 02:00 EST -> 03:00 EDT on March 8 (07:00Z); 02:00 EDT -> 01:00 EST on Nov 1 (06:00Z)

def test_new_york_spring_forward():
    assert utc_strings(slots_between(Schedule.parse("30 2 * * *", "America/New_York"), u(2026, 3, 7),
                                     u(2026, 3, 10))) == ["03-07 07:30", "03-08 07:00", "03-09 06:30"]
    hourly = slots_between(Schedule.parse("0 * * * *", "America/New_York"), u(2026, 3, 8, 5), u(2026, 3, 8, 9))
    assert utc_strings(hourly) == ["03-08 06:00", "03-08 07:00", "03-08 08:00", "03-08 09:00"]


def test_new_york_fall_back():
    assert utc_strings(slots_between(Schedule.parse("30 1 * * *", "America/New_York"), u(2026, 10, 31),
                                     u(2026, 11, 3))) == ["10-31 05:30", "11-01 05:30", "11-02 06:30"]
    hourly = slots_between(Schedule.parse("30 * * * *", "America/New_York"), u(2026, 11, 1, 4), u(2026, 11, 1, 8))
    assert utc_strings(hourly) == ["11-01 04:30", "11-01 05:30", "11-01 06:30", "11-01 07:30"]
    assert [h.astimezone(NEW_YORK).strftime("%H:%M") for h in hourly] == ["00:30", "01:30", "01:30", "02:30"]


def test_snapshot_names_from_slots_never_repeat_across_fall_back_sanoid_155():
    # sanoid #155: local-time names repeat in the repeated hour; slot instants (and so UTC names) do not
    slots = slots_between(Schedule.parse("*/5 * * * *", "America/New_York"), u(2026, 11, 1, 4), u(2026, 11, 1, 8))
    ids = [slot_id(s) for s in slots]
    assert len(ids) == len(set(ids)) == 48


def test_leap_day_schedule():
    schedule = Schedule.parse("0 0 29 2 *", "UTC")
    assert next_runs(schedule, u(2025, 1, 1), 2) == [u(2028, 2, 29), u(2032, 2, 29)]
    assert latest_slot(schedule, u(2027, 6, 1)) == u(2024, 2, 29)


def test_next_runs_is_strictly_after():
    schedule = Schedule.parse("0 * * * *")
    assert next_runs(schedule, u(2026, 1, 1, 5), 2) == [u(2026, 1, 1, 6), u(2026, 1, 1, 7)]
    assert next_runs(schedule, u(2026, 1, 1, 5), 0) == []


# ---- missed while down

def test_missed_slots_after_a_long_stop_are_made_up_once():
    schedule = Schedule.parse("0 * * * *", "Europe/Berlin")
    assert missed_slot(schedule, u(2026, 3, 1, 10), u(2026, 3, 4, 7, 20)) == u(2026, 3, 4, 7)


def test_nothing_missed():
    schedule = Schedule.parse("0 * * * *", "Europe/Berlin")
    assert missed_slot(schedule, u(2026, 3, 4, 7), u(2026, 3, 4, 7, 59)) is None
    assert missed_slot(schedule, None, u(2026, 3, 4, 7, 59)) is None
    assert missed_slot(schedule, u(2026, 3, 4, 9), u(2026, 3, 4, 7)) is None  # clock went back


def test_a_slot_exactly_now_is_due():
    schedule = Schedule.parse("0 * * * *")
    assert missed_slot(schedule, u(2026, 3, 4, 6), u(2026, 3, 4, 7)) == u(2026, 3, 4, 7)


def test_missed_across_the_repeated_hour_picks_the_second_pass():
    schedule = Schedule.parse("30 * * * *", "Europe/Berlin")
    assert missed_slot(schedule, u(2026, 10, 24, 20), u(2026, 10, 25, 1, 45)) == u(2026, 10, 25, 1, 30)


def test_missed_yearly_slot():
    schedule = Schedule.parse("0 3 1 1 *", "Europe/Berlin")
    assert missed_slot(schedule, u(2024, 1, 1, 2), u(2026, 6, 1)) == u(2026, 1, 1, 2)


# ---- properties

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "America/Santiago"]
EXPRESSIONS = ["0 * * * *", "30 * * * *", "*/15 * * * *", "30 2 * * *", "0 1 * * *", "*/20 2 * * *",
               "0 0 * * 0", "0 */3 * * *", "15 2,3 * * *", "0 0 1 * *", "45 1 * * 1-5"]
instants = st.integers(min_value=int(u(2024, 1, 1).timestamp()), max_value=int(u(2028, 12, 31).timestamp())).map(
    lambda t: datetime.fromtimestamp(t, UTC))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(EXPRESSIONS), st.sampled_from(ZONES), instants)
def test_slots_strictly_increase_and_resume_consistently(expression, zone, after):
    schedule = Schedule.parse(expression, zone)
    runs = next_runs(schedule, after, 12)
    assert len(runs) == 12 and runs[0] > after
    assert all(a < b for a, b in zip(runs, runs[1:]))
    # asking again from any slot gives the rest of the same sequence: each slot has one identity
    assert next_runs(schedule, runs[4], 7) == runs[5:]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(EXPRESSIONS), st.sampled_from(ZONES), instants)
def test_every_slot_is_a_matching_wall_time_or_the_end_of_a_gap(expression, zone, after):
    schedule = Schedule.parse(expression, zone)
    tz = ZoneInfo(zone)
    for slot in next_runs(schedule, after, 12):
        wall = slot.astimezone(tz).replace(tzinfo=None)
        if not croniter.match(expression, wall):
            # only a fixed-hour slot skipped by a change moves, to the instant the offset changed
            assert schedule.fixed_hours
            assert (slot - timedelta(seconds=1)).astimezone(tz).utcoffset() != slot.astimezone(tz).utcoffset()


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(EXPRESSIONS), st.sampled_from(ZONES), instants)
def test_latest_slot_is_the_last_slot_at_or_before(expression, zone, at):
    schedule = Schedule.parse(expression, zone)
    latest = latest_slot(schedule, at)
    assert latest is not None and latest <= at
    assert next_runs(schedule, latest, 1)[0] > at


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(EXPRESSIONS), st.sampled_from(ZONES), instants, st.integers(0, 60 * 24 * 40))
def test_missed_slot_is_one_slot_at_most(expression, zone, last, minutes_down):
    schedule = Schedule.parse(expression, zone)
    now = last + timedelta(minutes=minutes_down)
    made_up = missed_slot(schedule, last, now)
    passed = slots_between(schedule, last, now) if minutes_down < 60 * 24 * 3 else None
    if made_up is None:
        assert passed in (None, [])
        assert next_runs(schedule, last, 1)[0] > now
    else:
        assert last < made_up <= now
        assert passed is None or made_up == passed[-1]


def test_fixed_daily_schedules_run_once_per_local_day_in_every_zone():
    for zone in ZONES:
        for expression in ("30 2 * * *", "0 1 * * *", "59 23 * * *", "0 0 * * *"):
            slots = slots_between(Schedule.parse(expression, zone), u(2025, 12, 31), u(2027, 1, 1))
            days = [s.astimezone(ZoneInfo(zone)).date() for s in slots]
            assert len(days) == len(set(days)), (zone, expression)
            assert len(days) >= 365, (zone, expression, len(days))


# ---- refusals

@pytest.mark.parametrize("expression, fragment", [
    ("* * * * * *", "5 fields"),
    ("@hourly", "5 fields"),
    ("61 * * * *", "not a valid cron"),
    ("H * * * *", "not valid"),
    ("R * * * *", "not valid"),
    ("0 0 30 2 *", "never matches"),
    ("", "5 fields"),
    ("0 0 * * * ; rm -rf /", "5 fields"),
    ("x" * 300, "longer than"),
])
def test_bad_expressions_are_refused(expression, fragment):
    with pytest.raises(InvalidArgument) as exc:
        Schedule.parse(expression, "UTC", param="policies[0].snapshot.schedule")
    assert exc.value.param == "policies[0].snapshot.schedule"
    assert fragment in exc.value.reason


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "", "/etc/localtime", 5, None])
def test_bad_zones_are_refused(zone):
    with pytest.raises(InvalidArgument) as exc:
        Schedule.parse("0 * * * *", zone, timezone_param="policies[1].snapshot.timezone")
    assert exc.value.param == "policies[1].snapshot.timezone"
    with pytest.raises(InvalidArgument):
        check_timezone(zone)


def test_expression_is_normalised_and_names_accepted():
    assert Schedule.parse("  0   3 * jan-mar  mon-fri ").expression == "0 3 * jan-mar mon-fri"


def test_naive_datetimes_are_refused():
    schedule = Schedule.parse("0 * * * *")
    with pytest.raises(InvalidArgument) as exc:
        next_runs(schedule, datetime(2026, 1, 1), 1)
    assert exc.value.param == "after"
    with pytest.raises(InvalidArgument):
        missed_slot(schedule, datetime(2026, 1, 1), u(2026, 1, 2))


def test_slot_id_is_the_utc_instant():
    assert slot_id(datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN)) == "2026-10-25T01:30:00Z"
    assert slot_id(datetime(2026, 10, 25, 2, 30, fold=0, tzinfo=BERLIN)) == "2026-10-25T00:30:00Z"
