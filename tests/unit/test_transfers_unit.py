"""Send/receive pieces without ZFS: send flags, the path rule, parsers on captured OpenZFS 2.3.2 output, stream
sessions in memory (single use, expiry), the stream routes' refusals."""

from __future__ import annotations

import time

import pytest

from tests.conftest import http_client
from zfsapi.adapters.inbound.http.app import create_app
from zfsapi.adapters.outbound.sessions.memory import MemoryStreamSessions
from zfsapi.adapters.outbound.zfs import commands, parsers
from zfsapi.adapters.outbound.zfs.streams import PIPE_SIZE, make_pipe, pipe_size, received_snapshot
from zfsapi.domain.errors import InvalidArgument
from zfsapi.domain.names import BookmarkName, SnapshotName
from zfsapi.domain.transfer import Compression, Operation, SendSpec, StreamSession, StreamState, confine, size_human

# captured from OpenZFS 2.3.2 (zfs-testhost): `zfs send -nvP -L -e -c tp/a@s1` and `zfs send -nvt TOKEN`
SEND_NVP = "full\ttp/a@s1\t4215664\nsize\t4215664\n"
TOKEN_NVT = """resume token contents:
nvlist version: 0
\tobject = 0x2
\toffset = 0x1c0000
\tbytes = 0x1e1c48
\ttoguid = 0xf6f43f49d26396d
\ttoname = tp/a@s1
\tembedok = 1
\tcompressok = 1
full send of tp/a@s1 estimated size is 2.14M
total estimated size is 2.14M
"""


def test_send_flags_and_argv():
    spec = SendSpec(SnapshotName.parse("tank/a@s2"), BookmarkName.parse("tank/a#b1"))
    assert commands.send(spec) == ["zfs", "send", "-L", "-e", "-c", "-i", "tank/a#b1", "tank/a@s2"]
    assert commands.send(spec, dry_run=True)[:5] == ["zfs", "send", "-n", "-v", "-P"]
    raw = SendSpec(SnapshotName.parse("tank/a@s2"), raw=True, native_compressed=False, recursive=True)
    assert raw.flags() == ["-L", "-e", "-w", "-R"]
    with pytest.raises(InvalidArgument):
        SendSpec(SnapshotName.parse("tank/a@s2"), BookmarkName.parse("tank/a#b"), recursive=True)
    assert commands.receive(SnapshotName.parse("t/a@x").dataset, force=True, resumable=True) == \
        ["zfs", "receive", "-v", "-s", "-F", "t/a"]


def test_parsers_on_captured_output():
    assert parsers.send_size(SEND_NVP) == 4215664
    assert parsers.send_size("incremental\ts1\tt/a@s2\t18446744073709551615\nsize\t18446744073709551615\n") \
        == 2**64 - 1  # unsigned 64-bit
    token = parsers.resume_token(TOKEN_NVT)
    assert token.toname == "tp/a@s1" and token.toguid == 0xF6F43F49D26396D and token.bytes_done == 0x1E1C48
    assert token.compressed and not token.raw and token.fromguid is None
    assert received_snapshot("receiving full stream of tp/a@s1 into tp/b c@s1\n") == "tp/b c@s1"


@pytest.mark.parametrize("path, ok", [
    ("x.zfs", "/srv/xfer/x.zfs"), ("/srv/xfer/sub/x.zfs", "/srv/xfer/sub/x.zfs"), ("/srv/other/y", "/srv/other/y"),
    ("../x", None), ("/srv/xfer/../etc/passwd", None), ("/etc/passwd", None), ("/srv/xfer", None),
    ("/srv/xferx/y", None), ("", None), ("a\0b", None),
])
def test_confine(path, ok):
    roots = ("/srv/xfer", "/srv/other")
    if ok is None:
        with pytest.raises(InvalidArgument):
            confine(path, roots, "output_file")
    else:
        assert confine(path, roots, "output_file")[1] == ok
    with pytest.raises(InvalidArgument, match="transfer.directories"):
        confine("x", (), "output_file")


def test_misc():
    assert Compression.by_suffix("a.zfs.gz") is Compression.GZIP and Compression.by_suffix("a.zst") is Compression.ZSTD
    assert size_human(512) == "512B" and size_human(3 << 20) == "3.00M"
    r, w = make_pipe()
    assert pipe_size(w) == PIPE_SIZE


async def test_memory_sessions_are_single_use_and_expire():
    store = MemoryStreamSessions()
    now = time.time()
    s = StreamSession("a" * 32, Operation.SEND, "u", now, now + 60)
    await store.create(s, 120)
    claimed = await store.claim(s.stream_id, now)
    assert claimed is not None and claimed.state is StreamState.ACTIVE
    assert await store.claim(s.stream_id, now) is None
    late = StreamSession("b" * 32, Operation.SEND, "u", now, now + 1)
    await store.create(late, 120)
    assert await store.claim(late.stream_id, now + 2) is None
    assert (await store.get(late.stream_id)).effective_state(now + 2) is StreamState.EXPIRED
    updated = await store.update(s.stream_id, state="done", bytes=10)
    assert updated.state is StreamState.DONE and updated.bytes == 10


async def test_stream_routes_refuse_before_touching_zfs(container):
    app = create_app(container)
    async with http_client(app) as c:
        assert (await c.get("/stream/" + "0" * 32)).status_code == 404
        assert (await c.get("/stream/../etc")).status_code == 404
        r = await c.post("/stream/" + "0" * 32, content=b"x", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        assert (await c.get("/stream/" + "0" * 32, headers={"Host": "evil.example"})).status_code == 421
        assert (await c.put("/stream/" + "0" * 32)).status_code == 405
