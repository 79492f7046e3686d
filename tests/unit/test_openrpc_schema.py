"""rpc.discover is a valid OpenRPC document (by the OpenRPC meta-schema, vendored in tests/unit/data/openrpc), and
every method's example fits its own params and result schemas and is accepted by its params Struct."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import msgspec
from referencing import Registry
from referencing.jsonschema import DRAFT7

from tests.conftest import http_client
from zfsapi.bootstrap.lifecycle import http_app

DATA = Path(__file__).parent / "data" / "openrpc"


def meta_validator() -> jsonschema.Draft7Validator:
    meta = json.loads((DATA / "openrpc-meta-schema.json").read_text())
    # the published meta-schema lists open-rpc/spec's releases here; the repository's copy holds a placeholder
    assert meta["properties"]["openrpc"]["enum"][0].startswith("GENERATED FIELD")
    meta["properties"]["openrpc"] = {"type": "string", "pattern": r"^1\.[0-9]+\.[0-9]+$"}
    json_schema = DRAFT7.create_resource(json.loads((DATA / "json-schema-meta-schema.json").read_text()))
    registry = Registry().with_resources([("https://meta.json-schema.tools", json_schema),
                                          ("https://meta.json-schema.tools/", json_schema)])
    return jsonschema.Draft7Validator(meta, registry=registry)


async def test_rpc_discover_is_a_valid_openrpc_document(container):
    async with http_client(http_app(container)) as c:
        doc = (await c.post("/", json={"jsonrpc": "2.0", "method": "rpc.discover", "id": 1})).json()["result"]
    errors = sorted(meta_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert [f"{list(e.absolute_path)}: {e.message}" for e in errors] == []
    assert len(doc["methods"]) >= 39 and all(len(m["examples"]) == 1 for m in doc["methods"])


async def test_every_example_fits_its_method(container):
    app = http_app(container)
    async with http_client(app) as c:
        doc = (await c.post("/", json={"jsonrpc": "2.0", "method": "rpc.discover", "id": 1})).json()["result"]
    registry = app.state["registry"]

    def fits(value, schema) -> list[str]:
        validator = jsonschema.Draft7Validator({"allOf": [schema], "components": doc["components"]})
        return [e.message for e in validator.iter_errors(value)]

    for method in doc["methods"]:
        example = method["examples"][0]
        given = {p["name"]: p["value"] for p in example["params"]}
        declared = {p["name"]: p for p in method["params"]}
        assert {n for n, p in declared.items() if p["required"]} <= set(given), method["name"]
        for name, value in given.items():
            assert fits(value, declared[name]["schema"]) == [], (method["name"], name)
        msgspec.convert(given, registry.get(method["name"]).params, strict=True)  # the edge takes it as is
        assert fits(example["result"]["value"], method["result"]["schema"]) == [], method["name"]


def test_the_vendored_meta_schema_refuses_a_broken_document():
    validator = meta_validator()
    good = {"openrpc": "1.3.2", "info": {"title": "t", "version": "1"}, "methods": []}
    assert list(validator.iter_errors(good)) == []
    bad = {**good, "methods": [{"name": "m", "params": [{"name": "p"}], "result": {"name": "r", "schema": {}}}]}
    errors = list(validator.iter_errors(bad))  # a content descriptor without its schema
    assert [list(e.absolute_path) for e in errors] == [["methods", 0]]
    assert "is not valid under any of the given schemas" in errors[0].message
