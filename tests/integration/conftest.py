"""Real OpenZFS fixtures: a session-scoped pool on a sparse file (unique name, temporary altroot), destroyed at
the end even after failures, and a per-test dataset with an awkward name.

These run where ZFS is usable (root, /dev/zfs, zfs binaries): on this machine directly, or inside the
scripts/zfs-testhost guest, which `scripts/test` drives. In CI (CI=true) missing ZFS fails; elsewhere it skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from typing import Iterator

import pytest

from tests.conftest import Rpc, http_client
from zfsapi.bootstrap import build_container, load_settings
from zfsapi.bootstrap.lifecycle import http_app

ENABLE_HINT = "run scripts/test (it boots scripts/zfs-testhost), or run pytest as root where the zfs module is loaded"


def zfs_unusable_reason() -> str | None:
    if shutil.which("zfs") is None or shutil.which("zpool") is None:
        return "no zfs/zpool binaries"
    if not os.path.exists("/dev/zfs"):
        return "the zfs kernel module is not loaded (/dev/zfs missing)"
    if os.geteuid() != 0:
        return "not root"
    return None


def zfs(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=600)


def zfs_version() -> str:
    """The running OpenZFS release, e.g. "2.1.11" (answers differ between releases in small ways)."""
    out = zfs("zfs", "version").stdout
    return out.split("\n", 1)[0].removeprefix("zfs-").split("-", 1)[0]


@contextmanager
def file_pools(prefix: str, count: int, size: int) -> Iterator[list[str]]:
    """`count` pools on sparse files of `size` bytes (unique names, a temporary altroot), destroyed at the end
    even after failures. Fails in CI and skips elsewhere when ZFS is not usable."""
    reason = zfs_unusable_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"real ZFS is required in CI: {reason}; {ENABLE_HINT}")
        pytest.skip(f"real ZFS not available ({reason}); {ENABLE_HINT}")
    workdir = tempfile.mkdtemp(prefix="zfsapi-it-", dir="/var/tmp")
    names = [f"{prefix}{uuid.uuid4().hex[:8]}" for _ in range(count)]
    try:
        for name in names:
            os.mkdir(os.path.join(workdir, name))
            image = os.path.join(workdir, name, "pool.img")  # the vdev's name, as pool_status reports it
            with open(image, "wb") as f:
                f.truncate(size)
            zfs("zpool", "create", "-o", "cachefile=none", "-R", os.path.join(workdir, "root"), name, image)
        yield names
    finally:
        for name in names:
            zfs("zpool", "destroy", "-f", name, check=False)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def pool():
    with file_pools("zt", 1, 1 << 30) as (name,):
        yield name


@pytest.fixture
def dataset(pool):
    """A fresh filesystem with spaces, colons and dots in its name, destroyed with everything under it."""
    name = f"{pool}/it {uuid.uuid4().hex[:6]}:x.y"
    zfs("zfs", "create", name)
    yield name
    clones = zfs("zfs", "list", "-H", "-o", "name,origin", "-t", "filesystem,volume", "-r", pool).stdout
    for line in clones.splitlines():
        clone, origin = line.split("\t")
        if origin.startswith(name + "@") or origin.startswith(name + "/"):
            zfs("zfs", "destroy", "-R", clone, check=False)
    zfs("zfs", "release", "-r", "keep", f"{name}@s1", check=False)
    zfs("zfs", "destroy", "-R", name, check=False)


@pytest.fixture
def real_container(pool):
    return build_container(load_settings(environ={}))


@pytest.fixture
async def real_client(real_container):
    async with http_client(http_app(real_container)) as c:
        yield c


@pytest.fixture
def rpc(real_client) -> Rpc:
    return Rpc(real_client)


def mountpoint(name: str) -> str:
    return zfs("zfs", "get", "-H", "-o", "value", "mountpoint", name).stdout.strip()


@pytest.fixture(scope="session")
def ssh_options(pool) -> Iterator[list[str]]:
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.fail("the OpenSSH client (ssh, ssh-keygen) is missing in the test host")
    tmp = tempfile.mkdtemp(prefix="zfsapi-ssh-")
    key = os.path.join(tmp, "id_ed25519")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "zfsapi-test", "-f", key], check=True)
    line = open(key + ".pub").read().strip()
    authorized = "/root/.ssh/authorized_keys"
    with open(authorized, "a") as f:
        f.write("\n" + line + "\n")
    try:
        yield [f"IdentityFile={key}", "IdentitiesOnly=yes", f"UserKnownHostsFile={tmp}/known_hosts",
               "StrictHostKeyChecking=accept-new"]
    finally:
        kept = [x for x in open(authorized).read().split("\n") if x.strip() and x.strip() != line]
        with open(authorized, "w") as f:
            f.write("\n".join(kept) + "\n")
        shutil.rmtree(tmp, ignore_errors=True)


def zfs_processes(verb: str, name: str) -> list[int]:
    """Pids of running `zfs VERB ... NAME` processes (a send's -n estimates left out), read from /proc: fast
    enough to catch a transfer of a few MiB in the act. argv[0] may be a full path (posix_spawn)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if (len(argv) > 2 and argv[0].rsplit(b"/", 1)[-1] == b"zfs" and argv[1] == verb.encode()
                and name.encode() in argv and not any(a.startswith(b"-n") for a in argv)):
            found.append(int(pid))
    return found
