"""Concurrent get_space calls share one `zfs list` child; each waiter gets what a single call would."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from zfsapi.adapters.outbound.zfs import commands, parsers
from zfsapi.adapters.outbound.zfs.executor import Completed
from zfsapi.adapters.outbound.zfs.gateway import ZfsCliGateway
from zfsapi.domain.errors import NotFound, ZfsUnavailable
from zfsapi.domain.models import PropertyEntry
from zfsapi.domain.names import DatasetName, PropertyName, SnapshotName

MISSING = "tank/missing"


class FakeExecutor:
    """Answers `zfs list ... names`: a row per existing name, `cannot open` on stderr for a missing one."""

    def __init__(self, stderr_extra: str = "") -> None:
        self.children: list[list[str]] = []
        self.extra = stderr_extra

    async def read(self, argv: list[str]) -> Completed:
        self.children.append(argv)
        await asyncio.sleep(0)
        names = argv[6:]
        out = "".join(f"{n}\t1\t2\t3\t4\t5\t6\n" for n in names if n != MISSING)
        err = "".join(f"cannot open '{n}': dataset does not exist\n" for n in names if n == MISSING) + self.extra
        return Completed(argv, 1 if err else 0, out.encode(), err)


def gateway(fake: FakeExecutor) -> ZfsCliGateway:
    return ZfsCliGateway(fake)  # type: ignore[arg-type]


async def test_one_call_keeps_the_single_argv() -> None:
    fake = FakeExecutor()
    space = await gateway(fake).get_space(DatasetName("tank/a"))
    assert fake.children == [commands.space(DatasetName("tank/a"))]
    assert space.name == "tank/a"


async def test_fifty_concurrent_calls_run_one_child() -> None:
    fake = FakeExecutor()
    names = [f"tank/d{i}" for i in range(50)] + ["tank/d3"]
    gw = gateway(fake)
    spaces = await asyncio.gather(*(gw.get_space(DatasetName(n)) for n in names))
    assert len(fake.children) == 1
    assert [s.name for s in spaces] == names


async def test_a_missing_one_gets_the_single_calls_error_the_rest_succeed() -> None:
    fake = FakeExecutor()
    gw = gateway(fake)
    got: list[Any] = await asyncio.gather(
        gw.get_space(DatasetName("tank/a")), gw.get_space(DatasetName(MISSING)), gw.get_space(DatasetName("tank/b")),
        return_exceptions=True,
    )
    assert len(fake.children) == 1
    assert [got[0].name, got[2].name] == ["tank/a", "tank/b"]
    single = await fake.read(commands.space(DatasetName(MISSING)))
    expected = parsers.classify(single, name=MISSING)
    assert isinstance(got[1], NotFound)
    assert (str(got[1]), vars(got[1])) == (str(expected), vars(expected))


async def test_an_unnamed_failure_reaches_every_waiter_without_a_row() -> None:
    fake = FakeExecutor("The ZFS modules are not loaded.\n")
    gw = gateway(fake)
    got = await asyncio.gather(*(gw.get_space(DatasetName(n)) for n in ("tank/a", MISSING)), return_exceptions=True)
    assert got[0].name == "tank/a"  # type: ignore[union-attr]
    assert isinstance(got[1], NotFound)

    class Empty(FakeExecutor):
        async def read(self, argv: list[str]) -> Completed:
            self.children.append(argv)
            return Completed(argv, 1, b"", "The ZFS modules are not loaded.\n")

    gw2 = gateway(Empty())
    errs = await asyncio.gather(*(gw2.get_space(DatasetName(n)) for n in ("tank/a", "tank/b")), return_exceptions=True)
    assert all(isinstance(e, ZfsUnavailable) for e in errs)


@pytest.mark.parametrize("count", [450])
async def test_many_names_split_into_bounded_children(count: int) -> None:
    fake = FakeExecutor()
    gw = gateway(fake)
    spaces = await asyncio.gather(*(gw.get_space(DatasetName(f"tank/d{i}")) for i in range(count)))
    assert len(spaces) == count and len(fake.children) == 3


async def test_a_json_rpc_batch_runs_one_child_and_fails_only_the_missing_entry() -> None:
    import msgspec
    from dependency_injector import providers

    from tests.conftest import http_client
    from zfsapi.adapters.inbound.http.peer import Peer
    from zfsapi.bootstrap import build_container, load_settings
    from zfsapi.bootstrap.lifecycle import http_app

    fake = FakeExecutor()
    container = build_container(load_settings(environ={}, overrides={}))
    container.local_peer.override(providers.Object(lambda scope: Peer(0, "tcp")))
    container.zfs.override(providers.Object(gateway(fake)))
    app = http_app(container)
    names = [f"tank/d{i}" for i in range(10)] + [MISSING]
    body = msgspec.json.encode([
        {"jsonrpc": "2.0", "method": "dataset_get_space", "params": {"dataset": n}, "id": i}
        for i, n in enumerate(names)])
    async with http_client(app) as client:
        answer = await client.post("/", content=body, headers={"content-type": "application/json"})
    replies = {r["id"]: r for r in msgspec.json.decode(answer.content)}
    assert answer.status_code == 200 and len(fake.children) == 1
    assert [replies[i]["result"]["dataset"] for i in range(10)] == names[:10]
    assert replies[10]["error"]["code"] == -32010


class FakeGet:
    """Answers `zfs get -H -p -o [name,]property,value,source <prop> names`: one row per existing name."""

    def __init__(self) -> None:
        self.children: list[list[str]] = []

    async def read(self, argv: list[str]) -> Completed:
        self.children.append(argv)
        await asyncio.sleep(0)
        named, prop, names = argv[5].startswith("name,"), argv[6], argv[7:]
        out = "".join(("%s\t" % n if named else "") + f"{prop}\tlz4\tlocal\n" for n in names if n != MISSING)
        err = "".join(f"cannot open '{n}': dataset does not exist\n" for n in names if n == MISSING)
        return Completed(argv, 1 if err else 0, out.encode(), err)


async def test_properties_one_call_keeps_the_single_argv_and_a_batch_runs_one_child() -> None:
    fake = FakeGet()
    gw = ZfsCliGateway(fake)  # type: ignore[arg-type]
    prop = PropertyName("compression")
    alone = await gw.get_properties(DatasetName("tank/a"), property=prop)
    assert fake.children == [commands.get(DatasetName("tank/a"), prop)]
    assert alone == {"compression": PropertyEntry("lz4", "local")}
    names = ["tank/a", MISSING, "tank/a@s", "tank/b"]
    got: list[Any] = await asyncio.gather(
        *(gw.get_properties(SnapshotName.parse(n) if "@" in n else DatasetName(n), property=prop) for n in names),
        return_exceptions=True)
    assert fake.children[1:] == [["zfs", "get", "-H", "-p", "-o", "name,property,value,source", "compression",
                                  *names]]
    assert [got[0], got[2], got[3]] == [alone] * 3
    assert isinstance(got[1], NotFound) and got[1].name == MISSING


async def test_properties_asked_differently_run_one_child_per_property() -> None:
    fake = FakeGet()
    gw = ZfsCliGateway(fake)  # type: ignore[arg-type]
    await asyncio.gather(*(gw.get_properties(DatasetName(f"tank/d{i}"), property=PropertyName(p))
                           for i in range(3) for p in ("compression", "quota")))
    assert sorted(argv[6] for argv in fake.children) == ["compression", "quota"]



class PlanningExecutor:
    """Answers `zfs get ... encryption,receive_resume_token names`: tank/partial has a token, tank/secret is
    encrypted, the rest neither; a missing one `cannot open`. And `zfs list -t snapshot -d 1 names`: tank/src has
    two snapshots, tank/empty none, a missing one `cannot open`."""

    def __init__(self) -> None:
        self.children: list[list[str]] = []

    async def read(self, argv: list[str]) -> Completed:
        self.children.append(argv)
        await asyncio.sleep(0)
        listing = argv[1] == "list"
        names = argv[argv.index("1") + 1:] if listing else argv[7:]
        several = len(names) > 1
        rows, err = [], ""
        for n in names:
            if n == MISSING:
                err += f"cannot open '{n}': dataset does not exist\n"
            elif listing:
                rows += [f"{n}@a\t11\t5\n", f"{n}@b\t12\t6\n"] if n == "tank/src" else []
            else:
                token = "1-abc-def-0123" if n == "tank/partial" else "-"
                encryption = "aes-256-gcm" if n == "tank/secret" else "off"
                prefix = f"{n}\t" if several else ""
                rows += [f"{prefix}encryption\t{encryption}\t-\n", f"{prefix}receive_resume_token\t{token}\t-\n"]
        if listing:  # -s createtxg: sorted across the datasets
            rows.sort(key=lambda row: int(row.split("\t")[2]))
        return Completed(argv, 1 if err else 0, "".join(rows).encode(), err)


async def test_a_replications_lookups_before_its_first_byte_share_children() -> None:
    """Every target's resume token of a recursive replication, and the source's encryption, in one `zfs get`;
    both sides' own snapshots in one `zfs list`: each answered as a single call answers it."""
    fake = PlanningExecutor()
    gw = gateway(fake)  # type: ignore[arg-type]
    names = ["tank/partial", "tank/done", MISSING, *(f"tank/c{i}" for i in range(20))]
    tokens, encrypted, plain = await asyncio.gather(
        asyncio.gather(*(gw.resume_token(DatasetName(n)) for n in names)),
        gw.is_encrypted(DatasetName("tank/secret")), gw.is_encrypted(DatasetName("tank/done")))
    assert len(fake.children) == 1
    assert fake.children[0][:7] == ["zfs", "get", "-H", "-p", "-o", "name,property,value,source",
                                    "encryption,receive_resume_token"]
    assert tokens[0] is not None and tokens[0].value == "1-abc-def-0123"
    assert tokens[1:] == [None] * (len(names) - 1)  # no token, or no such dataset: none
    assert encrypted is True and plain is False

    alone = PlanningExecutor()
    assert (await gateway(alone).resume_token(DatasetName("tank/partial"))).value == "1-abc-def-0123"  # type: ignore
    assert alone.children == [["zfs", "get", "-H", "-p", "-o", "property,value,source",
                               "encryption,receive_resume_token", "tank/partial"]]
    with pytest.raises(NotFound):
        await gateway(alone).is_encrypted(DatasetName(MISSING))

    fake = PlanningExecutor()
    gw = gateway(fake)  # type: ignore[arg-type]
    got: list[Any] = await asyncio.gather(
        gw.list_snapshots(DatasetName("tank/src"), recursive=False, details=False),
        gw.list_snapshots(DatasetName("tank/empty"), recursive=False, details=False),
        gw.list_snapshots(DatasetName(MISSING), recursive=False, details=False), return_exceptions=True)
    assert len(fake.children) == 1
    assert fake.children[0] == commands.list_snapshots(DatasetName("tank/src"), False, False) + ["tank/empty",
                                                                                                 MISSING]
    assert [s.name for s in got[0]] == ["tank/src@a", "tank/src@b"]
    assert got[1] == [] and isinstance(got[2], NotFound)
    alone = PlanningExecutor()
    assert len(await gateway(alone).list_snapshots(DatasetName("tank/src"), recursive=False, details=False)) == 2
    assert alone.children == [commands.list_snapshots(DatasetName("tank/src"), False, False)]
