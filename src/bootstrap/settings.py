"""Settings: config.yaml (the old server's keys kept) overridden by ZFSAPI_* environment variables,
decoded once into frozen Structs. A bad key or value is one line naming it. The old server's own keys
(server.tcp, server.unix.enabled, server.workers, task_manager) are read into their zfsapi meaning, or noted
as having none: an old config.yaml is never refused for them."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from urllib.parse import urlsplit
from typing import Annotated, Any, Literal, Mapping

import argon2
import msgspec
import yaml
from msgspec import Meta

from zfsapi.domain.alerts import KINDS as ALERT_KINDS
from zfsapi.domain.errors import InvalidArgument
from zfsapi.domain.names import DatasetName
from zfsapi.domain.policies import Policy, parse_policies
from zfsapi.domain.replication import REMOTE_NAME, Remote, RemoteKind
from zfsapi.domain.schedules import Schedule

ENV_PREFIX = "ZFSAPI_"
Port = Annotated[int, Meta(ge=1, le=65535)]
Positive = Annotated[int, Meta(ge=1)]


class _S(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class HttpSettings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8545  # 0: any free port (the log says which)
    workers: Annotated[int, Meta(ge=1, le=64)] = 1  # more than one needs redis.host (shared sessions and limits)


class UnixSettings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # A Unix socket beside the TCP listener (the old server's server.unix key): local callers are known by
    # SO_PEERCRED and mapped through auth.local_users like loopback TCP callers.
    path: str | None = None
    mode: Annotated[int, Meta(ge=0, le=0o777)] = 0o660  # YAML: 0660 (octal) or 432
    group: str | None = None  # the socket's group (name or gid); default: the server's


class ServerSettings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    http: HttpSettings = HttpSettings()
    unix: UnixSettings = UnixSettings()


class UserSettings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    password_hash: str
    role: Literal["admin", "operator", "readonly"] = "readonly"
    datasets: list[str] = []  # dataset prefixes this user may touch; empty: all


class LocalUserSettings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    role: Literal["admin", "operator", "readonly"] = "readonly"
    datasets: list[str] = []  # dataset prefixes this local user may touch; empty: all


def _root_only() -> dict[str, LocalUserSettings]:
    return {"root": LocalUserSettings(role="admin")}


class AuthSettings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # Token auth for remote peers. With no users configured no token can be issued, so only
    # passwordless loopback peers can call; there is no default password.
    enabled: bool = True  # false: auth_login issues no tokens (only passwordless loopback callers remain)
    passwordless_localhost: bool = True
    # Who may call without a token from this machine (loopback TCP or the Unix socket), by user name or uid, as
    # the kernel reports the caller's socket owner. Any other local user gets -32001 and needs a token.
    local_users: dict[str, LocalUserSettings] = msgspec.field(default_factory=_root_only)
    # Passwordless access while listening on a non-loopback address must be asked for explicitly.
    allow_passwordless_with_public_bind: bool = False
    # name -> hash (the old server's form; such a user is an admin) or {password_hash, role, datasets}
    users: dict[str, str | UserSettings] = {}
    secret_key: str | None = None  # default: 32 random bytes generated into state_dir/jwt.key
    token_lifetime: Annotated[float, Meta(ge=10, le=86400)] = 1800.0
    # Argon2id cost: argon2-cffi's default (RFC 9106 low memory, 64 MiB) or OWASP's minimum for small hosts
    password_profile: Literal["rfc9106-low-memory", "owasp-minimum"] = "rfc9106-low-memory"
    password_workers: Annotated[int, Meta(ge=1, le=16)] = 2  # concurrent hash checks (each holds its memory)


class RateLimitSettings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    enabled: bool = True
    requests: Positive = 100  # per principal (token subject, else peer address) ...
    window: Annotated[float, Meta(gt=0)] = 60.0  # ... per this many seconds; a batch of N costs N
    login_requests: Positive = 5  # auth_login attempts per peer address ...
    login_window: Annotated[float, Meta(gt=0)] = 60.0  # ... per this many seconds
    # Local users without a token (auth.local_users) have their own limit, off by default: a local script's
    # batch of 100 calls is not a remote client's burst.
    local_requests: Positive | None = None  # per local user ...
    local_window: Annotated[float, Meta(gt=0)] = 60.0  # ... per this many seconds


class LoggingSettings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # The audit trail (every change, login and logout): with the other logs on stderr, or only in this file
    # (JSON lines, appended, mode 0600, written by a background thread).
    audit_file: str | None = None
    file: str | None = None  # the log lines are also appended here (JSON lines, mode 0600; the old server's key)


class RedisSettings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    host: str | None = None  # no host: in-process session store
    port: Port = 6379
    db: Annotated[int, Meta(ge=0)] = 0
    password: str | None = None


class ZfsSettings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    zfs: str = "zfs"
    zpool: str = "zpool"
    timeout: Annotated[float, Meta(gt=0)] = 300.0
    max_concurrency: Annotated[int, Meta(ge=1, le=1024)] = 32
    pool_cache_seconds: Annotated[float, Meta(ge=0)] = 5.0


class JsonRpcSettings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    max_batch: Annotated[int, Meta(ge=1, le=10000)] = 100
    max_body_bytes: Annotated[int, Meta(ge=1024)] = 1 << 20


class TransferSettings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # send_to_file / receive_from_file paths must lie inside one of these (absolute) directories
    directories: list[str] = []
    stream_max_ttl: Annotated[float, Meta(ge=1)] = 86400.0  # the longest stream_init ttl accepted
    stream_retain: Annotated[float, Meta(ge=0)] = 3600.0  # finished sessions stay listable this long


class JobSettings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # Long work (background transfers, replication, scrubs) runs as jobs in the job store: a file under state_dir,
    # or Redis when redis.host is set (then every worker and server sharing it sees and may run every job).
    workers: Annotated[int, Meta(ge=1, le=64)] = 4  # jobs running at once per server process; the rest wait
    retention: Annotated[float, Meta(ge=0)] = 7 * 86400.0  # finished jobs stay listed this many seconds
    lease: Annotated[float, Meta(ge=5, le=3600)] = 30.0  # a job whose worker stops renewing for this long is
    #                                                      interrupted (and resumed where it can be)
    retries: Annotated[int, Meta(ge=0, le=100)] = 5  # a cut transfer resumes from the receiver's token this often
    max_per_owner: Annotated[int, Meta(ge=1, le=100000)] = 16  # queued + running jobs per user; more: -32000


class RemoteSettings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # One remote a migration may name: another zfsapi (`url`, logged in to with a username and password, a token
    # is fetched and renewed as needed, or a fixed token; neither is ever logged; without either only a loopback
    # URL, this server, which is then called with the job owner's own token), or an SSH host (`ssh`:
    # "user@host", with extra -o `options` for it).
    url: str | None = None
    username: str | None = None
    password: str | None = None
    token: str | None = None
    ssh: str | None = None
    options: list[str] = []


class ReplicationSettings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # The remotes a migration may name, by name ([A-Za-z0-9_-]); migration_create takes the name, or the url /
    # ssh string of a listed one. Anything else is refused, for an unrestricted admin too unless
    # allow_unlisted_remotes is true (then SSH hosts only). Swapped in on reload (SIGHUP).
    remotes: dict[str, RemoteSettings] = {}
    allow_unlisted_remotes: bool = False
    ssh: str = "ssh"  # the OpenSSH client (run with BatchMode=yes: keys only, never a prompt)
    ssh_options: list[str] = []  # extra -o options for every SSH remote, e.g. ["StrictHostKeyChecking=accept-new"]


class CapacitySettings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # pool capacity (percent) at which the capacity alert is a warning, critical, critical "nearly full"; a level
    # is left only 5 points below its threshold
    warning: Annotated[int, Meta(ge=1, le=100)] = 80
    critical: Annotated[int, Meta(ge=1, le=100)] = 90
    full: Annotated[int, Meta(ge=1, le=100)] = 95


class HealthSettings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # The health checks each serving process runs beside its job runner (see README, Health and alerts).
    interval: Annotated[float, Meta(ge=5, le=86400)] = 60.0  # seconds between rounds
    scrub_max_age_days: Annotated[float, Meta(gt=0)] | None = 35.0  # null: scrub age not checked
    scrub_schedule: str | None = None  # cron (UTC): a scrub of every pool starts as a job at each slot
    capacity: CapacitySettings = CapacitySettings()
    failed_job_window: Annotated[float, Meta(ge=60)] = 3600.0  # a failed job raises an alert for this long


class WebhookSettings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    url: str  # http(s); its userinfo and query are never logged
    kinds: list[str] = []  # alert kinds delivered (empty: every kind)
    min_severity: Literal["warning", "critical"] = "warning"


class AlertSettings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # Every change of an alert (raised, cleared, changed) is POSTed as JSON to each webhook that takes its kind
    # and severity, retried with exponential backoff (1, 2, 4, ... up to 60 s between tries, `attempts` tries).
    webhooks: list[WebhookSettings] = []
    attempts: Annotated[int, Meta(ge=1, le=20)] = 6
    timeout: Annotated[float, Meta(gt=0, le=300)] = 10.0  # seconds per try


class Settings(_S, frozen=True, forbid_unknown_fields=True, kw_only=True):
    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    logging: LoggingSettings = LoggingSettings()
    redis: RedisSettings = RedisSettings()
    zfs: ZfsSettings = ZfsSettings()
    jsonrpc: JsonRpcSettings = JsonRpcSettings()
    transfer: TransferSettings = TransferSettings()
    jobs: JobSettings = JobSettings()
    replication: ReplicationSettings = ReplicationSettings()
    # Policies declared here (the contract's shape, read by domain.policies.parse_policies): read-only over the
    # API, swapped in on reload (SIGHUP). Kept raw; `config_policies` reads them.
    policies: list[Any] = []
    health: HealthSettings = HealthSettings()
    alerts: AlertSettings = AlertSettings()
    state_dir: str = "/var/lib/zfsapi"
    source: str | None = None  # the config file these settings came from (set by load_settings)
    notices: tuple[str, ...] = ()  # old keys read or ignored (set by load_settings; logged at start)


class SettingsError(Exception):
    """One line: which key, what is wrong."""


def _env_tree(environ: Mapping[str, str]) -> dict[str, Any]:
    """ZFSAPI_SERVER__HTTP__PORT=9000 -> {"server": {"http": {"port": 9000}}} (values read as YAML scalars)."""
    tree: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key == "ZFSAPI_CONFIG":
            continue
        path = [part.lower() for part in key[len(ENV_PREFIX):].split("__")]
        if path[0] not in Settings.__struct_fields__:
            continue  # ZFSAPI_* variables of other tools (ZFSAPI_VENV, ZFSAPI_TESTHOST_*) are not settings
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SettingsError(f"{key}: conflicts with another ZFSAPI_* variable")
        node[path[-1]] = value
    return tree


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where: PyYAML's problem with its line and column (1-based), e.g. "line 3, column 9:
    expected ',' or ']', but got '<stream end>' (while parsing a flow sequence)"."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return str(exc).splitlines()[0]
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = exc.problem or exc.context or "malformed"
    return where + what + (f" ({exc.context})" if exc.context and exc.problem else "")


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read the config file (if any), apply ZFSAPI_* variables, then `overrides`. Raises SettingsError."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("ZFSAPI_CONFIG")
    data: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise SettingsError(f"config {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise SettingsError(f"config {path}: not valid YAML: {_yaml_problem(exc)}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise SettingsError(f"config {path}: the top level must be a mapping")
        data = loaded or {}
    data = _merge(_merge(data, _env_tree(environ)), dict(overrides or {}))
    data["notices"] = _old_keys(data)
    data["source"] = str(path) if path else None
    try:
        settings = msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        where = text.rsplit(" - at `$.", 1)
        if len(where) == 2:
            raise SettingsError(f"config key {where[1].rstrip('`')}: {where[0]}") from None
        raise SettingsError(f"config: {text}") from None
    _check(settings)
    return settings


def _old_keys(data: dict[str, Any]) -> list[str]:
    """Rewrite the old server's keys (in place) into their zfsapi meaning; one notice per key met."""
    notices = []
    server = data.get("server")
    if isinstance(server, dict):
        if "tcp" in server:
            del server["tcp"]
            notices.append("config key server.tcp ignored: the token socket is replaced by HTTP streams "
                           "(stream_init, then GET or POST /stream/{id})")
        unix = server.get("unix")
        if isinstance(unix, dict) and "enabled" in unix:
            if unix.pop("enabled") is False:
                unix["path"] = None
            notices.append("config key server.unix.enabled read: the Unix socket is "
                           + ("on (server.unix.path is set)" if unix.get("path") else "off"))
        if "workers" in server:
            # the old server's thread pool for zfs commands: zfsapi's cap on concurrent zfs children
            _move(data, server.pop("workers"), ("zfs", "max_concurrency"), 1024, notices, "server.workers")
    manager = data.pop("task_manager", None)
    if isinstance(manager, dict):
        for key in manager:
            if key == "migration_workers":
                _move(data, manager[key], ("jobs", "workers"), 64, notices, "task_manager.migration_workers")
            else:
                notices.append(f"config key task_manager.{key} ignored: zfsapi has no such setting")
    return notices


def _move(data: dict[str, Any], value: Any, to: tuple[str, str], most: int, notices: list[str], old: str) -> None:
    """An old count into its new key (unless that is set too), kept within the new key's bounds."""
    section = data.setdefault(to[0], {})
    if not isinstance(section, dict) or to[1] in section:
        notices.append(f"config key {old} ignored: {'.'.join(to)} is set")
        return
    if isinstance(value, int) and not isinstance(value, bool):
        section[to[1]] = min(max(value, 1), most)
        notices.append(f"config key {old} read as {'.'.join(to)}: {section[to[1]]}")
    else:
        notices.append(f"config key {old} ignored: {value!r} is not a whole number")


def _is_loopback_bind(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


def _is_password_hash(digest: str) -> bool:
    """An Argon2id hash argon2-cffi can read, or a bcrypt hash of the modular crypt form."""
    if digest.startswith("$argon2id$"):
        try:
            argon2.extract_parameters(digest)
        except argon2.exceptions.InvalidHashError:
            return False
        return True
    return _BCRYPT.fullmatch(digest) is not None


def _check(settings: Settings) -> None:
    s = settings
    if s.auth.passwordless_localhost and not _is_loopback_bind(s.server.http.host) \
            and not s.auth.allow_passwordless_with_public_bind:
        raise SettingsError(
            f"config key server.http.host: {s.server.http.host} is not a loopback address while "
            "auth.passwordless_localhost is on; set auth.allow_passwordless_with_public_bind: true to confirm"
        )
    if s.server.http.workers > 1 and not s.redis.host:
        raise SettingsError("config key server.http.workers: more than one worker needs redis.host, so that "
                            "sessions, revocations and rate limits are shared")
    if s.auth.secret_key is not None and len(s.auth.secret_key.encode()) < 32:
        raise SettingsError("config key auth.secret_key: shorter than 32 bytes; use 32 or more random bytes "
                            "(or remove it to have one generated into state_dir)")
    for d in s.transfer.directories:
        if not d.startswith("/") or d.rstrip("/") == "":
            raise SettingsError(f"config key transfer.directories: {d!r} must be an absolute directory other than /")
    for name, local in s.auth.local_users.items():
        for prefix in local.datasets:
            try:
                DatasetName.parse(prefix)
            except InvalidArgument as exc:
                raise SettingsError(f"config key auth.local_users.{name}.datasets: {prefix!r}: {exc.reason}") from None
    _check_replication(s.replication, s.server.http.port)
    config_policies(s)
    _check_health(s.health, s.alerts)
    for name, user in s.auth.users.items():
        for prefix in [] if isinstance(user, str) else user.datasets:
            try:
                DatasetName.parse(prefix)
            except InvalidArgument as exc:
                raise SettingsError(f"config key auth.users.{name}.datasets: {prefix!r}: {exc.reason}") from None
        digest = user if isinstance(user, str) else user.password_hash
        if not _is_password_hash(digest):
            raise SettingsError(f"config key auth.users.{name}: not a well-formed Argon2id or bcrypt hash "
                                "(make one with `zfsapi hash-password`)")


def config_policies(settings: Settings) -> tuple[Policy, ...]:
    """The `policies:` of the configuration, every target's remote a replication.remotes name. Raises
    SettingsError naming the key path, e.g. `config key policies[0].retention.daily: ...`."""
    try:
        return parse_policies(settings.policies, remotes=tuple(settings.replication.remotes))
    except InvalidArgument as exc:
        raise SettingsError(f"config key {exc.param}: {exc.reason}") from None
def _check_health(h: HealthSettings, a: AlertSettings) -> None:
    c = h.capacity
    if not c.warning < c.critical < c.full:
        raise SettingsError("config key health.capacity: needs warning < critical < full")
    if h.scrub_schedule is not None:
        try:
            Schedule.parse(h.scrub_schedule, "UTC", param="health.scrub_schedule")
        except InvalidArgument as exc:
            raise SettingsError(f"config key health.scrub_schedule: {exc.reason}") from None
    for i, hook in enumerate(a.webhooks):
        url = urlsplit(hook.url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise SettingsError(f"config key alerts.webhooks[{i}].url: must be an http or https URL with a host")
        for kind in hook.kinds:
            if kind not in ALERT_KINDS:
                raise SettingsError(f"config key alerts.webhooks[{i}].kinds: {kind!r} is not an alert kind "
                                    f"({', '.join(ALERT_KINDS)})")


_SSH_OPTION = re.compile(r"[A-Za-z][A-Za-z0-9]*[= ]\S.*")


def _check_replication(r: ReplicationSettings, port: int) -> None:
    for option in r.ssh_options:
        _check_ssh_option("replication.ssh_options", option)
    seen: dict[Remote, str] = {}
    for name, entry in r.remotes.items():
        key = f"replication.remotes.{name}"
        if not REMOTE_NAME.fullmatch(name):
            raise SettingsError(f"config key {key}: not a remote name (1-63 letters, digits, '_' and '-', starting "
                                "with a letter, ending with a letter or digit); the URL or ssh string goes in `url` "
                                "or `ssh`")
        remote = _listed_remote(key, entry)
        if entry.url is not None and entry.ssh is None and (entry.username or entry.token) and remote.on_this_host \
                and port == (remote.port or (443 if remote.scheme == "https" else 80)):
            # every caller allowed to migrate would act here as the user these credentials name
            raise SettingsError(f"config key {key}: {remote.url} is this server (server.http.port): list it "
                                "without credentials, so that a migration to it runs with the caller's own rights")
        if remote in seen:
            raise SettingsError(f"config key {key}: {remote} is listed already, as {seen[remote]}")
        seen[remote] = name


def _check_ssh_option(key: str, option: str) -> None:
    if not _SSH_OPTION.fullmatch(option) or any(c in option for c in "\n\r\0"):
        raise SettingsError(f"config key {key}: {option!r} is not an ssh -o option (Name=value)")


def _listed_remote(key: str, entry: RemoteSettings) -> Remote:
    """The validated remote of one replication.remotes entry. Raises SettingsError naming its key."""
    if (entry.url is None) == (entry.ssh is None):
        raise SettingsError(f"config key {key}: give either url (another zfsapi) or ssh (user@host)")
    field = "url" if entry.url is not None else "ssh"
    try:
        remote = Remote.parse(entry.url or entry.ssh or "", field)
    except InvalidArgument as exc:
        raise SettingsError(f"config key {key}.{field}: {exc.reason}") from None
    if entry.ssh is not None:
        if remote.kind is not RemoteKind.SSH:
            raise SettingsError(f"config key {key}.ssh: not user@host or host")
        if entry.username is not None or entry.password is not None or entry.token is not None:
            raise SettingsError(f"config key {key}: an SSH remote takes no username, password or token (ssh keys)")
        for option in entry.options:
            _check_ssh_option(f"{key}.options", option)
        return remote
    if remote.kind is not RemoteKind.HTTP:
        raise SettingsError(f"config key {key}.url: not an http(s):// URL")
    if entry.options:
        raise SettingsError(f"config key {key}.options: ssh options are for an SSH remote")
    if (entry.username is None) != (entry.password is None) or (entry.token is not None
                                                                  and entry.username is not None):
        raise SettingsError(f"config key {key}: give username and password, or token")
    if entry.username is None and entry.token is None and not remote.on_this_host:
        raise SettingsError(f"config key {key}: {remote.url} needs a username and password or a token (only a "
                            "loopback URL, this server, may go without: it is called with the caller's own token)")
    return remote
