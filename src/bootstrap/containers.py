"""The composition root: a dependency-injector container wiring adapters into use cases (no @inject)."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, Mapping, get_type_hints

from dependency_injector import containers, providers

from zfsapi.adapters.inbound.http.app import HttpOptions
from zfsapi.adapters.inbound.http.live import Live
from zfsapi.adapters.inbound.http.peer import scope_peer
from zfsapi.adapters.inbound.jsonrpc.api import build_registry
from zfsapi.adapters.inbound.jsonrpc.job_methods import describe, job_kinds
from zfsapi.adapters.inbound.jsonrpc.replication_methods import migration_work
from zfsapi.adapters.outbound.replicas.local import LocalReplica
from zfsapi.adapters.outbound.replicas.sides import ReplicaSides
from zfsapi.application.replication import Replicate
from zfsapi.domain.replication import Remote
from zfsapi.adapters.inbound.jsonrpc.methods import CORE
from zfsapi.adapters.inbound.jsonrpc.registry import Row
from zfsapi.adapters.inbound.jsonrpc.transfer_methods import TRANSFERS
from zfsapi.adapters.metrics import Metrics
from zfsapi.adapters.outbound.auth.passwords import Argon2Passwords
from zfsapi.adapters.outbound.auth.tokens import JwtTokens
from zfsapi.adapters.outbound.auth.users import ConfigUsers
from zfsapi.adapters.outbound.clock import SystemClock
from zfsapi.adapters.outbound.jobs.embedded import EmbeddedJobStore
from zfsapi.adapters.outbound.jobs.redis_store import RedisJobStore
from zfsapi.adapters.outbound.sessions.embedded import EmbeddedRevocations
from zfsapi.adapters.outbound.sessions.memory import MemoryRateLimiter, MemoryRevocations, MemoryStreamSessions
from zfsapi.adapters.outbound.sessions.redis_store import (
    RedisRateLimiter,
    RedisRevocations,
    RedisStreamSessions,
    connect,
)
from zfsapi.adapters.outbound.send_file_dirs import LocalSendFileDirs
from zfsapi.adapters.outbound.zfs.pipelines import ZfsPipelines
from zfsapi.adapters.outbound.zfs.executor import ZfsExecutor
from zfsapi.adapters.outbound.zfs.gateway import ZfsCliGateway
from zfsapi.application import pools as p
from zfsapi.application import transfers as t
from zfsapi.application.auth import Authenticate, AuthUseCases, Login, Logout
from zfsapi.application.catalog import UseCases
from zfsapi.application.jobs import JobRunner, Jobs
from zfsapi.application.ports import (
    Bookmarks,
    Clock,
    Datasets,
    Pipelines,
    Pools,
    SendFileDirs,
    Snapshots,
    StreamSessions,
    Transfers,
)

from .security import access_of, revocation_store, signing_key, user_records
from .settings import Settings


Ports = Mapping[type[Any], "providers.Provider[Any]"]


def wired(use_case: type[Any], ports: Ports) -> providers.Singleton[Any]:
    """A provider of `use_case`, each constructor parameter filled with the port provider of its annotated type
    (parameters with defaults and no port keep their defaults)."""
    hints = get_type_hints(use_case.__init__)
    ports_by_param = {}
    for name, param in inspect.signature(use_case).parameters.items():
        port = ports.get(hints[name]) if name in hints else None
        if port is not None:
            ports_by_param[name] = port
        elif param.default is inspect.Parameter.empty:
            raise TypeError(f"{use_case.__name__}: no port provides its parameter {name}: {hints.get(name)}")
    return providers.Singleton(use_case, **ports_by_param)


def by_method(rows: Iterable[Row], ports: Ports) -> dict[str, providers.Provider[Any]]:
    """Method name -> its use case's provider; one provider per use-case class."""
    built: dict[type[Any], providers.Provider[Any]] = {}
    out = {}
    for row in rows:
        if row.use_case not in built:
            built[row.use_case] = wired(row.use_case, ports)
        out[row.name] = built[row.use_case]
    return out


def remote_credentials(settings: Settings) -> Callable[[Remote], tuple[str | None, str | None, str | None]]:
    """A remote zfsapi's (username, password, token) from replication.remotes."""
    def of(remote: Remote) -> tuple[str | None, str | None, str | None]:
        entry = settings.replication.credentials(remote)
        return entry.username, entry.password, entry.token
    return of


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    metrics = providers.Singleton(Metrics)
    clock = providers.Singleton(SystemClock)
    executor = providers.Singleton(
        ZfsExecutor,
        zfs=settings.provided.zfs.zfs,
        zpool=settings.provided.zfs.zpool,
        timeout=settings.provided.zfs.timeout,
        max_concurrency=settings.provided.zfs.max_concurrency,
        metrics=metrics,
        ssh=settings.provided.replication.ssh,
    )
    # The CLI gateway implements every one-shot ZFS port (Datasets, Snapshots, Bookmarks, Pools, Transfers).
    zfs = providers.Singleton(ZfsCliGateway, executor=executor)

    # Session state: in this process, or in Redis shared by every worker and server using it.
    backend = providers.Callable(lambda host: "redis" if host else "memory", settings.provided.redis.host)
    redis = providers.Singleton(connect, settings.provided.redis.host, settings.provided.redis.port,
                                settings.provided.redis.db, settings.provided.redis.password)
    revocations = providers.Selector(
        providers.Callable(revocation_store, settings),
        memory=providers.Singleton(MemoryRevocations),
        embedded=providers.Singleton(EmbeddedRevocations, settings.provided.state_dir),
        redis=providers.Singleton(RedisRevocations, redis),
    )
    rate_limiter = providers.Selector(
        backend,
        memory=providers.Singleton(MemoryRateLimiter),
        redis=providers.Singleton(RedisRateLimiter, redis),
    )

    stream_sessions = providers.Selector(
        backend,
        memory=providers.Singleton(MemoryStreamSessions),
        redis=providers.Singleton(RedisStreamSessions, redis),
    )
    pipelines = providers.Singleton(ZfsPipelines, executor, metrics=metrics)

    # Every method's use case (core and transfers), each built from these ports by its constructor's annotations.
    use_cases = providers.Singleton(UseCases, providers.Dict({
        **by_method([*CORE, *TRANSFERS], {
            Datasets: zfs, Snapshots: zfs, Bookmarks: zfs, Pools: zfs, Transfers: zfs, Clock: clock,
            Pipelines: pipelines, StreamSessions: stream_sessions,
            SendFileDirs: providers.Singleton(LocalSendFileDirs),
            t.TransferRoots: providers.Singleton(t.TransferRoots, providers.Callable(
                tuple, settings.provided.transfer.directories)),
            t.StreamLimits: providers.Singleton(t.StreamLimits, max_ttl=settings.provided.transfer.stream_max_ttl,
                                                retain=settings.provided.transfer.stream_retain),
        }),
        "pool_overview": providers.Singleton(p.PoolOverview, zfs, max_age=settings.provided.zfs.pool_cache_seconds),
    }))

    users = providers.Singleton(ConfigUsers, providers.Callable(user_records, settings),
                                config_file=settings.provided.source)
    passwords = providers.Singleton(Argon2Passwords, workers=settings.provided.auth.password_workers,
                                    profile=settings.provided.auth.password_profile)
    tokens = providers.Singleton(JwtTokens, key=providers.Callable(signing_key, settings),
                                 lifetime=settings.provided.auth.token_lifetime)
    auth = providers.Singleton(
        AuthUseCases,
        login=providers.Singleton(Login, users, passwords, tokens, enabled=settings.provided.auth.enabled),
        logout=providers.Singleton(Logout, revocations, tokens),
        authenticate=providers.Singleton(Authenticate, users, tokens, revocations),
    )

    # Jobs: records in the job store, run by this process's runner (kinds: every background method's handler).
    # (a file under state_dir by default, so records outlive the process; Redis shared by every worker and server)
    job_store = providers.Selector(
        providers.Callable(lambda host: "redis" if host else "embedded", settings.provided.redis.host),
        embedded=providers.Singleton(EmbeddedJobStore, settings.provided.state_dir),
        redis=providers.Singleton(RedisJobStore, redis),
    )
    jobs = providers.Singleton(Jobs, job_store)
    # local users and rate limits, swapped whole on reload (SIGHUP)
    access = providers.Singleton(Live, providers.Callable(access_of, settings))
    registry = providers.Singleton(build_registry, use_cases, auth, rate_limiter, access, metrics, jobs)
    # Replication: the destination side by remote (this host, SSH, another zfsapi), and the use case
    replicas = providers.Singleton(
        ReplicaSides, providers.Singleton(LocalReplica, zfs, zfs, pipelines), executor,
        ssh_options=settings.provided.replication.ssh_options,
        credentials=providers.Callable(remote_credentials, settings))
    replicate = providers.Singleton(Replicate, zfs, zfs, zfs, pipelines, replicas, clock,
                                    retries=settings.provided.jobs.retries)
    job_runner = providers.Singleton(
        JobRunner, job_store, jobs,
        kinds=providers.Callable(lambda registry, replicate: {**job_kinds(registry), **migration_work(replicate)},
                                 registry, replicate),
        workers=settings.provided.jobs.workers, lease=settings.provided.jobs.lease,
        retention=settings.provided.jobs.retention, resumable=frozenset({"migration_create"}),
        max_attempts=providers.Callable(lambda retries: retries + 1, settings.provided.jobs.retries),
        describe=describe, ended=metrics.provided.job_ended)

    local_peer = providers.Object(scope_peer)  # the kernel's word on who is calling (tests stand in for it)
    http_options = providers.Singleton(
        HttpOptions,
        max_batch=settings.provided.jsonrpc.max_batch,
        max_body_bytes=settings.provided.jsonrpc.max_body_bytes,
        passwordless_localhost=settings.provided.auth.passwordless_localhost,
        local_peer=local_peer,
        sessions_backend=backend,
        jobs_backend=providers.Callable(lambda host: "redis" if host else "embedded", settings.provided.redis.host),
        access=access,
    )


def build_container(settings: Settings) -> Container:
    return Container(settings=settings)
