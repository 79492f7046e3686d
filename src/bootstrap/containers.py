"""The composition root: a dependency-injector container wiring adapters into use cases (no @inject)."""

from __future__ import annotations

from dependency_injector import containers, providers

from zfsapi.adapters.inbound.http.app import HttpOptions
from zfsapi.adapters.metrics import Metrics
from zfsapi.adapters.outbound.auth.passwords import Argon2Passwords
from zfsapi.adapters.outbound.auth.tokens import JwtTokens
from zfsapi.adapters.outbound.auth.users import ConfigUsers
from zfsapi.adapters.outbound.clock import SystemClock
from zfsapi.adapters.outbound.sessions.memory import MemoryRateLimiter, MemoryRevocations, MemoryStreamSessions
from zfsapi.adapters.outbound.sessions.redis_store import (
    RedisRateLimiter,
    RedisRevocations,
    RedisStreamSessions,
    connect,
)
from zfsapi.adapters.outbound.zfs.pipelines import ZfsPipelines
from zfsapi.adapters.outbound.zfs.executor import ZfsExecutor
from zfsapi.adapters.outbound.zfs.gateway import ZfsCliGateway
from zfsapi.application import datasets as d
from zfsapi.application import pools as p
from zfsapi.application import snapshots as s
from zfsapi.application.auth import Authenticate, AuthUseCases, Login, Logout
from zfsapi.application import transfers as t
from zfsapi.application.catalog import UseCases

from .security import rate_quota, signing_key, user_records
from .settings import Settings


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
    )
    # The CLI gateway implements every one-shot ZFS port (Datasets, Snapshots, Bookmarks, Pools, Transfers).
    zfs = providers.Singleton(ZfsCliGateway, executor=executor)

    use_cases = providers.Singleton(
        UseCases,
        dataset_create=providers.Singleton(d.CreateDataset, zfs),
        dataset_destroy=providers.Singleton(d.DestroyDataset, zfs),
        dataset_list=providers.Singleton(d.ListDatasets, zfs),
        dataset_get_properties=providers.Singleton(d.GetDatasetProperties, zfs),
        dataset_set_property=providers.Singleton(d.SetDatasetProperty, zfs),
        dataset_get_space=providers.Singleton(d.GetDatasetSpace, zfs),
        dataset_mount=providers.Singleton(d.MountDataset, zfs),
        dataset_unmount=providers.Singleton(d.UnmountDataset, zfs),
        dataset_rename=providers.Singleton(d.RenameDataset, zfs),
        snapshot_create=providers.Singleton(s.CreateSnapshot, zfs),
        snapshot_create_auto=providers.Singleton(s.CreateAutoSnapshot, zfs, clock),
        snapshot_list=providers.Singleton(s.ListSnapshots, zfs),
        snapshot_destroy=providers.Singleton(s.DestroySnapshot, zfs),
        snapshot_rollback=providers.Singleton(s.RollbackSnapshot, zfs),
        snapshot_hold=providers.Singleton(s.HoldSnapshot, zfs),
        snapshot_release=providers.Singleton(s.ReleaseSnapshot, zfs),
        snapshot_holds_list=providers.Singleton(s.ListHolds, zfs),
        snapshot_diff=providers.Singleton(s.DiffSnapshots, zfs),
        pool_list=providers.Singleton(p.ListPools, zfs),
        pool_get_properties=providers.Singleton(p.GetPoolProperties, zfs),
        pool_scrub_start=providers.Singleton(p.StartScrub, zfs),
        pool_scrub_stop=providers.Singleton(p.StopScrub, zfs),
        pool_status=providers.Singleton(p.GetPoolStatus, zfs),
        pool_overview=providers.Singleton(p.PoolOverview, zfs, max_age=settings.provided.zfs.pool_cache_seconds),
        clone_create=providers.Singleton(d.CreateClone, zfs),
        volume_create=providers.Singleton(d.CreateVolume, zfs),
        bookmark_create=providers.Singleton(s.CreateBookmark, zfs),
        bookmark_list=providers.Singleton(s.ListBookmarks, zfs),
        bookmark_destroy=providers.Singleton(s.DestroyBookmark, zfs),
    )

    # Session state: in this process, or in Redis shared by every worker and server using it.
    backend = providers.Callable(lambda host: "redis" if host else "memory", settings.provided.redis.host)
    redis = providers.Singleton(connect, settings.provided.redis.host, settings.provided.redis.port,
                                settings.provided.redis.db, settings.provided.redis.password)
    revocations = providers.Selector(
        backend,
        memory=providers.Singleton(MemoryRevocations),
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
    pipelines = providers.Singleton(ZfsPipelines, executor)
    transfer_roots = providers.Callable(lambda dirs: tuple(dirs), settings.provided.transfer.directories)
    transfers = providers.Singleton(
        t.TransferUseCases,
        send_estimate=providers.Singleton(t.SendEstimate, zfs),
        send_to_file=providers.Singleton(t.SendToFile, zfs, pipelines, transfer_roots),
        receive_from_file=providers.Singleton(t.ReceiveFromFile, pipelines, transfer_roots),
        receive_abort=providers.Singleton(t.AbortReceive, zfs),
        streams=providers.Singleton(t.StreamService, zfs, pipelines, zfs, stream_sessions,
                                    retain=settings.provided.transfer.stream_retain,
                                    max_ttl=settings.provided.transfer.stream_max_ttl),
    )

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

    http_options = providers.Singleton(
        HttpOptions,
        max_batch=settings.provided.jsonrpc.max_batch,
        max_body_bytes=settings.provided.jsonrpc.max_body_bytes,
        passwordless_localhost=settings.provided.auth.passwordless_localhost,
        sessions_backend=backend,
        rate_limit=providers.Callable(rate_quota, settings, login=False),
        login_limit=providers.Callable(rate_quota, settings, login=True),
    )


def build_container(settings: Settings) -> Container:
    return Container(settings=settings)
