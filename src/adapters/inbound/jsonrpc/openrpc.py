"""rpc.discover: an OpenRPC 1.3 document (https://spec.open-rpc.org) generated from the registry: params and
results from their Structs' JSON schemas, the errors from each row and the error table, and one example call per
method derived from its schemas (so it cannot drift from them)."""

from __future__ import annotations

from typing import Any

import msgspec

from zfsapi.domain.authz import Action, Carries

from .errors import (
    AUTH_REQUIRED,
    INVALID_PARAMS,
    INVALID_TOKEN,
    MEANINGS,
    PERMISSION_DENIED,
    RATE_LIMITED,
    code_of,
)
from .registry import CallContext, JobStarted, Method, NoParams, Registry, Result, Table

OPENRPC_VERSION = "1.3.2"
REF = "#/components/schemas/{name}"

RPC = Table()


def error_codes(method: Method) -> list[int]:
    """The codes of the errors the method itself can return (the protocol's own apply to every method)."""
    return sorted({code_of(e) for e in method.errors}, reverse=True)


def _protocol_codes(method: Method) -> set[int]:
    return {INVALID_PARAMS, RATE_LIMITED} | (set() if method.public else {AUTH_REQUIRED, INVALID_TOKEN,
                                                                          PERMISSION_DENIED})


def _sent_always(components: dict[str, Any]) -> None:
    """A result key with a default (constants like `created: true`) is always sent: required. Only UNSET
    fields (no default in the schema) may be absent."""
    for schema in components.values():
        required = [k for k, v in schema.get("properties", {}).items()
                    if k in schema.get("required", ()) or "default" in v]
        if required:
            schema["required"] = required


# The objects every example talks about: one pool, one dataset and its snapshots, by parameter or result key.
_NAMES: dict[str, Any] = {
    "pool": "tank", "dataset": "tank/data", "snapshot": "daily", "from_snapshot": "weekly", "name": "daily",
    "snapshot1": "tank/data@weekly", "snapshot2": "tank/data@daily", "source": "tank/data@daily",
    "bookmark": "tank/data#daily", "target": "tank/data-clone", "clone": "tank/data-clone", "volume": "tank/vol",
    "new_name": "tank/data-renamed", "old_name": "tank/data", "target_dataset": "tank/restore", "tag": "keep",
    "tag1": "hourly", "property": "compression", "value": "lz4", "username": "backup",
    "password": "correct horse battery staple", "output_file": "data-daily.zfs", "input_file": "data-daily.zfs",
    "stream_id": "9b2f4c1e8d7a4b6c9e0f1a2b3c4d5e6f", "url": "/stream/9b2f4c1e8d7a4b6c9e0f1a2b3c4d5e6f",
    "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.c2lnbmF0dXJl", "sha256": "9f86d08" + "0" * 57,
    "health": "ONLINE", "state": "ONLINE", "created_at": "2026-01-31T12:00:00Z", "expires_at": "2026-01-31T12:30:00Z",
    "timestamp": "2026-01-31T12:00:00Z", "size_human": "1.0 GiB", "size_bytes": 1 << 30, "operation": "send",
    "compression": "none", "path": "/tank/data/report.txt", "old_path": "/tank/data/a", "new_path": "/tank/data/b",
    "type": "file", "function": "scrub", "errors": "No known data errors", "status": "  pool: tank\n state: ONLINE\n",
    "openrpc": OPENRPC_VERSION,
}


def _example(schema: dict[str, Any], schemas: dict[str, Any], key: str, depth: int = 0) -> Any:
    """A value that fits `schema` (a JSON schema of msgspec's), named after its key where _NAMES knows it."""
    if "$ref" in schema:
        return _example(schemas[schema["$ref"].rsplit("/", 1)[1]], schemas, key, depth)
    if "anyOf" in schema:
        return _example(next(s for s in schema["anyOf"] if s.get("type") != "null"), schemas, key, depth)
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties")
        if props is None:  # a map: {property: value}
            values = schema.get("additionalProperties", {})
            return {"compression": "lz4"} if key == "properties" and values.get("type") == "string" else {}
        return {k: _example(v, schemas, k, depth + 1) for k, v in props.items()}
    if kind == "array":
        return [] if depth >= 3 else [_example(schema.get("items", {}), schemas, key.removesuffix("s"), depth + 1)]
    named = _NAMES.get(key)
    if kind == "string":
        return named if isinstance(named, str) else key
    if kind == "integer":
        if isinstance(named, int):
            return named
        return max(1, schema.get("minimum", 1), schema.get("exclusiveMinimum", 0) + 1)
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    return None


def _example_pair(method: Method, params: dict[str, Any], result: dict[str, Any],
                  schemas: dict[str, Any]) -> dict[str, Any]:
    """One example call: the required params (a name the method reads whole as a dataset path is written in full),
    and a result whose keys echo the params where they share a name."""
    full = {name for name, carried in method.carries if carried is Carries.DATASET}
    given = {}
    for name in params.get("required", ()):
        value = _example(params["properties"][name], schemas, name)
        given[name] = f"tank/data@{value}" if name in full and isinstance(value, str) and "/" not in value else value
    answer = {k: given.get(k, v) if isinstance(v, str) else v
              for k, v in _example(result, schemas, method.name).items()}
    return {"name": f"{method.name} example", "params": [{"name": k, "value": v} for k, v in given.items()],
            "result": {"name": f"{method.name} result", "value": answer}}


def document(registry: Registry, *, title: str, version: str) -> dict[str, Any]:
    methods = sorted(registry, key=lambda m: m.name)
    params, params_components = msgspec.json.schema_components([m.params for m in methods], ref_template=REF)
    results, result_components = msgspec.json.schema_components([*(m.result for m in methods), JobStarted],
                                                                 ref_template=REF)
    # with `background: true` a call answers with its job's id instead
    *plain, job_started = results
    answers = [{"anyOf": [r, job_started]} if m.background else r for m, r in zip(methods, plain)]
    _sent_always(result_components)
    clash = sorted(k for k in set(params_components) & set(result_components)
                   if params_components[k] != result_components[k])
    if clash:
        raise ValueError(f"a params and a result Struct share the name {clash[0]}")
    out = []
    for method, ref, result, plain_result in zip(methods, params, answers, plain):
        body = params_components[ref["$ref"].rsplit("/", 1)[1]]
        required = set(body.get("required", ()))
        descriptors = []
        for name, prop in body.get("properties", {}).items():
            schema = dict(prop)
            descriptor = {"name": name, "required": name in required}
            if "description" in schema:
                descriptor["description"] = schema.pop("description")
            descriptors.append({**descriptor, "schema": schema})
        codes = sorted(_protocol_codes(method).union(error_codes(method)), reverse=True)
        out.append({
            "name": method.name,
            "summary": method.summary,
            "paramStructure": "either",
            "params": descriptors,
            "result": {"name": f"{method.name}_result", "schema": result},
            "errors": [{"code": c, "message": MEANINGS[c]} for c in codes],
            "examples": [_example_pair(method, body, result_components[plain_result["$ref"].rsplit("/", 1)[1]],
                                       {**params_components, **result_components})],
        })
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {"title": title, "version": version},
        "methods": out,
        "components": {"schemas": {**params_components, **result_components}},
    }


class OpenRpcDocument(Result, frozen=True, kw_only=True):
    openrpc: str
    info: dict[str, str]
    methods: list[dict[str, Any]]
    components: dict[str, Any]


class Discovery:
    """This API's OpenRPC description."""

    def __init__(self, registry: Registry, *, title: str, version: str) -> None:
        self._registry, self._title, self._version = registry, title, version
        self._document: OpenRpcDocument | None = None

    async def execute(self) -> OpenRpcDocument:
        if self._document is None:  # built on first use: every method is registered by then
            self._document = msgspec.convert(document(self._registry, title=self._title, version=self._version),
                                             OpenRpcDocument)
        return self._document


@RPC.method(Action.READ, public=True, name="rpc.discover")
async def rpc_discover(uc: Discovery, p: NoParams, ctx: CallContext) -> OpenRpcDocument:
    return await uc.execute()


def register_discover(registry: Registry, *, title: str, version: str) -> None:
    discovery = Discovery(registry, title=title, version=version)
    registry.include(RPC, {Discovery: discovery}.__getitem__)
