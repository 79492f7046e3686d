"""JSON-RPC 2.0 envelope vectors: the spec's section 7 examples and the edge cases around them."""

from __future__ import annotations

import json

import pytest

from tests.conftest import http_client
from zfsapi import __version__
from zfsapi.adapters.inbound.jsonrpc.openrpc import document
from zfsapi.bootstrap.lifecycle import http_app


async def post(client, payload, raw: bool = False):
    body = payload if raw else json.dumps(payload)
    return await client.post("/", content=body, headers={"Content-Type": "application/json"})


def err(code, id_=None):
    return {"code": code, "id": id_}


# (request, expected): expected is None (no response body, 204), a dict {code|result, id}, or a list of them
VECTORS = [
    # spec 7: rpc call with named and positional parameters
    ({"jsonrpc": "2.0", "method": "pool_list", "params": {}, "id": 1}, {"result": True, "id": 1}),
    ({"jsonrpc": "2.0", "method": "pool_list", "params": [], "id": 2}, {"result": True, "id": 2}),
    ({"jsonrpc": "2.0", "method": "pool_list", "id": 3}, {"result": True, "id": 3}),
    # ids: string, zero, negative, float, null, large
    ({"jsonrpc": "2.0", "method": "pool_list", "id": "abc"}, {"result": True, "id": "abc"}),
    ({"jsonrpc": "2.0", "method": "pool_list", "id": 0}, {"result": True, "id": 0}),
    ({"jsonrpc": "2.0", "method": "pool_list", "id": -7}, {"result": True, "id": -7}),
    ({"jsonrpc": "2.0", "method": "pool_list", "id": 1.5}, {"result": True, "id": 1.5}),
    ({"jsonrpc": "2.0", "method": "pool_list", "id": None}, {"result": True, "id": None}),
    ({"jsonrpc": "2.0", "method": "pool_list", "id": 2**62}, {"result": True, "id": 2**62}),
    ({"jsonrpc": "2.0", "method": "pool_list", "id": ""}, {"result": True, "id": ""}),
    # invalid ids
    ({"jsonrpc": "2.0", "method": "pool_list", "id": True}, err(-32600)),
    ({"jsonrpc": "2.0", "method": "pool_list", "id": [1]}, err(-32600)),
    ({"jsonrpc": "2.0", "method": "pool_list", "id": {"a": 1}}, err(-32600)),
    # spec 7: notifications
    ({"jsonrpc": "2.0", "method": "pool_list", "params": {}}, None),
    ({"jsonrpc": "2.0", "method": "no_such_method"}, None),
    ({"jsonrpc": "2.0", "method": "dataset_create", "params": {"dataset": 5}}, None),
    # spec 7: non-existent method
    ({"jsonrpc": "2.0", "method": "foobar", "id": "1"}, err(-32601, "1")),
    ({"jsonrpc": "2.0", "method": "rpc.foobar", "id": 4}, err(-32601, 4)),
    # spec 7: invalid request objects
    ({"jsonrpc": "2.0", "method": 1, "params": "bar"}, err(-32600)),
    ({"jsonrpc": "1.0", "method": "pool_list", "id": 5}, err(-32600, 5)),
    ({"method": "pool_list", "id": 6}, err(-32600, 6)),
    ({"jsonrpc": "2.0", "id": 7}, err(-32600, 7)),
    ({"jsonrpc": "2.0", "method": "pool_list", "params": "x", "id": 8}, err(-32600, 8)),
    ({"jsonrpc": "2.0", "method": "pool_list", "params": None, "id": 9}, err(-32600, 9)),
    ({"jsonrpc": "2.0", "method": "pool_list", "params": 3, "id": 10}, err(-32600, 10)),
    ({"jsonrpc": 2.0, "method": "pool_list", "id": 11}, err(-32600, 11)),
    (1, err(-32600)),
    ("pool_list", err(-32600)),
    (None, err(-32600)),
    # spec 7: batches
    ([], err(-32600)),
    ([1], [err(-32600)]),
    ([1, 2, 3], [err(-32600), err(-32600), err(-32600)]),
    ([{"jsonrpc": "2.0", "method": "pool_list"}, {"jsonrpc": "2.0", "method": "pool_list"}], None),
    ([{"jsonrpc": "2.0", "method": "pool_list", "id": "a"}, {"jsonrpc": "2.0", "method": "pool_list"},
      {"jsonrpc": "2.0", "method": "nope", "id": "b"}, {"foo": "boo"}],
     [{"result": True, "id": "a"}, err(-32601, "b"), err(-32600)]),
    ([{"jsonrpc": "2.0", "method": "pool_list", "id": 1}, {"jsonrpc": "2.0", "method": "nope"}],
     [{"result": True, "id": 1}]),
    # params: unknown, wrong types, missing, string booleans, too many positional
    ({"jsonrpc": "2.0", "method": "pool_list", "params": {"x": 1}, "id": 12}, err(-32602, 12)),
    ({"jsonrpc": "2.0", "method": "dataset_create", "params": {}, "id": 13}, err(-32602, 13)),
    ({"jsonrpc": "2.0", "method": "dataset_create", "params": {"dataset": 5}, "id": 14}, err(-32602, 14)),
    ({"jsonrpc": "2.0", "method": "dataset_destroy", "params": {"dataset": "tank/a", "recursive": "false"},
      "id": 15}, err(-32602, 15)),
    ({"jsonrpc": "2.0", "method": "dataset_destroy", "params": {"dataset": "tank/a", "recursive": 0}, "id": 16},
     err(-32602, 16)),
    ({"jsonrpc": "2.0", "method": "pool_list", "params": [1], "id": 17}, err(-32602, 17)),
    ({"jsonrpc": "2.0", "method": "dataset_list", "params": {"type": "snapshot"}, "id": 18}, err(-32602, 18)),
    ({"jsonrpc": "2.0", "method": "dataset_create", "params": {"dataset": "tank/a", "properties": {"x": 1}},
      "id": 19}, err(-32602, 19)),
    # positional params in declared order
    ({"jsonrpc": "2.0", "method": "dataset_create", "params": ["tank/pos"], "id": 20}, {"result": True, "id": 20}),
    ({"jsonrpc": "2.0", "method": "dataset_get_properties", "params": ["tank", "type"], "id": 21},
     {"result": True, "id": 21}),
    # semantic validation names the parameter
    ({"jsonrpc": "2.0", "method": "dataset_create", "params": {"dataset": "tank/a@b"}, "id": 22}, err(-32602, 22)),
    ({"jsonrpc": "2.0", "method": "dataset_create", "params": {"dataset": "-o"}, "id": 23}, err(-32602, 23)),
    # rpc.discover
    ({"jsonrpc": "2.0", "method": "rpc.discover", "id": 24}, {"result": True, "id": 24}),
]


def check(answer, expected):
    if "result" in expected:
        assert "result" in answer and "error" not in answer, answer
    else:
        assert answer["error"]["code"] == expected["code"], answer
        assert isinstance(answer["error"].get("data", {}), dict)
        assert isinstance(answer["error"]["message"], str) and answer["error"]["message"]
    assert answer["id"] == expected["id"]
    assert answer["jsonrpc"] == "2.0"


@pytest.mark.parametrize("request_, expected", VECTORS, ids=[str(i) for i in range(len(VECTORS))])
async def test_vector(client, request_, expected):
    r = await post(client, request_)
    if expected is None:
        assert r.status_code == 204
        assert r.content == b""
        return
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    answer = r.json()
    if isinstance(expected, list):
        assert isinstance(answer, list) and len(answer) == len(expected)
        # batch answers may come in any order: match results by id, errors by code
        for exp in expected:
            match = [a for a in answer if a["id"] == exp["id"] and ("result" in a) == ("result" in exp)
                     and ("result" in exp or a["error"]["code"] == exp["code"])]
            assert match, (exp, answer)
            check(match[0], exp)
    else:
        assert isinstance(answer, dict)
        check(answer, expected)


async def test_parse_error(client):
    r = await post(client, b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]', raw=True)
    assert r.json() == {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}


async def test_parse_error_in_batch(client):
    r = await post(client, b'[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},{"jsonrpc": "2.0", '
                           b'"method"]', raw=True)
    assert r.json()["error"]["code"] == -32700


async def test_params_errors_name_the_parameter(client):
    cases = [
        ({"dataset": "tank/a", "recursive": "false"}, "dataset_destroy", "recursive"),
        ({}, "dataset_create", "dataset"),
        ({"dataset": "tank/a", "bogus": 1}, "dataset_create", "bogus"),
        ({"dataset": "tank/a", "properties": {"k:v": 3}}, "dataset_create", "properties"),
        ({"dataset": "tank/a b@c"}, "dataset_create", "dataset"),
        ({"dataset": "tank", "name": "a/b"}, "snapshot_create", "name"),
        ({"dataset": "tank", "property": "Bad Name", "value": "x"}, "dataset_set_property", "property"),
        ({"dataset": "tank", "property": "com.x:y", "value": "a\tb"}, "dataset_set_property", "value"),
        ({"dataset": "tank", "properties": {"compression": "lz4", "Nope": "x"}}, "dataset_create", "properties.Nope"),
    ]
    for params, method, param in cases:
        r = await post(client, {"jsonrpc": "2.0", "method": method, "params": params, "id": 1})
        error = r.json()["error"]
        assert error["code"] == -32602, (method, params, error)
        assert error["data"]["param"] == param, (method, params, error)
        assert error["data"]["reason"]


async def test_batch_cap(container):
    app = http_app(container)
    async with http_client(app) as c:
        batch = [{"jsonrpc": "2.0", "method": "pool_list", "id": i} for i in range(101)]
        r = await post(c, batch)
        assert r.json()["error"]["code"] == -32600
        r = await post(c, batch[:100])
        assert len(r.json()) == 100


async def test_discover_describes_every_method(client, container):
    r = await post(client, {"jsonrpc": "2.0", "method": "rpc.discover", "id": 1})
    doc = r.json()["result"]
    assert doc == document(http_app(container).state["registry"], title="zfsapi", version=__version__)
    assert doc["openrpc"].startswith("1.")
    names = {m["name"] for m in doc["methods"]}
    assert {"dataset_create", "snapshot_diff", "pool_status", "bookmark_destroy", "volume_list"} <= names
    create = next(m for m in doc["methods"] if m["name"] == "dataset_create")
    params = {p["name"]: p for p in create["params"]}
    assert params["dataset"]["required"] and not params["parents"]["required"]
    assert params["parents"]["schema"]["type"] == "boolean"
