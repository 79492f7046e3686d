"""Cron schedules of policies: slots as UTC instants, DST-correct, and the one slot to make up after downtime.

A schedule is a standard 5-field cron expression (minute hour day-of-month month day-of-week, as croniter reads
them, with cron's "day-of-month OR day-of-week" rule) evaluated on the wall clock of an IANA time zone. Every
slot is returned as a UTC instant: that instant is the slot's identity (`slot_id`), so (policy, slot) can be
run exactly once across servers, and snapshot names built from it never collide across a DST change (sanoid
#155: local-time names that repeat in the fall-back hour).

Daylight saving, following cronie's and Vixie cron's rule (cron(8), "Daylight Saving Time and other time
changes"), which tells apart schedules whose hour field is a wildcard (`*` or `*/n`: "interval" schedules)
from those with fixed hours:

- A wall time that the change skips (spring forward, e.g. 02:30 on the last Sunday of March in Europe/Berlin):
  an interval schedule simply has no slot there (its next slot is the next wall time that exists, so an
  hourly schedule stays one hour apart in real time); a fixed-hour schedule runs once at the first instant
  after the gap (the change itself, 03:00 CEST): several of its slots inside one gap become that one run.
- A wall time that the change repeats (fall back, 02:30 happens twice in Europe/Berlin in October): an
  interval schedule runs in both passes (they are an hour apart in real time, so an hourly schedule keeps
  running hourly); a fixed-hour schedule runs once, in the first pass.
So no slot ever runs twice (every slot is a distinct UTC instant, returned in increasing order) and no
existing wall time a fixed schedule names is left out.

Missed while down: `missed_slot(schedule, last_slot, now)` is the newest slot after `last_slot` that is not
after `now`, or None: however many slots passed, one run makes them up (never one per missed slot). Without
a `last_slot` (never ran) there is nothing to make up; the caller passes the policy's creation instead when
that is what it wants.

croniter and zoneinfo do pure date arithmetic; zoneinfo reads a zone's file once and caches it.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from .errors import InvalidArgument

UTC = timezone.utc
#: Wider than any change of a zone's UTC offset in one transition (at most 2 h in the tz database since 1970),
#: so that the slots of a repeated hour before `after` are not missed and `missed_slot` finds its anchor.
_MARGIN = timedelta(hours=4)
# One token of a cron field: numbers, `*`, `?`, month and day names (jan, mon), croniter's `L` and `n#m`.
# croniter's `H` (hashed) and `R` (random) are refused: every server must compute the same slots.
_TOKEN = re.compile(r"\*|\?|[0-9]+|[A-Za-z]{3}|L|[0-9]+L|L[0-9]*|[0-9]+#[0-9]+")
_FIELD_SPLIT = re.compile(r"[,/-]")
MAX_EXPRESSION_LENGTH = 200


def _check_expression(expression: object, param: str) -> str:
    if not isinstance(expression, str):
        raise InvalidArgument(param, "must be a cron expression (5 fields) as a string")
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise InvalidArgument(param, f"longer than {MAX_EXPRESSION_LENGTH} characters")
    fields = expression.split()
    if len(fields) != 5:
        raise InvalidArgument(param, f"a cron expression has 5 fields (minute hour day month weekday), not "
                                     f"{len(fields)}: {expression!r}")
    for field in fields:
        if not all(_TOKEN.fullmatch(token) for token in _FIELD_SPLIT.split(field)):
            raise InvalidArgument(param, f"cron field {field!r} is not valid (numbers, *, ranges, lists, steps "
                                         "and names only)")
    if not croniter.is_valid(" ".join(fields)):
        raise InvalidArgument(param, f"not a valid cron expression: {expression!r}")
    return " ".join(fields)


def check_timezone(name: object, param: str = "timezone") -> str:
    """An IANA zone name that zoneinfo knows (`Europe/Berlin`, `UTC`). Raises InvalidArgument naming `param`."""
    return _zone(name, param).key


def _zone(name: object, param: str) -> ZoneInfo:
    if not isinstance(name, str) or name == "":
        raise InvalidArgument(param, "must be an IANA time zone name such as Europe/Berlin or UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidArgument(param, f"unknown time zone {name!r} (an IANA name such as Europe/Berlin or UTC)")


@dataclass(frozen=True, slots=True)
class Schedule:
    """A validated cron expression on the wall clock of `timezone`."""

    expression: str
    timezone: str

    @classmethod
    def parse(cls, expression: object, timezone_name: object = "UTC", *, param: str = "schedule",
              timezone_param: str = "timezone") -> Schedule:
        """Validate both; InvalidArgument names `param` or `timezone_param`. A schedule that never matches a
        date (`0 0 30 2 *`) is refused."""
        text = _check_expression(expression, param)
        zone = _zone(timezone_name, timezone_param)
        try:
            croniter(text, datetime(2000, 1, 1)).get_next(datetime)
        except (CroniterBadDateError, CroniterBadCronError):
            raise InvalidArgument(param, f"{expression!r} never matches a date") from None
        return cls(text, zone.key)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def fixed_hours(self) -> bool:
        """True unless the hour field is `*` or `*/n` (see the module's DST rule)."""
        return not self.expression.split()[1].startswith("*")


def _aware(value: datetime, param: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(param, "must be a timezone-aware datetime")
    return value.astimezone(UTC)


def _gap_end(zone: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """The first UTC instant in (low, high] whose offset is that of `high`: the end of a skipped interval."""
    offset = high.astimezone(zone).utcoffset()
    lo, hi = int(low.timestamp()), int(high.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == offset:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _instants(naive: datetime, zone: ZoneInfo, fixed: bool) -> list[datetime]:
    """The UTC instants of one wall-clock slot under the module's DST rule (0, 1 or 2 of them)."""
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if first.astimezone(zone).replace(tzinfo=None) == naive:  # repeated: fold=0 is the first pass
        return [first] if fixed else [first, second]
    # skipped: fold=1 applies the offset from after the change, which lands before it (PEP 495)
    return [_gap_end(zone, second, first)] if fixed else []


def _slots_after(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    """Every slot strictly after `after`, in increasing order, each once (an endless iterator)."""
    zone, fixed = schedule.zone, schedule.fixed_hours
    start = after.astimezone(zone).replace(tzinfo=None) - _MARGIN
    wall = croniter(schedule.expression, start)
    pending: list[datetime] = []  # a second pass of a repeated hour comes after later wall times' first
    last = after
    while True:
        try:
            naive = wall.get_next(datetime)
        except CroniterBadDateError:  # no further date (croniter looks ~50 years ahead)
            break
        instants = _instants(naive, zone, fixed)
        for instant in instants:
            heapq.heappush(pending, instant)
        while pending and instants and pending[0] <= instants[0]:
            slot = heapq.heappop(pending)
            if slot > last:
                last = slot
                yield slot
    yield from (slot for slot in sorted(pending) if slot > last)


def next_runs(schedule: Schedule, after: datetime, count: int = 1) -> list[datetime]:
    """The next `count` slots strictly after `after` (aware), as UTC datetimes in increasing order."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise InvalidArgument("count", "must be a non-negative integer")
    out: list[datetime] = []
    if count == 0:
        return out
    for slot in _slots_after(schedule, _aware(after, "after")):
        out.append(slot)
        if len(out) == count:
            break
    return out


def slots_between(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """The slots in (start, end], in increasing order. Meant for short spans (tests, previews)."""
    start, end = _aware(start, "start"), _aware(end, "end")
    out: list[datetime] = []
    for slot in _slots_after(schedule, start):
        if slot > end:
            break
        out.append(slot)
    return out


def latest_slot(schedule: Schedule, at: datetime) -> datetime | None:
    """The newest slot at or before `at`, or None when there is none (within croniter's search range)."""
    at = _aware(at, "at")
    zone = schedule.zone
    wall_now = at.astimezone(zone).replace(tzinfo=None)
    try:
        anchor = croniter(schedule.expression, wall_now - _MARGIN).get_prev(datetime)
    except CroniterBadDateError:
        anchor = None
    # from a wall time at least _MARGIN before `at` every instant is before `at`: walk forward from there
    start = (anchor.replace(tzinfo=zone, fold=1).astimezone(UTC) - _MARGIN if anchor is not None
             else at - timedelta(days=366))
    found: datetime | None = None
    for slot in _slots_after(schedule, start):
        if slot > at:
            break
        found = slot
    return found


def missed_slot(schedule: Schedule, last_slot: datetime | None, now: datetime) -> datetime | None:
    """The one slot to run now after a stop: the newest slot in (last_slot, now], or None.

    However many slots passed since `last_slot`, this is a single slot (the newest), never one per missed slot.
    No `last_slot` (never ran) means nothing to make up.
    """
    now = _aware(now, "now")
    if last_slot is None:
        return None
    last = _aware(last_slot, "last_slot")
    latest = latest_slot(schedule, now)
    return latest if latest is not None and latest > last else None


def slot_id(slot: datetime) -> str:
    """The identity of a slot: its UTC instant as `YYYY-MM-DDTHH:MM:SSZ` (what (policy, slot) is keyed by)."""
    return _aware(slot, "slot").strftime("%Y-%m-%dT%H:%M:%SZ")
