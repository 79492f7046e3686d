"""Policies: parsing the contract's shape with errors that name the exact key path, dataset selection (last
match wins, recursive roots vs explicit names), snapshot calls, and the names policies create."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zfsapi.domain.errors import InvalidArgument
from zfsapi.domain.names import DatasetName
from zfsapi.domain.policies import (
    NO_RETENTION,
    SAME_AS_SOURCE,
    DatasetSelector,
    Policy,
    RetentionCounts,
    SnapshotSettings,
    bookmark_name,
    hold_tag,
    is_own_hold,
    parse_datasets,
    parse_policies,
    parse_policy,
    parse_snapshot_time,
    plan_snapshot_calls,
    snapshot_short_name,
)
from zfsapi.domain.schedules import Schedule

UTC = timezone.utc

CONTRACT_EXAMPLE = {
    "name": "home",
    "datasets": ["tank/home", "!tank/home/tmp"],
    "snapshot": {"schedule": "0 * * * *", "timezone": "Europe/Berlin", "prefix": "auto", "recursive_atomic": True,
                 "min_written": 0},
    "retention": {"keep_last": 3, "hourly": 24, "daily": 14, "weekly": 8, "monthly": 12, "yearly": 2},
    "replicate": {
        "nas2": {"remote": "nas2", "destination": "backup/home", "schedule": "after_snapshot",
                 "retention": "same_as_source", "limit": None, "compression": None},
        "offsite": {"remote": "offsite", "destination": "vault/home", "schedule": "30 3 * * *",
                    "retention": {"daily": 30, "monthly": 6}, "limit": 12.5, "compression": "zstd"},
        "here": {"remote": "local", "destination": "backup2/home", "retention": "none"},
    },
    "enabled": True,
}


def ds(name: str) -> DatasetName:
    return DatasetName.parse(name)


def test_the_contract_example_parses():
    policy = parse_policy(CONTRACT_EXAMPLE)
    assert policy.name == "home" and policy.enabled
    assert policy.snapshot == SnapshotSettings(Schedule("0 * * * *", "Europe/Berlin"), "Europe/Berlin", "auto",
                                               True, 0)
    assert policy.retention == RetentionCounts(3, 24, 14, 8, 12, 2)
    assert [t.name for t in policy.replicate] == ["nas2", "offsite", "here"]
    nas2, offsite, here = policy.replicate
    assert nas2.after_snapshot and nas2.schedule is None and nas2.destination == ds("backup/home")
    assert offsite.schedule == Schedule("30 3 * * *", "Europe/Berlin")  # the policy's zone
    assert offsite.limit == 12.5 and offsite.compression == "zstd"
    assert policy.target_retention("nas2") == policy.retention
    assert policy.target_retention("offsite") == RetentionCounts(daily=30, monthly=6)
    assert policy.target_retention("here") is None and policy.target_retention("nowhere") is None
    assert here.remote == "local" and not here.after_snapshot and here.schedule is None


def test_to_dict_reads_back_into_the_same_policy():
    policy = parse_policy(CONTRACT_EXAMPLE)
    assert parse_policy(policy.to_dict()) == policy
    minimal = parse_policy({"name": "m", "datasets": ["tank"]})
    assert parse_policy(minimal.to_dict()) == minimal


def test_defaults_of_a_minimal_policy():
    policy = parse_policy({"name": "min_1", "datasets": ["tank/a b.c:d"]})
    assert policy.snapshot == SnapshotSettings()
    assert policy.snapshot.schedule is None and policy.snapshot.prefix == "zfsapi"
    assert policy.snapshot.recursive_atomic and policy.snapshot.min_written == 0
    assert policy.retention is None and policy.replicate == () and policy.enabled


def test_missing_counts_are_zero_and_a_missing_target_retention_is_same_as_source():
    policy = parse_policy({"name": "p", "datasets": ["tank"], "retention": {"daily": 7},
                           "replicate": {"t1": {"remote": "local", "destination": "backup/x"}}})
    assert policy.retention == RetentionCounts(daily=7)
    assert policy.replicate[0].retention == SAME_AS_SOURCE
    assert policy.target_retention("t1") == RetentionCounts(daily=7)


def test_policies_list_and_unique_names():
    assert parse_policies(None) == ()
    assert [p.name for p in parse_policies([{"name": "a", "datasets": ["tank"]},
                                            {"name": "b", "datasets": ["tank"]}])] == ["a", "b"]
    with pytest.raises(InvalidArgument) as exc:
        parse_policies([{"name": "a", "datasets": ["tank"]}, {"name": "a", "datasets": ["pool2"]}])
    assert exc.value.param == "policies[1].name" and "policies[0]" in exc.value.reason


def _broken(path: list[object], value: object, delete: bool = False) -> list[object]:
    """Three policies (the example three times, renamed), with the value at `path` of the third replaced."""
    items = []
    for i in range(3):
        p = copy.deepcopy(CONTRACT_EXAMPLE)
        p["name"] = f"home{i}"
        items.append(p)
    node: object = items[2]
    for key in path[:-1]:
        node = node[key]  # type: ignore[index]
    if delete:
        del node[path[-1]]  # type: ignore[attr-defined]
    else:
        node[path[-1]] = value  # type: ignore[index]
    return items


@pytest.mark.parametrize("path, value, param, fragment", [
    (["replicate", "nas2", "schedule"], "every hour", "policies[2].replicate.nas2.schedule", "5 fields"),
    (["replicate", "nas2", "schedule"], "0 0 31 2 *", "policies[2].replicate.nas2.schedule", "never matches"),
    (["replicate", "nas2", "remote"], "-oProxyCommand=x", "policies[2].replicate.nas2.remote", "replication.remotes"),
    (["replicate", "nas2", "destination"], "backup/home@x", "policies[2].replicate.nas2.destination", "'@'"),
    (["replicate", "nas2", "destination"], 5, "policies[2].replicate.nas2.destination", "string"),
    (["replicate", "nas2", "retention"], "keep", "policies[2].replicate.nas2.retention", "same_as_source"),
    (["replicate", "nas2", "retention"], {}, "policies[2].replicate.nas2.retention", "keeps nothing"),
    (["replicate", "nas2", "retention"], {"hourly": -1}, "policies[2].replicate.nas2.retention.hourly", "0 to"),
    (["replicate", "nas2", "limit"], 0, "policies[2].replicate.nas2.limit", "positive"),
    (["replicate", "nas2", "limit"], True, "policies[2].replicate.nas2.limit", "positive"),
    (["replicate", "nas2", "limit"], float("nan"), "policies[2].replicate.nas2.limit", "positive"),
    (["replicate", "nas2", "compression"], "bzip2", "policies[2].replicate.nas2.compression", "lz4"),
    (["replicate", "nas2", "speed"], 1, "policies[2].replicate.nas2.speed", "unknown key"),
    (["replicate", "nas-2"], {"remote": "local", "destination": "b/x"}, "policies[2].replicate.nas-2", "no '-'"),
    (["replicate", "nas2"], "nas2", "policies[2].replicate.nas2", "object"),
    (["replicate"], ["nas2"], "policies[2].replicate", "object"),
    (["snapshot", "schedul"], "0 * * * *", "policies[2].snapshot.schedul", "unknown key"),
    (["snapshot", "schedule"], "* * * *", "policies[2].snapshot.schedule", "5 fields"),
    (["snapshot", "timezone"], "Europe/Atlantis", "policies[2].snapshot.timezone", "unknown time zone"),
    (["snapshot", "prefix"], "-auto", "policies[2].snapshot.prefix", "prefix"),
    (["snapshot", "prefix"], "a@b", "policies[2].snapshot.prefix", "prefix"),
    (["snapshot", "prefix"], "a,b", "policies[2].snapshot.prefix", "prefix"),
    (["snapshot", "recursive_atomic"], "yes", "policies[2].snapshot.recursive_atomic", "true or false"),
    (["snapshot", "min_written"], -1, "policies[2].snapshot.min_written", "integer"),
    (["snapshot", "min_written"], "1M", "policies[2].snapshot.min_written", "integer"),
    (["snapshot"], "hourly", "policies[2].snapshot", "object"),
    (["retention", "hourly"], True, "policies[2].retention.hourly", "integer"),
    (["retention", "daily"], "14", "policies[2].retention.daily", "integer"),
    (["retention", "daily"], 10**9, "policies[2].retention.daily", "integer"),
    (["retention", "secondly"], 3, "policies[2].retention.secondly", "unknown key"),
    (["retention"], {"keep_last": 0}, "policies[2].retention", "keeps nothing"),
    (["retention"], {}, "policies[2].retention", "keeps nothing"),
    (["name"], "Home", "policies[2].name", "a-z"),
    (["name"], "home:x", "policies[2].name", "a-z"),
    (["name"], "x" * 65, "policies[2].name", "1-64"),
    (["datasets"], [], "policies[2].datasets", "non-empty"),
    (["datasets"], "tank/home", "policies[2].datasets", "list"),
    (["datasets"], ["!tank/home"], "policies[2].datasets", "only excludes"),
    (["datasets", 1], "!tank/home/../x", "policies[2].datasets[1]", "'..'"),
    (["datasets", 0], "-tank", "policies[2].datasets[0]", "letter"),
    (["datasets", 0], None, "policies[2].datasets[0]", "string"),
    (["enabled"], "false", "policies[2].enabled", "true or false"),
    (["owner"], "me", "policies[2].owner", "unknown key"),
])
def test_errors_name_the_exact_key_path(path, value, param, fragment):
    with pytest.raises(InvalidArgument) as exc:
        parse_policies(_broken(path, value))
    assert exc.value.param == param
    assert fragment in exc.value.reason


@pytest.mark.parametrize("key, param", [(["name"], "policies[2].name"), (["datasets"], "policies[2].datasets"),
                                        (["replicate", "nas2", "destination"],
                                         "policies[2].replicate.nas2.destination"),
                                        (["replicate", "nas2", "remote"], "policies[2].replicate.nas2.remote")])
def test_missing_required_keys(key, param):
    with pytest.raises(InvalidArgument) as exc:
        parse_policies(_broken(key, None, delete=True))
    assert exc.value.param == param and "missing" in exc.value.reason


def test_not_a_list_or_not_an_object():
    with pytest.raises(InvalidArgument) as exc:
        parse_policies({"name": "x"})
    assert exc.value.param == "policies"
    with pytest.raises(InvalidArgument) as exc:
        parse_policies([["x"]])
    assert exc.value.param == "policies[0]"


def test_remotes_are_checked_against_the_configured_names_when_given():
    with pytest.raises(InvalidArgument) as exc:
        parse_policies([CONTRACT_EXAMPLE], remotes={"nas2"})
    assert exc.value.param == "policies[0].replicate.offsite.remote" and "not a replication.remotes" in exc.value.reason
    assert len(parse_policies([CONTRACT_EXAMPLE], remotes={"nas2", "offsite"})) == 1


def test_api_path_prefix():
    with pytest.raises(InvalidArgument) as exc:
        parse_policy({"name": "p", "datasets": ["tank"], "retention": {"hourly": "x"}})
    assert exc.value.param == "policy.retention.hourly"


# ---- dataset selection

TREE = [ds(n) for n in ["tank", "tank/home", "tank/home/alice", "tank/home/tmp", "tank/home/tmp/cache",
                         "tank/home/tmp/keep", "tank/home/tmp/keep/deep", "tank/var", "tank/homely"]]


def test_children_are_included_and_the_last_match_wins():
    sel = parse_datasets(["tank/home", "!tank/home/tmp", "tank/home/tmp/keep"], "datasets")
    covered = [d.value for d in TREE if sel.covers(d)]
    assert covered == ["tank/home", "tank/home/alice", "tank/home/tmp/keep", "tank/home/tmp/keep/deep"]
    # the same entries in another order: the include of tank/home comes last and wins over the exclude
    reordered = parse_datasets(["tank/home/tmp/keep", "!tank/home/tmp", "tank/home"], "datasets")
    assert [d.value for d in TREE if reordered.covers(d)] == [
        "tank/home", "tank/home/alice", "tank/home/tmp", "tank/home/tmp/cache", "tank/home/tmp/keep",
        "tank/home/tmp/keep/deep"]


def test_a_prefix_of_a_name_is_not_a_parent():
    sel = parse_datasets(["tank/home"], "datasets")
    assert not sel.covers(ds("tank/homely")) and not sel.covers(ds("tank"))


def test_select_splits_recursive_roots_from_explicit_names():
    sel = parse_datasets(["tank/home", "!tank/home/tmp", "tank/home/tmp/keep", "tank/var"], "datasets")
    selection = sel.select(TREE)
    assert [d.value for d in selection.covered] == ["tank/home", "tank/home/alice", "tank/home/tmp/keep",
                                                    "tank/home/tmp/keep/deep", "tank/var"]
    assert [d.value for d in selection.recursive] == ["tank/home/alice", "tank/home/tmp/keep", "tank/var"]
    assert [d.value for d in selection.explicit] == ["tank/home"]


def test_a_whole_subtree_is_one_root():
    selection = parse_datasets(["tank/home"], "datasets").select(TREE)
    assert [d.value for d in selection.recursive] == ["tank/home"] and selection.explicit == ()
    assert len(selection.covered) == 6


def test_skipped_datasets_break_their_parents_subtree():
    sel = parse_datasets(["tank/home"], "datasets")
    selection = sel.select(TREE, skip={ds("tank/home/tmp/cache")})
    assert ds("tank/home/tmp/cache") not in selection.covered
    assert [d.value for d in selection.explicit] == ["tank/home", "tank/home/tmp"]
    assert [d.value for d in selection.recursive] == ["tank/home/alice", "tank/home/tmp/keep"]


def test_snapshot_calls_atomic_recursive_when_nothing_is_excluded():
    selection = parse_datasets(["tank/home", "pool2/data"], "datasets").select(TREE + [ds("pool2/data"),
                                                                                      ds("pool2/data/x")])
    calls = plan_snapshot_calls(selection, "auto-20261205T090000Z", atomic=True)
    assert [(c.recursive, [s.value for s in c.snapshots]) for c in calls] == [
        (True, ["pool2/data@auto-20261205T090000Z"]),
        (True, ["tank/home@auto-20261205T090000Z"]),
    ]


def test_snapshot_calls_name_every_dataset_in_one_call_when_there_are_excludes():
    selection = parse_datasets(["tank/home", "!tank/home/tmp"], "datasets").select(TREE)
    calls = plan_snapshot_calls(selection, "s", atomic=True)
    assert len(calls) == 1 and not calls[0].recursive
    assert [s.value for s in calls[0].snapshots] == ["tank/home@s", "tank/home/alice@s"]


def test_snapshot_calls_not_atomic_are_one_per_dataset_and_big_lists_are_split():
    selection = parse_datasets(["tank/home", "!tank/home/tmp"], "datasets").select(TREE)
    calls = plan_snapshot_calls(selection, "s", atomic=False)
    assert [(c.recursive, [s.value for s in c.snapshots]) for c in calls] == [
        (False, ["tank/home@s"]), (False, ["tank/home/alice@s"])]
    many = [ds("tank")] + [ds(f"tank/d{i:04d}") for i in range(1000)]
    sel = parse_datasets(["tank", "!tank/d0000"], "datasets").select(many)
    split = plan_snapshot_calls(sel, "auto-20261205T090000Z", atomic=True, max_argv_bytes=10_000)
    assert sum(len(c.snapshots) for c in split) == 1000 and len(split) > 1
    assert all(sum(len(s.value) + 9 for s in c.snapshots) <= 10_000 for c in split)


# ---- names

def test_snapshot_names_are_utc_and_parse_back():
    when = datetime(2026, 3, 29, 3, 0, 5, tzinfo=ZoneInfo("Europe/Berlin"))
    assert snapshot_short_name("auto", when) == "auto-20260329T010005Z"
    assert parse_snapshot_time("auto-20260329T010005Z", "auto") == datetime(2026, 3, 29, 1, 0, 5, tzinfo=UTC)
    assert snapshot_short_name("zfsapi", datetime(2028, 2, 29, tzinfo=UTC)) == "zfsapi-20280229T000000Z"


@pytest.mark.parametrize("short", ["auto-20260230T000000Z", "auto-20260329T010005", "other-20260329T010005Z",
                                   "auto-20260329T010005Z-1", "auto_20260329T010005Z", "auto-2026032T010005Z",
                                   "auto-20260329T250000Z"])
def test_names_that_are_not_the_policys(short):
    assert parse_snapshot_time(short, "auto") is None


def test_naive_time_is_refused():
    with pytest.raises(InvalidArgument):
        snapshot_short_name("auto", datetime(2026, 1, 1))


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 31),
                    timezones=st.sampled_from([UTC, ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")])),
       st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}", fullmatch=True))
def test_name_round_trip(when, prefix):
    name = snapshot_short_name(prefix, when)
    expected = when.astimezone(UTC).replace(microsecond=0)
    assert parse_snapshot_time(name, prefix) == expected
    DatasetName.parse("tank/a").snapshot(name)  # a valid ZFS snapshot name


def test_hold_tags_and_bookmarks_per_policy_and_target():
    assert hold_tag("home", "nas2").value == "zfsapi:home:nas2"
    assert bookmark_name(ds("tank/a b"), "home", "nas2").value == "tank/a b#zfsapi-home-nas2"
    policy = parse_policy(CONTRACT_EXAMPLE)
    assert policy.hold_tag("offsite").value == "zfsapi:home:offsite"
    assert policy.bookmark(ds("tank/home"), "offsite").value == "tank/home#zfsapi-home-offsite"
    assert is_own_hold("zfsapi:home:nas2", "home") and not is_own_hold("zfsapi:home2:nas2", "home")
    assert not is_own_hold("zfsapi:replication", "home") and not is_own_hold("keep", "home")


def test_hold_and_bookmark_names_are_validated():
    with pytest.raises(InvalidArgument) as exc:
        hold_tag("home", "a:b")
    assert exc.value.param == "target"
    with pytest.raises(InvalidArgument) as exc:
        hold_tag("Home", "nas2")
    assert exc.value.param == "policy"
    with pytest.raises(InvalidArgument) as exc:
        bookmark_name(ds("tank/" + "x" * 200), "p" * 30, "t" * 30)
    assert exc.value.param == "bookmark" and "255" in exc.value.reason


def test_policy_and_target_names_that_would_collide_in_a_bookmark_cannot_be_written():
    # "a-b" + "c" and "a" + "b-c" would both be #zfsapi-a-b-c: a target name may not contain '-'
    assert bookmark_name(ds("tank"), "a-b", "c").value == "tank#zfsapi-a-b-c"
    with pytest.raises(InvalidArgument):
        bookmark_name(ds("tank"), "a", "b-c")


def test_policy_value_objects_are_hashable_and_comparable():
    a = parse_policy(CONTRACT_EXAMPLE)
    b = parse_policy(copy.deepcopy(CONTRACT_EXAMPLE))
    assert a == b and hash(a.datasets) == hash(b.datasets)
    assert isinstance(a, Policy) and isinstance(a.datasets, DatasetSelector)
    assert a.target("offsite") is not None and a.target("nas3") is None
    assert NO_RETENTION == "none"


def test_next_runs_of_a_parsed_policy():
    from zfsapi.domain.schedules import next_runs
    policy = parse_policy(CONTRACT_EXAMPLE)
    assert policy.snapshot.schedule is not None
    start = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    runs = next_runs(policy.snapshot.schedule, start, 3)
    assert [r - start for r in runs] == [timedelta(minutes=30), timedelta(minutes=90), timedelta(minutes=150)]


def test_a_target_max_lag_is_read_checked_and_written_back():
    """`max_lag` (seconds): the RPO the health check holds a target to."""
    raw = {"name": "m", "datasets": ["tank"], "replicate": {"b": {"remote": "local", "destination": "backup/m",
                                                                   "max_lag": 7200}}}
    policy = parse_policy(raw)
    assert policy.replicate[0].max_lag == 7200.0
    assert parse_policy(policy.to_dict()) == policy
    assert "max_lag" not in parse_policy({"name": "m", "datasets": ["tank"], "replicate": {
        "b": {"remote": "local", "destination": "backup/m"}}}).to_dict()["replicate"]["b"]
    for bad in (0, -1, True, "1h"):
        raw["replicate"]["b"]["max_lag"] = bad  # type: ignore[index]
        with pytest.raises(InvalidArgument) as exc:
            parse_policy(raw)
        assert exc.value.param == "policy.replicate.b.max_lag"
