"""The method rows and what is derived from them: the permission policy reads each row's declared params,
rpc.discover describes the result Structs, the container builds each row's use case from its ports."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import get_type_hints

import msgspec
import pytest
from dependency_injector import providers
from zfsapi.adapters.inbound.jsonrpc.access import require_permission
from zfsapi.adapters.inbound.jsonrpc.auth_methods import AUTH
from zfsapi.adapters.inbound.jsonrpc.errors import code_of, to_rpc_error
from zfsapi.adapters.inbound.jsonrpc import methods as core_methods
from zfsapi.adapters.inbound.jsonrpc.dataset_methods import DatasetCreateResult
from zfsapi.adapters.inbound.jsonrpc.method_common import DatasetOnly
from zfsapi.adapters.inbound.jsonrpc.methods import CORE
from zfsapi.adapters.inbound.jsonrpc.openrpc import RPC, document
from zfsapi.adapters.inbound.jsonrpc.registry import CallContext, Method, Table
from zfsapi.adapters.inbound.jsonrpc.transfer_methods import TRANSFERS
from zfsapi.application.auth import Login
from zfsapi.application.catalog import UseCases
from zfsapi.application.datasets import CreateDataset, ListDatasets
from zfsapi.application.ports import Clock, Snapshots
from zfsapi.application.snapshots import CreateAutoSnapshot
from zfsapi.application.transfers import StreamService
from zfsapi.bootstrap.containers import wired
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.domain import errors as domain_errors
from zfsapi.domain.authz import Action, Carries, Principal, Role
from zfsapi.domain.errors import PermissionDenied

ROWS = [*CORE, *TRANSFERS, *AUTH, *RPC]
NAMES = (Carries.DATASET, Carries.SNAPSHOT, Carries.POOL)
# a scope of one dataset subtree and one whole pool; a name inside it and one outside, per kind
SCOPE = ("tank/a", "tank2")
INSIDE = {Carries.DATASET: "tank/a/x", Carries.SNAPSHOT: "tank/a/x@s", Carries.POOL: "tank2"}
OUTSIDE = {Carries.DATASET: "tank/b", Carries.SNAPSHOT: "tank/b@s", Carries.POOL: "other"}


@pytest.fixture
def registry(container):
    return http_app(container).state["registry"]


def methods(registry, kinds) -> list[tuple[str, str, Carries]]:
    """(method, param, kind) for every registered param of these kinds."""
    return [(m.name, field, kind) for m in registry for field, kind in m.carries if kind in kinds]


def params_of(method: Method, **values) -> msgspec.Struct:
    """The method's params: `values`, declared name params inside the scope, other required fields filled in."""
    info = msgspec.inspect.type_info(method.params)
    raw = {}
    for f in info.fields:
        kind = dict(method.carries).get(f.name)
        if kind in INSIDE:
            raw[f.name] = INSIDE[kind]
        elif f.required:
            t = f.type.type if isinstance(f.type, msgspec.inspect.Metadata) else f.type
            raw[f.name] = t.values[0] if isinstance(t, msgspec.inspect.LiteralType) else "x"
    return msgspec.convert({**raw, **values}, method.params)


def context(role: Role, prefixes: tuple[str, ...] = ()) -> CallContext:
    return CallContext("r", "192.0.2.1", Principal("u", role, prefixes))


def test_rows_declare_only_params_their_struct_has():
    for row in ROWS:
        assert set(dict(row.carries)) <= set(row.params.__struct_fields__), row.name


def test_a_row_naming_a_missing_param_is_refused_at_declaration():
    table = Table()
    with pytest.raises(ValueError, match="datasett"):
        @table.method(Action.READ, carries={"datasett": Carries.DATASET})
        async def typo(uc: CreateDataset, p: DatasetOnly, ctx: CallContext) -> DatasetCreateResult:
            raise AssertionError
    assert table.rows == []


def test_a_core_methods_params_result_and_handler_are_declared_in_its_feature_module():
    shared = {"zfsapi.adapters.inbound.jsonrpc.method_common", "zfsapi.adapters.inbound.jsonrpc.registry"}
    for row in CORE:
        home = row.handler.__module__
        assert home.endswith("_methods") and home != core_methods.__name__, row.name
        assert {row.params.__module__, row.result.__module__} <= {home, *shared}, row.name


def test_a_joined_table_keeps_its_parts_rows_in_order_with_their_own_errors():
    first, second = Table(errors=(PermissionDenied,)), Table()

    @first.method(Action.READ)
    async def one(uc: CreateDataset, p: DatasetOnly, ctx: CallContext) -> DatasetCreateResult:
        """One."""
        raise AssertionError

    @second.method(Action.READ)
    async def two(uc: CreateDataset, p: DatasetOnly, ctx: CallContext) -> DatasetCreateResult:
        """Two."""
        raise AssertionError

    joined = Table.joined(second, first)
    assert [(r.name, r.errors) for r in joined] == [("two", ()), ("one", (PermissionDenied,))]


def test_params_named_like_names_are_declared():
    """A safety net for new rows: a param called like a name must say what it carries."""
    name_like = {"dataset", "target", "new_name", "source", "snapshot", "snapshot1", "snapshot2", "bookmark",
                 "pool", "from_snapshot", "target_dataset"}
    for row in ROWS:
        missing = (name_like & set(row.params.__struct_fields__)) - set(dict(row.carries))
        assert not missing, (row.name, missing)


async def test_a_scoped_principal_may_use_names_inside_its_scope(registry):
    cases = {m for m, _, _ in methods(registry, NAMES)}
    assert {"dataset_create", "snapshot_diff", "pool_scrub_start", "stream_init", "send_estimate", "send_to_file",
            "receive_from_file", "receive_abort"} <= cases
    for name in cases:
        method = registry.get(name)
        assert await require_permission(method, params_of(method), context(Role.ADMIN, SCOPE)) is None, name


async def test_a_scoped_principal_is_refused_each_declared_name_outside_its_scope(registry):
    cases = methods(registry, NAMES)
    assert len(cases) >= 49
    transfers = {(m, f) for m, f, _ in cases if m in {row.name for row in TRANSFERS}}
    sends = {(m, f) for m in ("send_estimate", "send_to_file", "stream_init")
             for f in ("dataset", "snapshot", "from_snapshot")}
    assert transfers == sends | {("receive_from_file", "dataset"), ("receive_abort", "dataset"),
                                 ("stream_init", "target_dataset")}
    for name, field, kind in cases:
        method = registry.get(name)
        with pytest.raises(PermissionDenied) as exc:
            await require_permission(method, params_of(method, **{field: OUTSIDE[kind]}),
                                     context(Role.ADMIN, SCOPE))
        assert (exc.value.method, exc.value.dataset) == (name, OUTSIDE[kind]), (name, field)
        assert to_rpc_error(exc.value, name).code == -32004


async def test_an_operator_is_refused_protected_properties_in_each_declared_param(registry):
    cases = methods(registry, (Carries.PROPERTY, Carries.PROPERTIES))
    assert {(m, f) for m, f, _ in cases} == {("dataset_create", "properties"), ("clone_create", "properties"),
                                             ("snapshot_create", "properties"), ("dataset_set_property", "property")}
    for name, field, kind in cases:
        method = registry.get(name)
        value = {"sharenfs": "on"} if kind is Carries.PROPERTIES else "sharenfs"
        with pytest.raises(PermissionDenied, match="sharenfs"):
            await require_permission(method, params_of(method, **{field: value}), context(Role.OPERATOR))
        harmless = {"compression": "lz4"} if kind is Carries.PROPERTIES else "compression"
        await require_permission(method, params_of(method, **{field: harmless}), context(Role.OPERATOR))


async def test_an_operator_is_refused_a_forced_receive(registry):
    cases = methods(registry, (Carries.FORCE,))
    assert {m for m, _, _ in cases} == {"receive_from_file", "stream_init"}
    for name, field, _ in cases:
        method = registry.get(name)
        with pytest.raises(PermissionDenied, match="force"):
            await require_permission(method, params_of(method, **{field: True}), context(Role.OPERATOR))
        await require_permission(method, params_of(method, **{field: False}), context(Role.OPERATOR))


def _raises_section(doc: str | None) -> set[str]:
    section = (doc or "").partition("Raises:")[2]
    return {w for w in re.findall(r"\b[A-Z]\w+", section) if isinstance(getattr(domain_errors, w, None), type)}


def test_row_errors_are_the_ones_their_use_case_documents():
    """The handler's Raises section when it has one (rows sharing a use case, like StreamService's), else the
    use case's."""
    always = {"ZfsCommandFailed", "ZfsUnavailable"}  # what every method that runs zfs can return
    for row in ROWS:
        declared = {e.__name__ for e in row.errors} - always
        documented = _raises_section(row.handler.__doc__) or _raises_section(row.use_case.__doc__)
        assert declared == documented - always, row.name


def test_rows_that_run_zfs_declare_its_own_failures():
    quiet = {"stream_list", "stream_cancel", "auth_login", "auth_logout", "rpc.discover"}
    for row in ROWS:
        zfs_errors = {"ZfsCommandFailed", "ZfsUnavailable"} <= {e.__name__ for e in row.errors}
        assert zfs_errors is (row.name not in quiet), row.name


def test_openrpc_results_are_the_result_structs(registry):
    doc = document(registry, title="t", version="v")
    schemas = doc["components"]["schemas"]
    by_name = {m["name"]: m for m in doc["methods"]}
    for row in ROWS:
        answer = by_name[row.name]["result"]["schema"]
        if row.background:  # the result, or the job running it
            assert answer["anyOf"][1] == {"$ref": "#/components/schemas/JobStarted"}, row.name
            answer = answer["anyOf"][0]
        ref = answer["$ref"]
        schema = schemas[ref.rsplit("/", 1)[1]]
        fields = msgspec.structs.fields(row.result)
        assert list(schema["properties"]) == [f.encode_name for f in fields], row.name
        assert all(schema["properties"].values()), row.name  # every key typed
        assert schema.get("required", []) == [f.encode_name for f in fields if f.default is not msgspec.UNSET]
    mount = schemas["MountResult"]
    assert mount["required"] == ["dataset", "mounted"] and mount["properties"]["mounted"] == {"enum": [True],
                                                                                              "default": True}
    detail = schemas["SnapshotDetail"]
    assert detail["required"] == ["name", "guid", "createtxg"] and detail["properties"]["guid"] == {"type": "integer"}
    assert schemas["VdevNode"]["properties"]["children"] == {"type": "array",
                                                             "items": {"$ref": "#/components/schemas/VdevNode"}}


def test_openrpc_describes_params_and_errors(registry):
    doc = document(registry, title="t", version="v")
    by_name = {m["name"]: m for m in doc["methods"]}
    for row in ROWS:
        method = by_name[row.name]
        assert [p["name"] for p in method["params"]] == list(row.params.__struct_fields__)
        for p in method["params"]:
            assert p["description"] and "description" not in p["schema"], (row.name, p)
        codes = [e["code"] for e in method["errors"]]
        assert {code_of(e) for e in row.errors} | {-32602, -32000} <= set(codes), row.name
        assert (-32004 in codes) is not row.public
        assert all(e["message"] for e in method["errors"])
    assert [e["code"] for e in by_name["snapshot_rollback"]["errors"]] == [
        -32000, -32001, -32002, -32004, -32010, -32012, -32013, -32014, -32015, -32602]


def test_the_container_builds_each_use_case_from_its_port_annotations(container, fake_zfs):
    uc = container.use_cases()
    assert set(uc) == {row.name for row in (*CORE, *TRANSFERS)} | {"pool_overview"}
    assert uc.stream_init is uc.stream_list is uc.stream_cancel is uc[StreamService]  # the HTTP routes' too
    assert uc.stream_init._sessions is container.stream_sessions() and uc.send_to_file._t is fake_zfs
    assert uc.dataset_list is uc.volume_list is uc[ListDatasets]  # one instance per class
    assert uc.snapshot_create_auto._snapshots is fake_zfs
    assert uc.snapshot_create_auto._clock is container.clock()
    with pytest.raises(AttributeError, match="no_such"):
        uc.no_such


def test_wired_fills_constructor_params_by_port_type(fake_zfs):
    built = wired(CreateAutoSnapshot, {Snapshots: providers.Object(fake_zfs), Clock: providers.Object("clock")})()
    assert (built._snapshots, built._clock) == (fake_zfs, "clock")
    with pytest.raises(TypeError, match="clock: .*Clock"):
        wired(CreateAutoSnapshot, {Snapshots: providers.Object(fake_zfs)})


def test_use_cases_by_class_are_typed_and_checked(container):
    listing = ListDatasets(None)  # type: ignore[arg-type]
    uc = replace(container.use_cases(), dataset_list=listing, volume_list=listing)
    assert uc[ListDatasets] is listing and uc.dataset_list is listing
    with pytest.raises(KeyError):
        uc[Login]


def test_every_method_row_has_a_typed_use_case_of_its_class():
    hints = get_type_hints(UseCases)
    assert {row.name: hints[row.name] for row in (*CORE, *TRANSFERS)} == {
        row.name: row.use_case for row in (*CORE, *TRANSFERS)}


def test_wired_takes_settings_by_name_and_refuses_names_the_class_lacks(fake_zfs):
    built = wired(CreateAutoSnapshot, {Snapshots: providers.Object(fake_zfs)}, clock=providers.Object("given"))()
    assert (built._snapshots, built._clock) == (fake_zfs, "given")
    with pytest.raises(TypeError, match="no parameter retries"):
        wired(CreateAutoSnapshot, {Snapshots: providers.Object(fake_zfs), Clock: providers.Object("c")}, retries=1)
