"""Hostile input through the whole HTTP stack (FakeZfs behind it): every bad name, number or property is a -32602
that names the parameter, and nothing reaches ZFS. (Hosts, Origins and nesting: test_http.py; names:
test_names.py.)"""

from __future__ import annotations

import pytest


def _named(error: dict, param: str) -> None:
    assert error["code"] == -32602, error
    assert error["data"]["param"] == param, error


@pytest.mark.parametrize("params, param", [
    ({"dataset": "tank/v", "size_gb": 1e308}, "size_gb"),
    ({"dataset": "tank/v", "size_gb": 8589934592.5}, "size_gb"),  # just past 2**63 - 1 bytes
    ({"dataset": "tank/v", "size_bytes": 2**63}, "size_bytes"),
    ({"dataset": "tank/v", "size_bytes": 2**64 + 1}, "size_bytes"),
    ({"dataset": "tank/v", "size_gb": -1}, "size_gb"),
    ({"dataset": "tank/v", "size_gb": 0}, "size_gb"),
])
async def test_numbers_out_of_range_name_the_parameter(rpc, fake_zfs, params, param):
    _named(await rpc("volume_create", error=True, **params), param)
    assert "tank/v" not in fake_zfs.datasets


async def test_stream_ttl_out_of_range_names_the_parameter(rpc):
    for ttl in (1e300, -5, 0):
        _named(await rpc("stream_init", error=True, operation="receive", target_dataset="tank/x", ttl=ttl), "ttl")


@pytest.mark.parametrize("prop", ["quota=1G", "userquota@bob=1", "com.example:a=b", "compression,quota",
                                  "userquota@bob quota", "written@tank/other@s", "written#tank/other#m"])
async def test_property_names_with_syntax_never_reach_zfs(rpc, fake_zfs, prop):
    before = {k: dict(v.props) for k, v in fake_zfs.datasets.items()}
    _named(await rpc("dataset_set_property", error=True, dataset="tank", property=prop, value="1"), "property")
    _named(await rpc("dataset_get_properties", error=True, dataset="tank", property=prop), "property")
    error = await rpc("dataset_create", error=True, dataset="tank/new", properties={prop: "1"})
    _named(error, f"properties.{prop}")  # the map and its offending key
    error = await rpc("clone_create", error=True, source="tank@s", target="tank/c", properties={prop: "1"})
    _named(error, f"properties.{prop}")
    assert {k: dict(v.props) for k, v in fake_zfs.datasets.items()} == before
    assert "tank/new" not in fake_zfs.datasets
