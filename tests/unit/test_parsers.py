"""Parsers and stderr classification on output captured from real OpenZFS 2.3.2 (tests/unit/data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zfsapi.adapters.outbound.zfs import parsers
from zfsapi.adapters.outbound.zfs.executor import Completed
from zfsapi.domain.errors import (
    AlreadyExists,
    Busy,
    HasDependents,
    InvalidArgument,
    NotFound,
    StateConflict,
    ZfsCommandFailed,
    ZfsUnavailable,
)
from zfsapi.domain.models import ChangeKind, Vdev

DATA = Path(__file__).parent / "data" / "zfs-2.3.2"


def done(name: str = "", stdout: bytes | None = None, stderr: str = "", code: int = 0) -> Completed:
    out = stdout if stdout is not None else (DATA / name).read_bytes()
    return Completed(["zfs", "x"], code, out, stderr)


def test_snapshots_oldest_first_with_exact_integers():
    snaps = parsers.snapshots(done("list-snapshots.txt"))
    assert [s.name for s in snaps] == ["tp/a b@s1", "tp/a b@s2"]
    assert snaps[0].guid == 12871756710286808311  # > 2**63: exact, unsigned
    assert (snaps[0].createtxg, snaps[0].used, snaps[0].referenced, snaps[0].userrefs) == (11, 14336, 24576, 0)


def test_snapshot_identities_without_details():
    (snap,) = parsers.snapshots(done(stdout=b"tp/a b@s1\t12871756710286808311\t11\n"), details=False)
    assert (snap.name, snap.guid, snap.createtxg, snap.used, snap.creation) == (
        "tp/a b@s1", 12871756710286808311, 11, None, None)


def test_row_with_wrong_column_count_is_an_error():
    with pytest.raises(ZfsCommandFailed) as exc:
        parsers.snapshots(done(stdout=b"tp/a@s\t1\t2\n"))
    assert exc.value.stderr == "unexpected output: 3 columns, expected 7"


def test_diff_unescapes_spaces_newlines_backslashes_and_utf8():
    entries = parsers.diff(done("diff.txt"))
    assert entries[0].kind is ChangeKind.RENAMED
    assert (entries[0].path, entries[0].new_path, entries[0].file_type) == (
        "/var/tmp/mnt/a b/f1", "/var/tmp/mnt/a b/f2", "file")
    paths = [e.path for e in entries]
    assert "/var/tmp/mnt/a b/dir x/ümlaut é" in paths
    assert "/var/tmp/mnt/a b/back\\slash" in paths
    assert "/var/tmp/mnt/a b/new\nline" in paths
    assert entries[4].kind is ChangeKind.MODIFIED and entries[4].file_type == "directory"
    assert sum(e.kind is ChangeKind.NEW for e in entries) == 4


def test_holds_parsable_and_ctime_forms_agree():
    (snap, hold), = parsers.holds(done("holds-p.txt"))
    (_, old), = parsers.holds(done("holds-no-p.txt"))
    assert snap == "tp/a b@s1" and hold.tag == "t1" and hold.timestamp == 1795559186
    assert old.timestamp == 1795559186 - 1795559186 % 60  # minute precision without -p


def test_pools_and_version():
    (pool,) = parsers.pools(done("zpool-list.txt"))
    assert (pool.name, pool.size, pool.allocated, pool.free, pool.capacity, pool.health, pool.fragmentation) == (
        "tp", 503316480, 316416, 503000064, 0, "ONLINE", 3)
    assert parsers.version(done("version.txt")) == "2.3.2"


@pytest.mark.parametrize("stdout, expected", [
    (b"zfs-2.1.11-1\nzfs-kmod-2.1.11-1\n", "2.1.11"),  # bookworm's 2.1
    (b"zfs-kmod-2.2.0-1\n", "2.2.0"),  # only the module's line
])
def test_version_forms(stdout, expected):
    assert parsers.version(done(stdout=stdout)) == expected


def test_no_version_is_an_error():
    with pytest.raises(ZfsCommandFailed) as exc:
        parsers.version(done(stdout=b"zfs: command not found\n"))
    assert exc.value.stderr == "cannot read the zfs version"


def test_pool_status():
    st = parsers.pool_status(done("zpool-status.txt"), "tp")
    assert st.state == "ONLINE"
    assert st.scan.function == "scrub" and st.scan.state == "finished" and st.scan.errors == 0
    assert st.vdevs == [Vdev("tp", "ONLINE", 0, 0, 0, [Vdev("/var/tmp/p.img", "ONLINE", 0, 0, 0)])]
    assert st.errors == "No known data errors"
    assert st.raw.startswith("  pool: tp")


def test_scan_in_progress_line():
    text = ("  pool: tp\n state: ONLINE\n  scan: scrub in progress since Tue Nov 24 22:26:27 2026\n"
            "\t1048576 / 4194304 scanned at 1048576/s, 524288 / 4194304 issued at 524288/s\n"
            "\t0 repaired, 12.50% done, 00:00:07 to go\nconfig:\n\n\tNAME STATE READ WRITE CKSUM\n"
            "\ttp ONLINE 0 0 0\n\nerrors: No known data errors\n")
    scan = parsers.pool_status(done(stdout=text.encode()), "tp").scan
    assert (scan.function, scan.state, scan.percent, scan.examined, scan.total) == (
        "scrub", "scanning", 12.5, 524288, 4194304)
    assert scan.errors == 0
    assert scan.ended is None


def test_scan_end_time():
    """The end of the last finished scan, read as UTC (zpool runs with TZ=UTC): what the scrub age check reads."""
    from datetime import datetime, timezone

    st = parsers.pool_status(done("zpool-status.txt"), "tp")
    assert st.scan.ended == datetime(2026, 11, 24, 22, 26, 27, tzinfo=timezone.utc).timestamp()
    text = "  pool: tp\n state: ONLINE\n  scan: scrub canceled on Sun Dec  6 04:00:00 2026\nconfig:\n"
    scan = parsers.pool_status(done(stdout=text.encode()), "tp").scan
    assert scan.state == "canceled" and scan.ended == datetime(2026, 12, 6, 4, tzinfo=timezone.utc).timestamp()


def test_scan_without_an_issued_figure_reports_the_scanned_one():
    text = ("  pool: tp\n state: ONLINE\n  scan: resilver in progress since Tue Nov 24 22:26:27 2026\n"
            "\t1048576 / 4194304 scanned at 1048576/s\n\t0 resilvered, 25.00% done\nconfig:\n\n"
            "\tNAME STATE READ WRITE CKSUM\n\ttp ONLINE 0 0 0\n\nerrors: No known data errors\n")
    scan = parsers.pool_status(done(stdout=text.encode()), "tp").scan
    assert (scan.function, scan.state, scan.percent, scan.examined, scan.total, scan.errors) == (
        "resilver", "scanning", 25.0, 1048576, 4194304, 0)


def test_property_values_exact_integers_for_native_only():
    assert parsers.property_value("used", "123") == 123
    assert parsers.property_value("com.x:id", "007") == "007"
    assert parsers.property_value("mountpoint", "/x") == "/x"
    assert parsers.property_value("compression", "lz4") == "lz4"


# The stderr texts below are verbatim from OpenZFS 2.3.2 (see tests/integration for the live pins).
STDERR = [
    ("cannot create 'tp/a': dataset already exists", AlreadyExists, {"kind": "dataset", "name": "tp/a"}),
    ("cannot create 'tp/x/y': parent does not exist", NotFound, {"kind": "dataset", "name": "tp/x"}),
    ("cannot open 'tp/nope': dataset does not exist", NotFound, {"kind": "dataset", "name": "tp/nope"}),
    ("cannot hold snapshot 'tp/a b@nope': dataset does not exist", NotFound,
     {"kind": "snapshot", "name": "tp/a b@nope"}),
    ("could not find any snapshots to destroy; check snapshot names.", NotFound, {"kind": "snapshot"}),
    ("bookmark 'tp/a b#nobm' does not exist.", NotFound, {"kind": "bookmark", "name": "tp/a b#nobm"}),
    ("cannot open 'nopool': no such pool", NotFound, {"kind": "pool", "name": "nopool"}),
    ("cannot destroy 'tp/a b': filesystem has children\nuse '-r' to destroy the following datasets:\n"
     "tp/a b/c:d\ntp/a b@s1\ntp/a b@s2", HasDependents,
     {"name": "tp/a b", "dependents": ["tp/a b/c:d", "tp/a b@s1", "tp/a b@s2"]}),
    ("cannot destroy 'tp/a b': filesystem has dependent clones\nuse '-R' to destroy the following datasets:\n"
     "tp/cl", HasDependents, {"name": "tp/a b", "dependents": ["tp/cl"]}),
    ("cannot destroy snapshot tp/a b@s1: it's being held. Run 'zfs holds -r tp/a b@s1' to see holders.",
     HasDependents, {"name": "tp/a b@s1"}),
    ("cannot hold snapshot 'tp/a b@s1': tag already exists on this dataset", AlreadyExists, {"kind": "hold"}),
    ("cannot release hold from snapshot 'tp/a b@s1': no such tag on this dataset", NotFound, {"kind": "hold"}),
    ("cannot rollback to 'tp/a b@s1': more recent snapshots or bookmarks exist\nuse '-r' to force deletion of "
     "the following snapshots and bookmarks:\ntp/a b@s2", StateConflict, {"details": {"newer": ["tp/a b@s2"]}}),
    ("cannot create bookmark 'tp/a b#bm': bookmark exists", AlreadyExists, {"kind": "bookmark"}),
    ("cannot receive new filesystem stream: destination 'tp/a b-recv' exists\nmust specify -F to overwrite it",
     AlreadyExists, {"kind": "dataset", "name": "tp/a b-recv"}),
    ("cannot create snapshot 'tp/a b@s2': dataset already exists", AlreadyExists, {"kind": "snapshot"}),
    ("cannot scrub tp: currently scrubbing; use 'zpool scrub -s' to cancel scrub", Busy, {}),
    ("cannot cancel scrubbing tp: there is no active scrub", StateConflict, {}),
    ("bad property list: invalid property 'compresion'\nusage:\n\tget [-rHp] ...", InvalidArgument,
     {"reason": "bad property list: invalid property 'compresion'"}),
    ("The ZFS modules are not loaded.\nTry running 'modprobe zfs' as root to load them.", ZfsUnavailable, {}),
    ("cannot set property for 'tp': 'compression' must be one of 'on | off'", ZfsCommandFailed, {"exit_code": 1}),
]


@pytest.mark.parametrize("stderr, kind, fields", STDERR, ids=[s[0][:40] for s in STDERR])
def test_classify(stderr, kind, fields):
    error = parsers.classify(done(stdout=b"", stderr=stderr, code=1), name="tp/a b@s1", kind="snapshot")
    assert type(error) is kind
    for key, value in fields.items():
        assert getattr(error, key) == value, (key, getattr(error, key))
