"""The composition root: a dependency-injector container wiring adapters into use cases (no @inject)."""

from __future__ import annotations

import inspect
import operator
import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Mapping, get_type_hints

from dependency_injector import containers, providers
from zfsapi.adapters.inbound.http.services import HttpOptions
from zfsapi.adapters.inbound.http.live import Live
from zfsapi.adapters.inbound.http.peer import scope_peer
from zfsapi.adapters.inbound.jsonrpc.api import build_registry
from zfsapi.adapters.inbound.jsonrpc.job_methods import describe, method_kinds
from zfsapi.adapters.inbound.jsonrpc.methods import CORE
from zfsapi.adapters.inbound.jsonrpc.policy_methods import PolicyUseCases
from zfsapi.adapters.inbound.jsonrpc.registry import Row
from zfsapi.adapters.inbound.jsonrpc.transfer_methods import TRANSFERS
from zfsapi.adapters.metrics import Metrics
from zfsapi.adapters.outbound.auth.passwords import Argon2Passwords
from zfsapi.adapters.outbound.auth.tokens import JwtTokens
from zfsapi.adapters.outbound.auth.users import ConfigUsers
from zfsapi.adapters.outbound.clock import SystemClock
from zfsapi.adapters.outbound.replicas.local import LocalReplica
from zfsapi.adapters.outbound.replicas.sides import (
    Minter,
    RemoteConfig,
    ReplicaSides,
    Secret,
)
from zfsapi.adapters.outbound.send_file_dirs import LocalSendFileDirs
from zfsapi.adapters.outbound.state.memory.sessions import (
    MemoryRateLimiter,
    MemoryRevocations,
    MemoryStreamSessions,
)
from zfsapi.adapters.outbound.state.redis.client import connect
from zfsapi.adapters.outbound.state.redis.jobs import RedisJobStore
from zfsapi.adapters.outbound.state.redis.policies import RedisPolicyStore
from zfsapi.adapters.outbound.state.redis.sessions import (
    RedisRateLimiter,
    RedisRevocations,
    RedisStreamSessions,
)
from zfsapi.adapters.outbound.state.sqlite.jobs import EmbeddedJobStore
from zfsapi.adapters.outbound.state.sqlite.policies import EmbeddedPolicyStore
from zfsapi.adapters.outbound.state.sqlite.revocations import EmbeddedRevocations
from zfsapi.adapters.outbound.zfs.executor import ZfsExecutor
from zfsapi.adapters.outbound.zfs.gateway import ZfsCliGateway
from zfsapi.adapters.outbound.zfs.pipelines import ZfsPipelines
from zfsapi.adapters.outbound.zfs.policy_ops import ZfsPolicyOps
from zfsapi.application import pools as p
from zfsapi.application import transfers as t
from zfsapi.application.auth import (
    Authenticate,
    AuthUseCases,
    Login,
    Logout,
    PasswordHasher,
    Revocations,
    TokenCodec,
    UserDirectory,
)
from zfsapi.application.catalog import UseCases
from zfsapi.application.job_kinds import JobKinds
from zfsapi.application.jobs import JobRunner, Jobs
from zfsapi.application.migrations import migration_kind
from zfsapi.application.policies import PreviewPrune, Prune, TakePolicySnapshots
from zfsapi.application.policy_catalog import PolicyCatalog
from zfsapi.application.policy_replication import ReplicatePolicyTarget
from zfsapi.application.policy_jobs import PolicyKinds, PreviewPolicy, StartPolicyRun
from zfsapi.application.policy_ports import PolicyZfs
from zfsapi.application.policy_state import PolicyLedger, PolicyStore
from zfsapi.application.scheduler import PolicyScheduler
from zfsapi.application.ports import (
    Bookmarks,
    Clock,
    Datasets,
    JobStore,
    Pipelines,
    Pools,
    Replicas,
    SendFileDirs,
    Snapshots,
    StreamSessions,
    Transfers,
)
from zfsapi.application.replication import Replicate, StartMigration
from zfsapi.domain.authz import Principal
from zfsapi.domain.errors import InvalidArgument
from zfsapi.domain.policies import Policy
from zfsapi.domain.replication import NamedRemote, Remote, RemoteBook

from .health_wiring import health_monitor, webhook_notifier
from .owners import ConfiguredOwners
from .security import access_of, revocation_store, signing_key, user_records
from .settings import Settings, SettingsError, config_policies

Ports = Mapping[type[Any], "providers.Provider[Any]"]


def wired(use_case: type[Any], ports: Ports, **given: Any) -> providers.Singleton[Any]:
    """A provider of `use_case`, each constructor parameter filled with the port provider of its annotated type,
    or with `given[name]` (settings and the like; it wins over a port). Parameters with defaults and neither
    keep their defaults.

    Raises:
        TypeError: a parameter without a default that neither fills, or a `given` name the class does not take.
    """
    hints = get_type_hints(use_case.__init__)
    params = inspect.signature(use_case).parameters
    unknown = set(given) - set(params)
    if unknown:
        raise TypeError(f"{use_case.__name__} takes no parameter {', '.join(sorted(unknown))}")
    filled = dict(given)
    for name, param in params.items():
        port = ports.get(hints[name]) if name in hints else None
        if name not in filled and port is not None:
            filled[name] = port
        elif name not in filled and param.default is inspect.Parameter.empty:
            raise TypeError(f"{use_case.__name__}: no port provides its parameter {name}: {hints.get(name)}")
    return providers.Singleton(use_case, **filled)


def by_method(rows: Iterable[Row], ports: Ports) -> dict[str, providers.Provider[Any]]:
    """Method name -> its use case's provider; one provider per use-case class."""
    built: dict[type[Any], providers.Provider[Any]] = {}
    out = {}
    for row in rows:
        if row.use_case not in built:
            built[row.use_case] = wired(row.use_case, ports)
        out[row.name] = built[row.use_case]
    return out


def session_backend(redis_host: str | None) -> str:
    """Where sessions (rate limits, stream sessions) live: Redis when configured, else this process."""
    return "redis" if redis_host else "memory"


def job_backend(redis_host: str | None) -> str:
    """Where jobs live: Redis when configured, else a file under state_dir (records outlive the process)."""
    return "redis" if redis_host else "embedded"


def remote_config(settings: Settings) -> RemoteConfig:
    """replication.remotes (checked by load_settings) as the replica sides take it: the book, the credentials."""
    r = settings.replication
    remotes, secrets = [], {}
    for name, entry in r.remotes.items():
        credentials = entry.username is not None or entry.token is not None
        try:
            remote = Remote.parse(entry.url or entry.ssh or "")
            remotes.append(NamedRemote(name, remote, tuple(entry.options), credentials))
        except InvalidArgument as exc:
            raise SettingsError(f"config key replication.remotes.{name}: {exc.reason}") from None
        if credentials:
            secrets[name] = Secret(entry.username, entry.password, entry.token)
    return RemoteConfig(RemoteBook(tuple(remotes), r.allow_unlisted_remotes), secrets)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The configuration's policies and the replication.remotes names a policy may use (swapped on reload)."""

    policies: tuple[Policy, ...] = ()
    remotes: tuple[str, ...] = ()


def policy_config(settings: Settings) -> PolicyConfig:
    """`policies:` as load_settings checked them. Raises SettingsError naming the key path."""
    return PolicyConfig(config_policies(settings), tuple(settings.replication.remotes))


def live_policies(live: Live[PolicyConfig]) -> Callable[[], tuple[Policy, ...]]:
    return lambda: live.current.policies


def live_remotes(live: Live[PolicyConfig]) -> Callable[[], tuple[str, ...]]:
    return lambda: live.current.remotes


def policy_rows(kinds: PolicyKinds) -> list[Any]:
    return kinds.rows()


REPLICA_TOKEN_LIFETIME = 300.0  # seconds; a refused one is made again


def owner_tokens(settings: Settings, users: UserDirectory) -> Minter:
    """Tokens of a job's owner for this server, signed with its key, for the remotes listed without credentials
    (this server itself): only for an owner that is exactly a user of auth.users (same name, role and scope), so
    the token grants nothing the owner lacks; a local user without a token identity gets none."""
    codec = JwtTokens(signing_key(settings), lifetime=REPLICA_TOKEN_LIFETIME)

    def mint(who: Principal) -> Callable[[], str] | None:
        user = users.get(who.name) if settings.auth.enabled else None
        if user is None or user.role is not who.role or tuple(user.prefixes) != tuple(who.prefixes):
            return None
        return lambda: codec.issue(who.name).token

    return mint


class Container(containers.DeclarativeContainer):
    """Adapters first, then the ports they fill, then every use case built from those ports by `wired` (its
    constructor's annotations), settings given by name."""

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
    backend = providers.Callable(session_backend, settings.provided.redis.host)
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

    users = providers.Singleton(ConfigUsers, providers.Callable(user_records, settings),
                                config_file=settings.provided.source)
    passwords = providers.Singleton(Argon2Passwords, workers=settings.provided.auth.password_workers,
                                    profile=settings.provided.auth.password_profile)
    tokens = providers.Singleton(JwtTokens, key=providers.Callable(signing_key, settings),
                                 lifetime=settings.provided.auth.token_lifetime)

    # Jobs: records in the job store (a file under state_dir by default, so records outlive the process; Redis
    # shared by every worker and server)
    job_store = providers.Selector(
        providers.Callable(job_backend, settings.provided.redis.host),
        embedded=providers.Singleton(EmbeddedJobStore, settings.provided.state_dir),
        redis=providers.Singleton(RedisJobStore, redis),
    )
    # local users and rate limits, swapped whole on reload (SIGHUP)
    access = providers.Singleton(Live, providers.Callable(access_of, settings))
    # Replication: the destination side by remote (this host, SSH, another zfsapi; the remotes swapped whole on
    # reload)
    replicas = providers.Singleton(
        ReplicaSides, providers.Singleton(LocalReplica, zfs, zfs, pipelines), executor,
        ssh_options=settings.provided.replication.ssh_options,
        config=providers.Callable(remote_config, settings), mint=providers.Callable(owner_tokens, settings, users))
    # Policies: the configuration's (swapped whole on reload) and the API's, kept in the policy store with the
    # ledger of their runs
    policy_config = providers.Singleton(Live, providers.Callable(policy_config, settings))
    policy_store = providers.Selector(
        providers.Callable(job_backend, settings.provided.redis.host),
        embedded=providers.Singleton(EmbeddedPolicyStore, settings.provided.state_dir),
        redis=providers.Singleton(RedisPolicyStore, redis),
    )
    policy_zfs = providers.Singleton(ZfsPolicyOps, executor)  # the policy engine's ZFS (few children per run)

    ports: ClassVar[Ports] = {
        Datasets: zfs, Snapshots: zfs, Bookmarks: zfs, Pools: zfs, Transfers: zfs, Clock: clock,
        Pipelines: pipelines, StreamSessions: stream_sessions, SendFileDirs: providers.Singleton(LocalSendFileDirs),
        t.TransferRoots: providers.Singleton(t.TransferRoots, providers.Callable(
            tuple, settings.provided.transfer.directories)),
        t.StreamLimits: providers.Singleton(t.StreamLimits, max_ttl=settings.provided.transfer.stream_max_ttl,
                                            retain=settings.provided.transfer.stream_retain),
        UserDirectory: users, PasswordHasher: passwords, TokenCodec: tokens, Revocations: revocations,
        JobStore: job_store, Replicas: replicas, PolicyStore: policy_store, PolicyLedger: policy_store,
        PolicyZfs: policy_zfs,
    }

    # Every method's use case (core and transfers), by method name.
    use_cases = providers.Singleton(UseCases, **by_method([*CORE, *TRANSFERS], ports), pool_overview=wired(
        p.PoolOverview, ports, max_age=settings.provided.zfs.pool_cache_seconds))
    auth = wired(AuthUseCases, ports,
                 login=wired(Login, ports, enabled=settings.provided.auth.enabled),
                 logout=wired(Logout, ports), authenticate=wired(Authenticate, ports))
    jobs = wired(Jobs, ports, max_per_owner=settings.provided.jobs.max_per_owner)
    replicate = wired(Replicate, ports, retries=settings.provided.jobs.retries)
    start_migration = wired(StartMigration, ports, jobs=jobs, replicate=replicate)
    policy_catalog = wired(PolicyCatalog, ports, configured=providers.Callable(live_policies, policy_config),
                           remotes=providers.Callable(live_remotes, policy_config))
    start_policy_run = wired(StartPolicyRun, ports, jobs=jobs, catalog=policy_catalog)
    # one scheduler per server process: each (policy, slot) claimed once in the policy store, then run as a job
    policy_scheduler = providers.Singleton(PolicyScheduler, source=policy_catalog, ledger=policy_store,
                                           submitter=start_policy_run, clock=clock, observer=metrics)
    policy_kinds = wired(PolicyKinds, ports, catalog=policy_catalog, start=start_policy_run,
                         take=wired(TakePolicySnapshots, ports), prune=wired(Prune, ports),
                         replicate=wired(ReplicatePolicyTarget, ports, replicate=replicate),
                         clock=providers.Object(time.time), observer=metrics)
    # health and alerts: checks beside the job runner (pools, scrubs, policies' freshness and lag, failed jobs),
    # webhooks once per change of an alert
    alert_notifier = providers.Singleton(webhook_notifier, settings)
    health = providers.Singleton(health_monitor, settings, zfs, job_store, metrics, alert_notifier, jobs,
                                 ledger=policy_store, policy_zfs=policy_zfs, policies=policy_catalog)
    registry = providers.Singleton(build_registry, use_cases, auth, rate_limiter, access, metrics, jobs,
                                   start_migration, providers.Singleton(
                                       PolicyUseCases, policy_catalog, start_policy_run,
                                       wired(PreviewPolicy, ports, catalog=policy_catalog,
                                             preview=wired(PreviewPrune, ports))), health=health)
    # Jobs run by this process's runner: every kind of job it runs (the background methods' handlers, and
    # migrations); each runs with its owner's rights when it starts (users and local users as reloaded on SIGHUP)
    job_kinds = providers.Singleton(JobKinds, providers.Callable(method_kinds, registry),
                                    providers.List(providers.Callable(migration_kind, replicate)),
                                    providers.Callable(policy_rows, policy_kinds))
    job_runner = wired(
        JobRunner, ports, jobs=jobs, kinds=job_kinds, workers=settings.provided.jobs.workers,
        lease=settings.provided.jobs.lease, retention=settings.provided.jobs.retention,
        max_attempts=providers.Callable(operator.add, settings.provided.jobs.retries, 1),
        describe=describe, ended=metrics.provided.job_ended,
        owners=providers.Singleton(ConfiguredOwners, users, access, settings.provided.auth.passwordless_localhost))

    local_peer = providers.Object(scope_peer)  # the kernel's word on who is calling (tests stand in for it)
    http_options = providers.Singleton(
        HttpOptions,
        max_batch=settings.provided.jsonrpc.max_batch,
        max_body_bytes=settings.provided.jsonrpc.max_body_bytes,
        passwordless_localhost=settings.provided.auth.passwordless_localhost,
        local_peer=local_peer,
        sessions_backend=backend,
        jobs_backend=providers.Callable(job_backend, settings.provided.redis.host),
        access=access,
    )


def build_container(settings: Settings) -> Container:
    return Container(settings=settings)
