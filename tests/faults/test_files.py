"""Drills on the send files' disk: a full disk and a read-only transfer directory answer -32013 naming the file as
the caller named it and the OS's reason, in the foreground and in a job, and leave no file; a SIGKILLed server's
hidden partial file is removed when a server starts again."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from .conftest import FakeZfs, Serve, base_config, need_root, wait_for


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs mounted for the drill (a transfer directory that fills up at once)."""
    need_root("mounting a tmpfs")
    where = tmp_path / "small"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(where)], check=True)
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def _refused(s: Serve, name: str, background: bool) -> dict[str, Any]:
    """send_to_file of 1 MiB to `name`: the error, of the call or of its job."""
    body = s.rpc("send_to_file", dataset="tank/a b", snapshot="s:1", output_file=name, background=background)
    if not background or "error" in body:
        assert "error" in body, body
        return body["error"]  # type: ignore[no-any-return]
    record = s.call("job_wait", job_id=body["result"]["job_id"], timeout=60)
    assert record["state"] == "failed", record
    return record["error"]  # type: ignore[no-any-return]


def _check(error: dict[str, Any], name: str, errno_name: str, words: str) -> None:
    assert error["code"] == -32013, error
    data = error["data"]
    assert (data["param"], data["path"], data["errno"]) == ("output_file", name, errno_name), error
    assert words in data["reason"] and name in error["message"], error


def test_full_disk_and_read_only_directory_name_the_file_and_leave_nothing(tmp_path: Path, fake: FakeZfs,
                                                                         small_disk: Path) -> None:
    fake.set(send_bytes=1 << 20)
    with Serve(tmp_path, base_config(tmp_path, fake, small_disk)).start() as s:
        for background in (False, True):
            _check(_refused(s, f"full-{background}.zfs", background), f"full-{background}.zfs", "ENOSPC",
                   "No space left")
            name = f"./sub/../gz-{background}.zfs".replace("sub/../", "")  # as given, not as resolved
            _check(_refused(s, name, background), name, "ENOSPC", "No space left")
            assert os.listdir(small_disk) == []  # no partial file, no final file
        fake.set(send_bytes=1000)
        assert s.call("send_to_file", dataset="tank/a b", snapshot="s:1", output_file="fits.zfs")["size_bytes"] == 1000
        (small_disk / "fits.zfs").unlink()
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
        for background in (False, True):
            _check(_refused(s, f"ro-{background}.zfs", background), f"ro-{background}.zfs", "EROFS", "Read-only")
        assert os.listdir(small_disk) == []
        assert s.call("job_list")["total"] == 3  # the three jobs, failed; the server answers on


def test_a_killed_servers_partial_file_is_removed_at_start_and_nothing_else(tmp_path: Path, fake: FakeZfs,
                                                                           transfer_dir: Path) -> None:
    fake.set(send_bytes=64 << 20, send_seconds=120)
    config = base_config(tmp_path, fake, transfer_dir)
    s = Serve(tmp_path, config).start()
    try:
        job_id = s.call("send_to_file", dataset="tank/a", snapshot="s1", output_file="big.zfs",
                        background=True)["job_id"]
        partial = wait_for("the partial file appears", lambda: [p for p in transfer_dir.iterdir()
                                                                 if p.name.startswith(".big.zfs.partial-")])
        s.kill()  # SIGKILL to the server and its children: nothing tidies up
    finally:
        s.stop()
    assert partial[0].exists()
    # what is not ours stays: other hidden files, a look-alike with a wrong tail, a file someone holds open
    keep = [transfer_dir / ".notes", transfer_dir / ".big.zfs.partial-XYZ", transfer_dir / ".x.partial-0123abcd.old"]
    for path in keep:
        path.write_text("mine")
    held = transfer_dir / ".held.zfs.partial-89abcdef"
    held.write_text("open elsewhere")
    os.utime(held, (0, 0))
    with open(held, "rb"):
        again = Serve(tmp_path, config, name="again").start()
        try:
            wait_for("the partial file is removed", lambda: not partial[0].exists())
            assert all(p.exists() for p in keep) and held.exists()
            record = wait_for("the killed job is interrupted", lambda: (r := again.job(job_id))["state"] != "running"
                              and r)
            assert record["state"] == "interrupted", record
        finally:
            again.stop()
