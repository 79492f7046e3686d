"""OpenZFS naming rules (module/zcommon/zfs_namecheck.c, libzfs) as value objects."""

from __future__ import annotations

import pytest

from zfsapi.domain.errors import InvalidArgument
from zfsapi.domain.names import (
    BookmarkName,
    DatasetName,
    HoldTag,
    PoolName,
    PropertyName,
    PropertyValue,
    SnapshotName,
    parse_properties,
)

VALID = ["tank", "tank/a b", "tank/a:b.c_d-e", "t/" + "x" * 253, "T1/.x", "tank/..a", "a/" + "/".join("x" * 49)]
CHARS = "; allowed are letters, digits, space and _ . : -"
INVALID = {  # name: the reason given
    "": "empty name component",
    "/tank": "leading or trailing '/'",
    "tank/": "leading or trailing '/'",
    "tank//a": "empty name component",
    "1tank": "pool name must begin with a letter",
    "-o": "pool name must begin with a letter",
    "tank/a@b": "a dataset name has no '@' or '#' part",
    "tank/a#b": "a dataset name has no '@' or '#' part",
    "tank/a\tb": "invalid character '\\t'" + CHARS,
    "tank/a\nb": "invalid character '\\n'" + CHARS,
    "tank/ä": "invalid character 'ä'" + CHARS,
    "tank/%recv": "invalid character '%'" + CHARS,
    "mirror": "pool name 'mirror' is reserved",
    "mirror1/a": "pool name 'mirror1' is reserved",
    "raidz": "pool name 'raidz' is reserved",
    "draid2": "pool name 'draid2' is reserved",
    "spare": "pool name 'spare' is reserved",
    "log": "pool name 'log' is reserved",
    "c0t0d0": "pool name may not look like a disk (c0...)",
    "tank/.": "'.' is not a valid name component",
    "tank/..": "'..' is not a valid name component",
    "tank/a/../b": "'..' is not a valid name component",
    "t/" + "x" * 254: "name is 256 bytes, longer than the ZFS limit of 255",
    "a/" + "/".join("x" * 50): "nested 51 levels deep, more than 50",
}


@pytest.mark.parametrize("name", VALID)
def test_valid_dataset_names(name):
    assert DatasetName.parse(name).value == name


@pytest.mark.parametrize("name", INVALID)
def test_invalid_dataset_names(name):
    with pytest.raises(InvalidArgument) as exc:
        DatasetName.parse(name)
    assert (exc.value.param, exc.value.reason) == ("dataset", INVALID[name])


def test_255_bytes_counts_utf8_bytes_not_characters():
    assert len(DatasetName.parse("t/" + "x" * 253).value.encode()) == 255
    with pytest.raises(InvalidArgument):
        SnapshotName.parse("t/" + "x" * 250 + "@abcd")


def test_snapshot_and_bookmark_names():
    snap = SnapshotName.parse("tank/a b@s 1:x")
    assert (snap.dataset.value, snap.short, snap.value) == ("tank/a b", "s 1:x", "tank/a b@s 1:x")
    assert BookmarkName.parse("tank/a#b").short == "b"
    for bad in ["tank", "tank@", "@s", "tank@a@b", "tank@a/b", "tank@a#b", "tank@-x\n"]:
        with pytest.raises(InvalidArgument) as exc:
            SnapshotName.parse(bad)
        assert exc.value.param == "snapshot"
    with pytest.raises(InvalidArgument):
        BookmarkName.parse("tank#a#b")


def test_snapshot_of_accepts_short_or_full_name_of_the_same_dataset():
    ds = DatasetName.parse("tank/a")
    assert SnapshotName.of(ds, "s1").value == "tank/a@s1"
    assert SnapshotName.of(ds, "tank/a@s1").value == "tank/a@s1"
    with pytest.raises(InvalidArgument):
        SnapshotName.of(ds, "tank/b@s1")


def test_pool_names():
    assert PoolName.parse("tank").value == "tank"
    for bad in ["", "1a", "mirror", "raidz1", "c3", "a/b", "a@b"]:
        with pytest.raises(InvalidArgument):
            PoolName.parse(bad)


def test_no_parsed_name_can_be_an_option():
    for text in ["-r", "--", "-o mountpoint=/", "-Rf"]:
        for cls in (DatasetName, PoolName):
            with pytest.raises(InvalidArgument):
                cls.parse(text)
    with pytest.raises(InvalidArgument):
        HoldTag.parse("-r")


def test_properties():
    assert PropertyName.parse("compression").is_user is False
    assert PropertyName.parse("com.example:note").is_user
    assert PropertyName.parse("userquota@bob").value == "userquota@bob"
    for bad in ["", "Compression", "com.example", "a b", "x:Y", "-x:y", "1abc"]:
        with pytest.raises(InvalidArgument):
            PropertyName.parse(bad)
    for good in ["userquota@bob", "groupused@1000", "userobjquota@bob@example.com", "userquota@S-1-5-21-1-2-3-500",
                 "projectquota@42", "written@daily-2024.01.01", "written#mark"]:
        assert PropertyName.parse(good).value == good
    assert PropertyValue.parse("x" * 8192).value == "x" * 8192
    for bad in ["x" * 8193, "a\tb", "a\nb", "a\0b"]:
        with pytest.raises(InvalidArgument):
            PropertyValue.parse(bad)


@pytest.mark.parametrize("bad", [
    # '=' and ',' change what `zfs set`/`create -o`/`zfs get` read; spaces and control characters split words
    "userquota@bob=1", "userquota@bob,quota", "quota=1", "com.example:a=b", "com.example:a,b", "userquota@bob x",
    "userquota@", "userquota@@x", "userquota@-x", "projectquota@x", "projectquota@1=2", "written@", "written@s=1",
    "written@a,b", "written#m=1", "userquota@bob\n", "written@s\t",
    # a full snapshot or bookmark name would read another dataset's data
    "written@tank/other@s", "written#tank/other#m", "written@other@s", "written@../x",
])
def test_property_names_that_would_change_meaning_or_reach_elsewhere(bad):
    with pytest.raises(InvalidArgument) as exc:
        PropertyName.parse(bad)
    assert exc.value.param == "property"


def test_parse_properties_names_the_key():
    with pytest.raises(InvalidArgument) as exc:
        parse_properties({"compression": "lz4", "Bad": "x"})
    assert exc.value.param == "properties.Bad"


def test_hold_tags():
    assert HoldTag.parse("keep me: 1").value == "keep me: 1"
    for bad in ["", "a\tb", "x" * 256]:
        with pytest.raises(InvalidArgument):
            HoldTag.parse(bad)


def test_hierarchy_helpers():
    ds = DatasetName.parse("tank/a/b")
    assert ds.parent == DatasetName("tank/a") and ds.pool == PoolName("tank") and ds.depth == 2
    assert ds.is_within(DatasetName("tank/a")) and not DatasetName("tank/ab").is_within(DatasetName("tank/a"))
