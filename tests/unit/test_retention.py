"""Retention over hand-made snapshot lists (DST changes, leap days, ISO week 53, year boundaries, gaps of
weeks, thousands of snapshots), the destroy batches, and hypothesis properties: a prune never destroys a
kept base, a held, a foreign or a clone-origin snapshot, keeps exactly min(count, buckets) per rule, is
idempotent and monotone in the counts."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zfsapi.domain.names import DatasetName
from zfsapi.domain.policies import MAX_ARG_BYTES, RetentionCounts
from zfsapi.domain.retention import (
    Action,
    Decision,
    SnapshotInfo,
    TargetBase,
    decide,
    destroy_arguments,
    plan_prune,
)

UTC = timezone.utc
POLICY = "home"
_guids = itertools.count(1000)


def t(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


def snap(creation: int, *, policy: str | None = POLICY, holds: tuple[str, ...] = (), clone: bool = False,
         name: str | None = None, guid: int | None = None) -> SnapshotInfo:
    stamp = datetime.fromtimestamp(creation, UTC).strftime("%Y%m%dT%H%M%SZ")
    return SnapshotInfo(name or f"auto-{stamp}", guid if guid is not None else next(_guids), creation, policy,
                        holds, clone)


def every(start: int, step: timedelta, count: int, **kw: object) -> list[SnapshotInfo]:
    return [snap(start + int(step.total_seconds()) * i, **kw) for i in range(count)]  # type: ignore[arg-type]


def kept(decisions: list[Decision]) -> list[SnapshotInfo]:
    return [d.snapshot for d in decisions if d.action is Action.KEEP]


def reasons_of(decisions: list[Decision]) -> dict[str, tuple[str, ...]]:
    return {d.snapshot.name: d.reasons for d in decisions}


def iso(creation: int) -> str:
    return datetime.fromtimestamp(creation, UTC).strftime("%Y-%m-%dT%H:%M")


# ---- the rules

def test_hourly_keeps_the_oldest_of_each_of_the_newest_hours():
    snaps = every(t(2026, 12, 1), timedelta(minutes=15), 4 * 72)  # three days, every 15 min
    at = snaps[-1].creation
    out = decide(snaps, policy=POLICY, counts=RetentionCounts(hourly=24), bases={}, at=at)
    keep = kept(out)
    assert len(keep) == 24
    assert all(datetime.fromtimestamp(s.creation, UTC).minute == 0 for s in keep)
    assert iso(keep[0].creation) == "2026-12-03T00:00" and iso(keep[-1].creation) == "2026-12-03T23:00"
    r = reasons_of(out)
    assert r[keep[-1].name] == ("hourly 1/24",) and r[keep[0].name] == ("hourly 24/24",)
    assert r[snaps[-1].name] == ("hourly: not the oldest of its hour",)
    assert r[snaps[0].name] == ("hourly: its hour is not among the newest 24",)


def test_keep_last_and_several_rules_give_every_reason():
    snaps = every(t(2026, 12, 1), timedelta(hours=1), 48)
    out = decide(snaps, policy=POLICY, counts=RetentionCounts(keep_last=3, hourly=2, daily=2), bases={},
                 at=snaps[-1].creation)
    r = reasons_of(out)
    assert r[snaps[-1].name] == ("keep_last 1/3", "hourly 1/2")
    assert r[snaps[-2].name] == ("keep_last 2/3", "hourly 2/2")
    assert r[snaps[-3].name] == ("keep_last 3/3",)
    assert r[snaps[24].name] == ("daily 1/2",)  # 2026-12-02T00:00
    assert r[snaps[0].name] == ("daily 2/2",)
    assert r[snaps[5].name] == ("keep_last: not among the newest 3", "hourly: its hour is not among the newest 2",
                                "daily: not the oldest of its day")
    assert len(kept(out)) == 5


def test_all_counts_zero_destroys_every_owned_snapshot_and_says_so():
    snaps = every(t(2026, 1, 1), timedelta(days=1), 3)
    out = decide(snaps, policy=POLICY, counts=RetentionCounts(), bases={}, at=t(2027, 1, 1))
    assert [d.action for d in out] == [Action.DESTROY] * 3
    assert out[0].reasons == ("no retention count is set",)


def test_decisions_come_oldest_first_whatever_the_input_order():
    snaps = every(t(2026, 1, 1), timedelta(hours=5), 20)
    out = decide(list(reversed(snaps)), policy=POLICY, counts=RetentionCounts(daily=2), bases={}, at=t(2027, 1, 1))
    assert [d.snapshot for d in out] == snaps


def test_same_second_is_ordered_by_createtxg():
    a = SnapshotInfo("b-second", 1, t(2026, 1, 1), POLICY, createtxg=20)
    b = SnapshotInfo("a-first", 2, t(2026, 1, 1), POLICY, createtxg=10)
    out = decide([a, b], policy=POLICY, counts=RetentionCounts(daily=1, keep_last=1), bases={}, at=t(2026, 1, 2))
    assert reasons_of(out) == {"a-first": ("daily 1/1",), "b-second": ("keep_last 1/1",)}


# ---- what is never destroyed

def test_foreign_and_hand_made_snapshots_are_never_considered():
    mine = every(t(2026, 1, 1), timedelta(hours=1), 10)
    manual = snap(t(2026, 1, 1, 3, 30), policy=None, name="before-upgrade")
    other = snap(t(2026, 1, 1, 4, 30), policy="other", name="other-1")
    out = decide(mine + [manual, other], policy=POLICY, counts=RetentionCounts(keep_last=1), bases={},
                 at=t(2026, 2, 1))
    r = reasons_of(out)
    assert r["before-upgrade"] == ("not owned",) and r["other-1"] == ("not owned",)
    assert len(kept(out)) == 3


def test_holds_clone_origins_and_bases():
    snaps = every(t(2026, 1, 1), timedelta(hours=1), 8)
    s = snaps
    s[0] = SnapshotInfo(s[0].name, 1, s[0].creation, POLICY, ("keep",))
    s[1] = SnapshotInfo(s[1].name, 2, s[1].creation, POLICY, ("zfsapi:replication",))
    s[2] = SnapshotInfo(s[2].name, 3, s[2].creation, POLICY, clone_origin=True)
    s[3] = SnapshotInfo(s[3].name, 4, s[3].creation, POLICY)  # nas2's base, by guid
    s[4] = SnapshotInfo(s[4].name, 5, s[4].creation, POLICY, ("zfsapi:home:offsite",))  # offsite's, by its hold
    s[5] = SnapshotInfo(s[5].name, 6, s[5].creation, POLICY, ("zfsapi:home:gone", "zfsapi:other:x"))
    s[6] = SnapshotInfo(s[6].name, 7, s[6].creation, POLICY, ("zfsapi:home:gone",))
    out = decide(s, policy=POLICY, counts=RetentionCounts(keep_last=1), bases={"nas2": TargetBase(guid=4),
                                                                              "offsite": None}, at=t(2026, 2, 1))
    r = reasons_of(out)
    assert r[s[0].name] == ("user hold keep",)
    assert r[s[1].name] == ("user hold zfsapi:replication",)  # a manual migration's base is not ours to free
    assert r[s[2].name] == ("clone origin",)
    assert r[s[3].name] == ("replication base for nas2",)
    assert r[s[4].name] == ("replication base for offsite",)
    assert r[s[5].name] == ("user hold zfsapi:other:x",)  # another policy's hold
    assert out[6].action is Action.DESTROY and out[6].release == ("zfsapi:home:gone",)  # a removed target's
    assert r[s[7].name] == ("keep_last 1/1",)


def test_a_base_by_name_and_a_renamed_base():
    s = every(t(2026, 1, 1), timedelta(hours=1), 3)
    by_name = decide(s, policy=POLICY, counts=RetentionCounts(keep_last=1), bases={"b": TargetBase(name=s[0].name)},
                     at=t(2026, 2, 1))
    assert by_name[0].reasons == ("replication base for b",)
    # the guid is the identity: a snapshot of the same name but another guid is not the base
    other = decide(s, policy=POLICY, counts=RetentionCounts(keep_last=1),
                   bases={"b": TargetBase(guid=1, name=s[0].name)}, at=t(2026, 2, 1))
    assert other[0].action is Action.DESTROY
    unknown = decide(s, policy=POLICY, counts=RetentionCounts(keep_last=1), bases={"b": TargetBase()},
                     at=t(2026, 2, 1))
    assert unknown[0].action is Action.DESTROY


def test_a_protected_snapshot_still_counts_for_its_bucket():
    s = [snap(t(2026, 1, 1, 0, 0), holds=("keep",)), snap(t(2026, 1, 1, 0, 30))]
    out = decide(s, policy=POLICY, counts=RetentionCounts(hourly=1), bases={}, at=t(2026, 1, 2))
    assert out[0].reasons == ("hourly 1/1", "user hold keep")
    assert out[1].action is Action.DESTROY


def test_snapshots_after_at_are_kept_and_count_for_nothing():
    s = every(t(2026, 1, 1), timedelta(hours=1), 6)
    out = decide(s, policy=POLICY, counts=RetentionCounts(keep_last=2), bases={}, at=s[3].creation)
    assert [d.reasons for d in out] == [("keep_last: not among the newest 2",),
                                        ("keep_last: not among the newest 2",), ("keep_last 2/2",),
                                        ("keep_last 1/2",), ("created after at",), ("created after at",)]


# ---- calendars

def test_buckets_are_utc_across_a_dst_change():
    # hourly snapshots through Berlin's fall-back night: the local day has 25 hours, the UTC days 24 each
    berlin = ZoneInfo("Europe/Berlin")
    s = every(t(2026, 10, 24, 0), timedelta(hours=1), 72)
    out = decide(s, policy=POLICY, counts=RetentionCounts(daily=3, hourly=30), bases={}, at=t(2026, 10, 27))
    days = [d.snapshot for d in out if any(r.startswith("daily ") for r in d.reasons)]
    assert [iso(x.creation) for x in days] == ["2026-10-24T00:00", "2026-10-25T00:00", "2026-10-26T00:00"]
    assert [datetime.fromtimestamp(x.creation, berlin).hour for x in days] == [2, 2, 1]  # CEST, CEST, CET
    assert sum(1 for d in out if any(r.startswith("hourly ") for r in d.reasons)) == 30


def test_leap_day_and_month_boundaries():
    s = every(t(2028, 2, 26, 12), timedelta(hours=12), 10)  # Feb 26 12:00 .. Mar 2 00:00, every 12 h
    out = decide(s, policy=POLICY, counts=RetentionCounts(daily=5, monthly=2), bases={}, at=t(2028, 3, 3))
    daily = [iso(d.snapshot.creation) for d in out if any(r.startswith("daily ") for r in d.reasons)]
    assert daily == ["2028-02-27T00:00", "2028-02-28T00:00", "2028-02-29T00:00", "2028-03-01T00:00",
                     "2028-03-02T00:00"]
    monthly = [iso(d.snapshot.creation) for d in out if any(r.startswith("monthly ") for r in d.reasons)]
    assert monthly == ["2028-02-26T12:00", "2028-03-01T00:00"]


def test_iso_week_53_and_the_year_boundary():
    # 2026 has an ISO week 53: Monday Dec 28 2026 .. Sunday Jan 3 2027; 2027-W01 starts Monday Jan 4
    s = every(t(2026, 12, 26), timedelta(days=1), 11)  # Dec 26 .. Jan 5
    out = decide(s, policy=POLICY, counts=RetentionCounts(weekly=3, yearly=2), bases={}, at=t(2027, 1, 6))
    r = reasons_of(out)
    weekly = {iso(d.snapshot.creation)[:10]: d.reasons for d in out if any(x.startswith("weekly ") for x in d.reasons)}
    assert list(weekly) == ["2026-12-26", "2026-12-28", "2027-01-04"]  # W52 (Sat), W53 (Mon), W01 (Mon)
    yearly = [iso(d.snapshot.creation)[:10] for d in out if any(x.startswith("yearly ") for x in d.reasons)]
    assert yearly == ["2026-12-26", "2027-01-01"]
    jan2 = next(d for d in out if d.snapshot.name.startswith("auto-20270102"))  # in 2026-W53, not its oldest
    assert jan2.action is Action.DESTROY
    assert jan2.reasons == ("weekly: not the oldest of its week", "yearly: not the oldest of its year")
    assert r[s[0].name] == ("weekly 3/3", "yearly 2/2")


def test_last_second_of_a_year_and_the_first_of_the_next():
    s = [snap(t(2026, 12, 31, 23, 59, 59)), snap(t(2027, 1, 1, 0, 0, 0)), snap(t(2027, 1, 1, 0, 0, 1))]
    out = decide(s, policy=POLICY, counts=RetentionCounts(yearly=5, hourly=5), bases={}, at=t(2027, 2, 1))
    assert [d.reasons for d in out] == [("hourly 2/5", "yearly 2/5"), ("hourly 1/5", "yearly 1/5"),
                                        ("hourly: not the oldest of its hour", "yearly: not the oldest of its year")]


def test_gaps_of_weeks_do_not_count_as_buckets():
    # 10 hourly snapshots five weeks ago, then a stop, then 20 hourly snapshots now: hourly=24 keeps 24
    old = every(t(2026, 10, 1), timedelta(hours=1), 10)
    new = every(t(2026, 11, 5), timedelta(hours=1), 20)
    out = decide(old + new, policy=POLICY, counts=RetentionCounts(hourly=24, daily=2), bases={}, at=t(2026, 11, 6))
    hourly = [d.snapshot for d in out if any(r.startswith("hourly ") for r in d.reasons)]
    assert hourly == old[-4:] + new
    daily = [d.snapshot for d in out if any(r.startswith("daily ") for r in d.reasons)]
    assert daily == [old[0], new[0]]  # the newest two days that have snapshots, weeks apart


# ---- scale and batches

def test_twenty_thousand_snapshots():
    snaps = every(t(2026, 1, 1), timedelta(minutes=15), 20_000)  # 208 days
    counts = RetentionCounts(keep_last=3, hourly=24, daily=14, weekly=8, monthly=12, yearly=2)
    start = time.perf_counter()
    out = decide(snaps, policy=POLICY, counts=counts, bases={"nas2": TargetBase(guid=snaps[100].guid)},
                 at=snaps[-1].creation)
    elapsed = time.perf_counter() - start
    print(f"\nretention.decide over 20,000 snapshots of one dataset: {elapsed * 1000:.0f} ms")
    per_rule = Counter(r.split(" ")[0] for d in out for r in d.reasons if "/" in r)
    assert per_rule == {"keep_last": 3, "hourly": 24, "daily": 14, "weekly": 8, "monthly": 7, "yearly": 1}
    assert out[100].reasons == ("replication base for nas2",)
    survivors = [d.snapshot for d in out if d.action is Action.KEEP]
    again = decide(survivors, policy=POLICY, counts=counts, bases={"nas2": TargetBase(guid=snaps[100].guid)},
                   at=snaps[-1].creation)
    assert all(d.action is Action.KEEP for d in again)


def test_a_prune_of_10000_snapshots_over_100_datasets_is_100_children():
    decisions = {}
    for i in range(100):
        dataset = DatasetName.parse(f"tank/data set.{i:03d}:x")
        snaps = every(t(2026, 1, 1), timedelta(hours=1), 100)
        decisions[dataset] = decide(snaps, policy=POLICY, counts=RetentionCounts(), bases={}, at=t(2027, 1, 1))
    start = time.perf_counter()
    plan = plan_prune(decisions)
    print(f"\nplan_prune of 10,000 snapshots over 100 datasets: {len(plan.destroy)} zfs destroy children, "
          f"{(time.perf_counter() - start) * 1000:.1f} ms")
    assert len(plan.destroy) == 100 and plan.release == {}
    assert all(len(arg.encode()) <= MAX_ARG_BYTES for arg in plan.destroy)
    first = plan.destroy[0]
    assert first.startswith("tank/data set.000:x@auto-20260101T000000Z,auto-20260101T010000Z,")
    assert len(first.split("@", 1)[1].split(",")) == 100


def test_destroy_arguments_respect_the_byte_limit_and_keep_every_name():
    dataset = DatasetName.parse("tank/" + "d" * 100)
    shorts = [f"auto-{i:06d}" for i in range(500)]
    args = destroy_arguments(dataset, shorts, max_arg_bytes=1000)
    assert all(len(a.encode()) <= 1000 for a in args) and len(args) > 5
    assert [n for a in args for n in a.split("@", 1)[1].split(",")] == shorts
    assert all(a.startswith(f"{dataset.value}@") for a in args)
    assert destroy_arguments(dataset, []) == []
    with pytest.raises(ValueError):
        destroy_arguments(dataset, shorts, max_arg_bytes=200)


def test_prune_plan_releases_stale_holds_before_destroying():
    dataset = DatasetName.parse("tank/a")
    s = [snap(t(2026, 1, 1), holds=("zfsapi:home:gone",), name="s1"), snap(t(2026, 1, 2), name="s2")]
    out = decide(s, policy=POLICY, counts=RetentionCounts(keep_last=1), bases={}, at=t(2026, 2, 1))
    plan = plan_prune({dataset: out})
    assert plan.destroy == ("tank/a@s1",) and plan.release == {"zfsapi:home:gone": ("tank/a@s1",)}


# ---- properties

BASE = t(2026, 1, 1)
HOLDS = ["keep", "zfsapi:home:nas2", "zfsapi:home:old", "zfsapi:replication", "zfsapi:other:nas2"]


@st.composite
def snapshot_lists(draw: st.DrawFn) -> list[SnapshotInfo]:
    n = draw(st.integers(0, 60))
    # mostly dense (minutes to days apart) with occasional gaps of weeks
    steps = draw(st.lists(st.one_of(st.integers(0, 3 * 3600), st.integers(0, 40 * 86400)), min_size=n, max_size=n))
    creations = list(itertools.accumulate(steps, initial=BASE + draw(st.integers(0, 400 * 86400))))[1:]
    out = []
    for i, creation in enumerate(creations):
        policy = draw(st.sampled_from([POLICY, POLICY, POLICY, POLICY, None, "other"]))
        holds = tuple(draw(st.lists(st.sampled_from(HOLDS), max_size=2, unique=True))) if draw(
            st.integers(0, 5)) == 0 else ()
        out.append(SnapshotInfo(f"s{i:03d}", i + 1, creation, policy, holds, draw(st.integers(0, 9)) == 0, i))
    return out


count_values = st.integers(0, 8)
counts_strategy = st.builds(RetentionCounts, count_values, count_values, count_values, count_values, count_values,
                            count_values)


def _bucket(rule: str, creation: int) -> object:
    d = datetime.fromtimestamp(creation, UTC)
    return {"hourly": (d.date(), d.hour), "daily": d.date(), "weekly": d.isocalendar()[:2],
            "monthly": (d.year, d.month), "yearly": d.year}[rule]


def _bases(snaps: list[SnapshotInfo], data: st.DataObject) -> dict[str, TargetBase | None]:
    choice = data.draw(st.sampled_from(["none", "guid", "name", "unknown"]))
    if choice == "none" or not snaps:
        return {}
    if choice == "unknown":
        return {"nas2": None}
    target = data.draw(st.sampled_from(snaps))
    return {"nas2": TargetBase(guid=target.guid) if choice == "guid" else TargetBase(name=target.name)}


@settings(max_examples=300, deadline=None)
@given(snapshot_lists(), counts_strategy, st.data())
def test_never_destroys_a_protected_snapshot(snaps, counts, data):
    at = data.draw(st.integers(BASE, BASE + 900 * 86400))
    bases = _bases(snaps, data)
    for d in decide(snaps, policy=POLICY, counts=counts, bases=bases, at=at):
        s = d.snapshot
        protected = (s.policy != POLICY or s.creation > at or s.clone_origin
                     or any(not h.startswith("zfsapi:home:") for h in s.holds)
                     or any(b is not None and b.matches(s) for b in bases.values())
                     or ("nas2" in bases and "zfsapi:home:nas2" in s.holds))
        if protected:
            assert d.action is Action.KEEP, d
        if d.action is Action.DESTROY:
            current = {f"zfsapi:home:{target}" for target in bases}
            assert set(d.release) == {h for h in s.holds if h.startswith("zfsapi:home:")} - current


@settings(max_examples=300, deadline=None)
@given(snapshot_lists(), counts_strategy, st.data())
def test_keeps_exactly_min_count_buckets_per_rule_and_the_oldest_of_each(snaps, counts, data):
    at = data.draw(st.integers(BASE, BASE + 900 * 86400))
    out = decide(snaps, policy=POLICY, counts=counts, bases={}, at=at)
    owned = sorted((s for s in snaps if s.policy == POLICY and s.creation <= at), key=lambda s: (s.creation, s.name))
    kept_last = [d.snapshot for d in out if any(r.startswith("keep_last ") for r in d.reasons)]
    assert kept_last == owned[len(owned) - min(counts.keep_last, len(owned)):] if counts.keep_last else kept_last == []
    for rule in ("hourly", "daily", "weekly", "monthly", "yearly"):
        n = getattr(counts, rule)
        oldest: dict[object, SnapshotInfo] = {}
        for s in owned:
            oldest.setdefault(_bucket(rule, s.creation), s)
        expected = sorted(oldest.values(), key=lambda s: s.creation)[-n:] if n else []
        by_rule = [d.snapshot for d in out if any(r.startswith(f"{rule} ") for r in d.reasons)]
        assert by_rule == expected
        assert len(by_rule) == min(n, len(oldest))


@settings(max_examples=300, deadline=None)
@given(snapshot_lists(), counts_strategy, st.data())
def test_pruning_the_result_again_destroys_nothing_more(snaps, counts, data):
    at = data.draw(st.integers(BASE, BASE + 900 * 86400))
    bases = _bases(snaps, data)
    first = decide(snaps, policy=POLICY, counts=counts, bases=bases, at=at)
    survivors = [d.snapshot for d in first if d.action is Action.KEEP]
    second = decide(survivors, policy=POLICY, counts=counts, bases=bases, at=at)
    assert all(d.action is Action.KEEP for d in second)
    # the reasons of the rules stay the same
    assert [d.reasons for d in second] == [d.reasons for d in first if d.action is Action.KEEP]


@settings(max_examples=300, deadline=None)
@given(snapshot_lists(), counts_strategy, counts_strategy, st.data())
def test_keep_decisions_are_monotone_in_the_counts(snaps, low, extra, data):
    at = data.draw(st.integers(BASE, BASE + 900 * 86400))
    high = RetentionCounts(*(getattr(low, f) + getattr(extra, f) for f in RetentionCounts.FIELDS))
    bases = _bases(snaps, data)
    keep_low = {d.snapshot.name for d in decide(snaps, policy=POLICY, counts=low, bases=bases, at=at)
                if d.action is Action.KEEP}
    keep_high = {d.snapshot.name for d in decide(snaps, policy=POLICY, counts=high, bases=bases, at=at)
                 if d.action is Action.KEEP}
    assert keep_low <= keep_high


@settings(max_examples=200, deadline=None)
@given(snapshot_lists(), counts_strategy, st.integers(300, 3000))
def test_batches_hold_exactly_the_destroyed_names(snaps, counts, limit):
    dataset = DatasetName.parse("tank/p")
    out = decide(snaps, policy=POLICY, counts=counts, bases={}, at=BASE + 900 * 86400)
    plan = plan_prune({dataset: out}, max_arg_bytes=limit)
    names = [n for arg in plan.destroy for n in arg.split("@", 1)[1].split(",")]
    assert names == [d.snapshot.name for d in out if d.action is Action.DESTROY]
    assert all(len(a.encode()) <= limit for a in plan.destroy)
