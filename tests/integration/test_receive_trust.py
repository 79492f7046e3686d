"""What a received stream may decide, on real ZFS: a stream sent with -p carries mountpoint, sharenfs and setuid;
received for anyone but an unrestricted admin it does not mount where it says and does not set setuid/devices
(they inherit from the target's parent, here setuid=off as an admin would set a scope's root); a trusted (admin)
receive keeps what the stream says. Volumes take the same options."""

from __future__ import annotations

import subprocess

from tests.integration.conftest import zfs
from zfsapi.adapters.outbound.zfs.executor import ZfsExecutor
from zfsapi.adapters.outbound.zfs.pipelines import ZfsPipelines
from zfsapi.domain.names import DatasetName
from zfsapi.domain.transfer import ReceiveSpec


def get(prop: str, name: str) -> tuple[str, str]:
    value, source = zfs("zfs", "get", "-H", "-o", "value,source", prop, name).stdout.strip().split("\t")
    return value, source


async def receive(stream: bytes, target: str, trusted: bool) -> str | None:
    pipe = await ZfsPipelines(ZfsExecutor()).open_receive(ReceiveSpec(DatasetName.parse(target), trusted=trusted))
    for i in range(0, len(stream), 1 << 20):
        await pipe.write(stream[i:i + (1 << 20)])
    return await pipe.finish()


def send_p(snapshot: str) -> bytes:
    return subprocess.run(["zfs", "send", "-p", snapshot], capture_output=True, check=True, timeout=600).stdout


async def test_an_untrusted_receive_ignores_the_streams_mount_properties(dataset):
    source = f"{dataset}/evil"
    zfs("zfs", "set", "setuid=off", "devices=off", dataset)  # the scope's root, as an admin keeps it
    zfs("zfs", "create", "-o", "mountpoint=/etc-zfsapi-evil", "-o", "setuid=on", "-o", "devices=on", source)
    zfs("zfs", "snapshot", f"{source}@s")
    stream = send_p(f"{source}@s")

    confined = f"{dataset}/confined"
    assert await receive(stream, confined, trusted=False) == f"{confined}@s"
    value, where = get("mountpoint", confined)
    # the parent's mountpoint is the default one, so is the received one's: under the pool's altroot, at its name
    assert (where, value.endswith("/" + confined)) == ("default", True), (value, where)
    assert get("setuid", confined) == ("off", f"inherited from {dataset}")
    assert get("devices", confined) == ("off", f"inherited from {dataset}")

    kept = f"{dataset}/kept"
    assert await receive(stream, kept, trusted=True) == f"{kept}@s"
    assert get("mountpoint", kept)[0].endswith("/etc-zfsapi-evil")
    assert get("setuid", kept)[0] == "on"
    zfs("zfs", "destroy", "-r", kept)  # before the dataset fixture: it shares the evil mountpoint


async def test_an_untrusted_receive_of_a_volume(dataset):
    volume = f"{dataset}/vol"
    zfs("zfs", "create", "-s", "-V", "16M", volume)
    zfs("zfs", "snapshot", f"{volume}@s")
    target = f"{dataset}/vol-copy"
    assert await receive(send_p(f"{volume}@s"), target, trusted=False) == f"{target}@s"
    assert get("type", target)[0] == "volume"
