"""rpc.discover: an OpenRPC 1.3 document generated from the registry and the params Structs' schemas."""

from __future__ import annotations

from typing import Any

import msgspec

from zfsapi.domain.authz import Action

from .registry import CallContext, NoParams, Registry

OPENRPC_VERSION = "1.3.2"


def document(registry: Registry, *, title: str, version: str) -> dict[str, Any]:
    methods = sorted(registry, key=lambda m: m.name)
    (schemas, components) = msgspec.json.schema_components(
        [m.params for m in methods], ref_template="#/components/schemas/{name}"
    )
    out = []
    for method, schema in zip(methods, schemas):
        ref = schema["$ref"].rsplit("/", 1)[1]
        body = components.get(ref, {})
        required = set(body.get("required", []))
        params = [
            {"name": name, "required": name in required, "schema": prop}
            for name, prop in body.get("properties", {}).items()
        ]
        out.append({
            "name": method.name,
            "summary": method.summary,
            "paramStructure": "either",
            "params": params,
            "result": {
                "name": f"{method.name}_result",
                "schema": {"type": "object", "required": [k for k in method.result if not k.startswith("already_")],
                           "properties": {k: {} for k in method.result}},
            },
        })
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {"title": title, "version": version},
        "methods": out,
        "components": {"schemas": {k: v for k, v in components.items()}},
    }


def register_discover(registry: Registry, *, title: str, version: str) -> None:
    cache: dict[str, Any] = {}

    async def discover(p: NoParams, ctx: CallContext) -> dict[str, Any]:
        if not cache:
            cache.update(document(registry, title=title, version=version))
        return cache

    registry.add("rpc.discover", NoParams, discover, summary="This API's OpenRPC description.",
                 result=("openrpc", "info", "methods", "components"), action=Action.READ, public=True)
