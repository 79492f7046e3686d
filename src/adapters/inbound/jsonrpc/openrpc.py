"""rpc.discover: an OpenRPC 1.3 document (https://spec.open-rpc.org) generated from the registry: params and
results from their Structs' JSON schemas, the errors from each row and the error table."""

from __future__ import annotations

from typing import Any

import msgspec

from zfsapi.domain.authz import Action

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
    for method, ref, result in zip(methods, params, answers):
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
