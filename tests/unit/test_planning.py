from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from zfsapi.domain.errors import NotFound, StateConflict
from zfsapi.domain.models import Snapshot
from zfsapi.domain.names import SnapshotName
from zfsapi.domain.planning import auto_snapshot_name, plan_destroy, plan_rollback


def snap(name: str, txg: int) -> Snapshot:
    return Snapshot(name, txg * 7, txg, 0, 0, 0, 0)


SNAPS = [snap("tank/a@s3", 30), snap("tank/a@s1", 10), snap("tank/a@s2", 20)]


def test_rollback_to_latest_needs_nothing():
    plan = plan_rollback(SnapshotName.parse("tank/a@s3"), SNAPS, destroy_newer=False)
    assert plan.destroys == [] and not plan.needs_recursive


def test_rollback_refuses_listing_newer_snapshots_oldest_first():
    with pytest.raises(StateConflict) as exc:
        plan_rollback(SnapshotName.parse("tank/a@s1"), SNAPS, destroy_newer=False)
    assert exc.value.details["newer"] == ["tank/a@s2", "tank/a@s3"]


def test_rollback_with_destroy_newer():
    plan = plan_rollback(SnapshotName.parse("tank/a@s1"), SNAPS, destroy_newer=True)
    assert plan.destroys == ["tank/a@s2", "tank/a@s3"] and plan.needs_recursive


def test_rollback_to_missing_snapshot():
    with pytest.raises(NotFound):
        plan_rollback(SnapshotName.parse("tank/a@zz"), SNAPS, destroy_newer=True)


def test_destroy_flags():
    assert plan_destroy(False, False) == plan_destroy(False, False)
    assert (plan_destroy(False, False).recursive, plan_destroy(False, False).dependents) == (False, False)
    assert (plan_destroy(True, False).recursive, plan_destroy(True, False).dependents) == (True, False)
    assert (plan_destroy(False, True).recursive, plan_destroy(False, True).dependents) == (True, True)


def test_auto_names_in_utc_with_seconds_then_counter():
    when = datetime(2026, 11, 24, 23, 5, 9, tzinfo=timezone(timedelta(hours=2)))
    assert auto_snapshot_name("daily", None, when, []) == "daily_2026-11-24-21-05"
    assert auto_snapshot_name("daily", "db", when, []) == "daily_db_2026-11-24-21-05"
    taken = ["daily_2026-11-24-21-05"]
    assert auto_snapshot_name("daily", None, when, taken) == "daily_2026-11-24-21-05-09"
    taken.append("daily_2026-11-24-21-05-09")
    assert auto_snapshot_name("daily", None, when, taken) == "daily_2026-11-24-21-05-09-2"
    taken.append("daily_2026-11-24-21-05-09-2")
    assert auto_snapshot_name("daily", None, when, taken) == "daily_2026-11-24-21-05-09-3"
