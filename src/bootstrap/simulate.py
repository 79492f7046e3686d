"""`zfsapi serve --simulate`: the whole API over a simulated ZFS in memory (zfsapi.adapters.outbound.simulated:
the answers the contract suites hold real OpenZFS to), for trying zfsapi and for client developers on a machine
without ZFS. Never chosen silently: only the flag selects it, and the server says so in its first warning, in
/health (`"simulated": true`) and on every log line. Nothing of it outlives the process: the pools, and the job
store and keys, which live in a temporary state directory removed at exit."""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import tempfile
from typing import Any, Mapping

import msgspec
from dependency_injector import providers

from zfsapi.adapters.outbound.simulated.host import POOLS, SimulatedHost, seeded_host
from zfsapi.adapters.outbound.simulated.policy_ops import SimulatedPolicyOps
from zfsapi.application.policy_ports import PolicyZfs
from zfsapi.application.ports import Bookmarks, Datasets, Pipelines, Pools, Snapshots, Transfers

from .containers import Container
from .settings import LocalUserSettings, Settings

WARNING = ("SIMULATED ZFS: pools {pools} live in this process's memory and are lost at exit; no real pool is "
           "read or changed; one process, no Redis; jobs and keys are kept in {state_dir}, removed at exit")


def simulated_overrides(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """`overrides` plus what a simulated server needs: a temporary state directory (removed at exit), no Redis
    (a shared job store would let this server run real servers' jobs on its simulated pools) and one process (the
    simulated pools live in it)."""
    state_dir = tempfile.mkdtemp(prefix="zfsapi-simulated-")
    atexit.register(shutil.rmtree, state_dir, ignore_errors=True)
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in (overrides or {}).items()}
    server = out.setdefault("server", {})
    server["http"] = {**server.get("http", {}), "workers": 1}
    out["state_dir"] = state_dir
    out["redis"] = {**out.get("redis", {}), "host": None}
    return out


def with_starting_user(settings: Settings) -> Settings:
    """`settings` where the user who started the simulated server may call it from this machine without a token,
    as an admin (as root may call a real one: nothing real is at stake here), unless auth.local_users names that
    user already. Every other local user stays as configured (auth.passwordless_localhost still applies)."""
    uid = os.getuid()
    names = {str(uid)}
    try:
        names.add(pwd.getpwuid(uid).pw_name)
    except KeyError:
        pass
    if names & set(settings.auth.local_users):
        return settings
    users = {**settings.auth.local_users, str(uid): LocalUserSettings(role="admin")}
    return msgspec.structs.replace(settings, auth=msgspec.structs.replace(settings.auth, local_users=users))


def simulate(container: Container) -> SimulatedHost:
    """Put a seeded simulated host at the container's ZFS ports (the one-shot ports and the pipelines; gzip and zstd
    for send files still run through the executor) and mark the HTTP answers as simulated."""
    host = seeded_host(container.executor())
    # typed as the ports they fill: mypy holds the simulation to every port the real gateway and pipelines fill
    one_shot: tuple[Datasets, Snapshots, Bookmarks, Pools, Transfers] = (host, host, host, host, host)
    pipelines: Pipelines = host.streams
    container.zfs.override(providers.Object(one_shot[0]))
    container.pipelines.override(providers.Object(pipelines))
    # the policy engine's ZFS: never the real one under a simulation
    policy_ops: PolicyZfs = SimulatedPolicyOps(host)
    container.policy_zfs.override(providers.Object(policy_ops))
    container.http_options.add_kwargs(simulated=True)
    return host


def warning(settings: Settings) -> str:
    """The line a simulated server starts with."""
    return WARNING.format(pools=" and ".join(POOLS), state_dir=settings.state_dir)


def missing_binaries(settings: Settings) -> list[str]:
    """The configured zfs and zpool commands that cannot be found (a machine without ZFS)."""
    return [b for b in (settings.zfs.zfs, settings.zfs.zpool) if shutil.which(b) is None]
