"""The alert rules and the alert book (domain/alerts.py): pure, no clock."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from zfsapi.domain.alerts import (
    AlertBook,
    CapacityLevels,
    FailedJob,
    Finding,
    capacity_grade,
    check_kind,
    check_severity,
    failed_jobs,
    pool_capacity,
    pool_health,
    replication_lag,
    scrub_age,
    snapshot_freshness,
    visible_to,
)
from zfsapi.domain.authz import Principal, Role
from zfsapi.domain.errors import InvalidArgument

H = 3600.0
DAY = 86400.0


def test_pool_health_severity_by_state():
    assert pool_health("tank", "ONLINE") is None
    degraded = pool_health("tank", "DEGRADED")
    assert degraded is not None and degraded.severity == "warning" and degraded.id == "pool_health:tank"
    for state in ("FAULTED", "UNAVAIL", "SUSPENDED", "REMOVED", "OFFLINE"):
        found = pool_health("tank", state)
        assert found is not None and found.severity == "critical" and state in found.message


def test_capacity_levels_and_hysteresis():
    assert capacity_grade(79, 0) == 0
    assert capacity_grade(80, 0) == 1
    assert capacity_grade(90, 0) == 2
    assert capacity_grade(95, 0) == 3
    # raised at 80: held down to 75, cleared below
    assert capacity_grade(76, 1) == 1
    assert capacity_grade(75, 1) == 1
    assert capacity_grade(74, 1) == 0
    # critical held to 85, then warning
    assert capacity_grade(86, 2) == 2
    assert capacity_grade(84, 2) == 1
    # never rising by hysteresis alone
    assert capacity_grade(88, 1) == 1
    found = pool_capacity("tank", 96, 0)
    assert found is not None and found.severity == "critical" and "nearly full" in found.message
    with pytest.raises(InvalidArgument):
        CapacityLevels(warning=90, critical=80, full=95)


@given(st.integers(0, 100), st.integers(0, 3))
def test_capacity_grade_within_hysteresis(capacity, previous):
    levels = CapacityLevels()
    grade = capacity_grade(capacity, previous, levels)
    plain = capacity_grade(capacity, 0, levels)
    assert plain <= grade <= max(plain, previous)  # hysteresis only ever holds a level already reached
    assert capacity_grade(capacity + 5, grade, levels) >= grade  # a rise never lowers the level


def test_scrub_age():
    now = 100 * DAY
    assert scrub_age("tank", now - 10 * DAY, now, 35) is None
    old = scrub_age("tank", now - 40 * DAY, now, 35)
    assert old is not None and "40 days" in old.message
    never = scrub_age("tank", None, now, 35)
    assert never is not None and "no finished scrub" in never.message


def test_snapshot_freshness_twice_the_interval():
    newest = 10 * H + 5
    slots = [11 * H, 12 * H]  # hourly
    assert snapshot_freshness("home", newest, 11.5 * H, slots, ("tank/home",)) is None
    assert snapshot_freshness("home", newest, 12 * H, slots, ("tank/home",)) is None  # not yet twice
    late = snapshot_freshness("home", newest, 12 * H + 10, slots, ("tank/home",))
    assert late is not None and late.severity == "warning" and late.subject == "home"
    very = snapshot_freshness("home", newest, 15 * H, slots, ("tank/home",))
    assert very is not None and very.severity == "critical"
    assert snapshot_freshness("home", None, 15 * H, slots, ()) is None


def test_snapshot_freshness_irregular_schedule():
    """Weekdays at 9: a Friday snapshot is not late over the weekend (two slots must pass)."""
    friday = 4 * DAY + 9 * H
    monday, tuesday = 7 * DAY + 9 * H, 8 * DAY + 9 * H
    assert snapshot_freshness("w", friday, 7 * DAY + 8 * H, [monday, tuesday], ()) is None
    assert snapshot_freshness("w", friday, tuesday + 60, [monday, tuesday], ()) is not None


def test_replication_lag():
    last = 1000.0
    assert replication_lag("home", "nas", last, last + 100, [], 600, ()) is None
    lag = replication_lag("home", "nas", last, last + 700, [], 600, ("tank/home",))
    assert lag is not None and lag.subject == "home:nas" and lag.severity == "warning"
    crit = replication_lag("home", "nas", last, last + 1300, [], 600, ())
    assert crit is not None and crit.severity == "critical"
    # without max_lag: twice the schedule's interval
    assert replication_lag("home", "nas", 10 * H, 11.9 * H, [11 * H, 12 * H], None, ()) is None
    assert replication_lag("home", "nas", 10 * H, 12.1 * H, [11 * H, 12 * H], None, ()) is not None
    assert replication_lag("home", "nas", None, 99 * H, [11 * H, 12 * H], None, ()) is None
    assert replication_lag("home", "nas", 10 * H, 99 * H, [], None, ()) is None  # no schedule, no limit


def test_failed_jobs_grouped_by_kind_within_the_window():
    now = 10_000.0
    jobs = [FailedJob("a", "policy_snapshot", now - 10, ("tank/a",), "boom"),
            FailedJob("b", "policy_snapshot", now - 5, ("tank/b",), "bang"),
            FailedJob("c", "send_to_file", now - 4000, ("tank/c",), "old")]
    found = failed_jobs(jobs, now, 3600)
    assert [f.subject for f in found] == ["policy_snapshot"]
    assert "2 policy_snapshot" in found[0].message and "b: bang" in found[0].message
    assert found[0].datasets == ("tank/a", "tank/b")
    nameless = failed_jobs([FailedJob("d", "x", now, (), "e")], now, 60)
    assert nameless[0].datasets == ()


def _f(kind: str, subject: str, severity: str = "warning", grade: int = 0) -> Finding:
    return Finding(kind, subject, severity, f"{kind} {subject}", grade=grade)  # type: ignore[arg-type]


def test_book_raises_keeps_since_changes_and_clears():
    book = AlertBook()
    changes = book.update([_f("pool_health", "tank")], ["pool_health"], 100.0)
    assert [(c.change, c.alert.id) for c in changes] == [("raised", "pool_health:tank")]
    assert book.update([_f("pool_health", "tank")], ["pool_health"], 160.0) == []  # one per change, not per check
    assert book.alerts[0].since == 100.0
    changed = book.update([_f("pool_health", "tank", "critical")], ["pool_health"], 220.0)
    assert [(c.change, c.previous) for c in changed] == [("changed", "warning")]
    assert book.alerts[0].since == 100.0 and book.alerts[0].finding.severity == "critical"
    # a round that could not check pool health keeps the alert
    assert book.update([], ["scrub_age"], 280.0) == []
    assert len(book.alerts) == 1
    cleared = book.update([], ["pool_health"], 340.0)
    assert [(c.change, c.alert.since) for c in cleared] == [("cleared", 100.0)]
    assert book.alerts == []


def test_book_grade_change_within_one_severity_is_delivered():
    book = AlertBook()
    book.update([_f("pool_capacity", "tank", "critical", 2)], ["pool_capacity"], 1.0)
    assert book.grade("pool_capacity:tank") == 2
    changes = book.update([_f("pool_capacity", "tank", "critical", 3)], ["pool_capacity"], 2.0)
    assert [c.change for c in changes] == ["changed"]
    assert book.grade("pool_health:none") == 0


@given(st.lists(st.lists(st.sampled_from(["a", "b", "c"]), unique=True), max_size=12))
def test_book_changes_replay_to_its_state(rounds):
    """Replaying only the changes gives the same set of alerts as the book holds, round after round."""
    book = AlertBook()
    replayed: set[str] = set()
    for i, subjects in enumerate(rounds):
        for change in book.update([_f("scrub_age", s) for s in subjects], ["scrub_age"], float(i)):
            if change.change == "raised":
                assert change.alert.id not in replayed
                replayed.add(change.alert.id)
            elif change.change == "cleared":
                replayed.remove(change.alert.id)
        assert replayed == {a.id for a in book.alerts} == {f"scrub_age:{s}" for s in subjects}


def test_visibility_by_scope():
    book = AlertBook()
    book.update([Finding("pool_health", "tank", "critical", "m", pools=("tank",)),
                 Finding("snapshot_freshness", "home", "warning", "m", datasets=("tank/home",)),
                 Finding("job_failed", "x", "warning", "m")], ["pool_health", "snapshot_freshness", "job_failed"],
                1.0)
    everyone = Principal("root", Role.ADMIN)
    scoped = Principal("u", Role.READONLY, ("tank/home",))
    other = Principal("v", Role.READONLY, ("pool2/x",))
    assert all(visible_to(a, everyone) for a in book.alerts)
    assert sorted(a.id for a in book.alerts if visible_to(a, scoped)) == ["pool_health:tank",
                                                                         "snapshot_freshness:home"]
    assert [a.id for a in book.alerts if visible_to(a, other)] == []


def test_checked_values():
    assert check_severity("critical") == "critical"
    with pytest.raises(InvalidArgument):
        check_severity("info")
    assert check_kind("scrub_age") == "scrub_age"
    with pytest.raises(InvalidArgument):
        check_kind("nope")
