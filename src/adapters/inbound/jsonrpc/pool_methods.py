"""The pool methods (list, properties, scrub start and stop, status): each method's params, result and
handler."""

from __future__ import annotations

from typing import Literal

from msgspec import UNSET, UnsetType

from zfsapi.application.pools import GetPoolProperties, GetPoolStatus, ListPools, StartScrub, StopScrub
from zfsapi.domain.authz import Action
from zfsapi.domain.errors import Busy, InvalidArgument, NotFound, StateConflict
from zfsapi.domain.models import Vdev
from zfsapi.domain.names import PoolName

from .method_common import GetProp, POOL, Pool, PropertyValueOut, ZFS_ERRORS, parse, prop_or_all
from .registry import Background, CallContext, NoParams, Params, Result, Table

POOLS = Table(errors=ZFS_ERRORS)


class PoolOnly(Params, frozen=True, forbid_unknown_fields=True):
    pool: Pool


class PoolGetProperties(Params, frozen=True, forbid_unknown_fields=True):
    pool: Pool
    property: GetProp = "all"


class PoolDetail(Result, frozen=True, kw_only=True):
    name: str
    size: int
    allocated: int
    free: int
    capacity: int
    health: str
    fragmentation: int | None


class ScanState(Result, frozen=True, kw_only=True):
    function: str | None
    state: str | None
    percent: float | None
    examined: int | None
    total: int | None
    errors: int | None


class VdevNode(Result, frozen=True, kw_only=True):
    name: str
    state: str
    read: int
    write: int
    checksum: int
    children: list[VdevNode]


class PoolListResult(Result, frozen=True, kw_only=True):
    pools: list[str]
    details: list[PoolDetail]


class PoolPropertiesResult(Result, frozen=True, kw_only=True):
    pool: str
    properties: dict[str, PropertyValueOut]


class ScrubStart(Params, frozen=True, forbid_unknown_fields=True):
    pool: Pool
    background: Background = False


class ScrubResult(Result, frozen=True, kw_only=True):
    pool: str
    scrub: Literal["started", "stopped", "finished", "canceled"]  # as a job: how the scrub ended
    errors: int | UnsetType = UNSET  # as a job: the errors the scrub found


class PoolStatusResult(Result, frozen=True, kw_only=True):
    pool: str
    status: str
    state: str
    scan: ScanState
    vdevs: list[VdevNode]
    errors: str


def _vdev(v: Vdev) -> VdevNode:
    return VdevNode(name=v.name, state=v.state, read=v.read, write=v.write, checksum=v.checksum,
                    children=[_vdev(c) for c in v.children])


@POOLS.method(Action.LIST)
async def pool_list(uc: ListPools, p: NoParams, ctx: CallContext) -> PoolListResult:
    pools = await uc.execute()
    if ctx.principal is not None:
        pools = [x for x in pools if ctx.principal.sees_pool(x.name)]
    return PoolListResult(pools=[x.name for x in pools],
                          details=[PoolDetail(name=x.name, size=x.size, allocated=x.allocated, free=x.free,
                                              capacity=x.capacity, health=x.health, fragmentation=x.fragmentation)
                                   for x in pools])


@POOLS.method(Action.READ, carries={"pool": POOL}, errors=(NotFound, InvalidArgument))
async def pool_get_properties(uc: GetPoolProperties, p: PoolGetProperties, ctx: CallContext) -> PoolPropertiesResult:
    pool = parse("pool", PoolName.parse, p.pool)
    props = await uc.execute(pool=pool, property=prop_or_all("property", p.property))
    return PoolPropertiesResult(pool=pool.value, properties={k: v.value for k, v in props.items()})


@POOLS.method(Action.CHANGE, carries={"pool": POOL}, errors=(NotFound, Busy), background=True)
async def pool_scrub_start(uc: StartScrub, p: ScrubStart, ctx: CallContext) -> ScrubResult:
    pool = parse("pool", PoolName.parse, p.pool)
    scan = await uc.execute(pool=pool, progress=ctx.progress)
    if scan is None:
        return ScrubResult(pool=pool.value, scrub="started")
    return ScrubResult(pool=pool.value, scrub="canceled" if scan.state == "canceled" else "finished",
                       errors=UNSET if scan.errors is None else scan.errors)


@POOLS.method(Action.CHANGE, carries={"pool": POOL}, errors=(NotFound, StateConflict))
async def pool_scrub_stop(uc: StopScrub, p: PoolOnly, ctx: CallContext) -> ScrubResult:
    pool = parse("pool", PoolName.parse, p.pool)
    await uc.execute(pool=pool)
    return ScrubResult(pool=pool.value, scrub="stopped")


@POOLS.method(Action.READ, carries={"pool": POOL}, errors=(NotFound,))
async def pool_status(uc: GetPoolStatus, p: PoolOnly, ctx: CallContext) -> PoolStatusResult:
    st = await uc.execute(pool=parse("pool", PoolName.parse, p.pool))
    s = st.scan
    return PoolStatusResult(
        pool=st.pool, status=st.raw, state=st.state,
        scan=ScanState(function=s.function, state=s.state, percent=s.percent, examined=s.examined, total=s.total,
                       errors=s.errors),
        vdevs=[_vdev(v) for v in st.vdevs], errors=st.errors,
    )
