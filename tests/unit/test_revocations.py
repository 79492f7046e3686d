"""Revocation without Redis survives a restart: auth_logout and the all_sessions mark are written to a SQLite file
under state_dir and read back by the next process (here: a new container on the same state_dir)."""

from __future__ import annotations

import os
import sqlite3
import stat
import time

from tests.conftest import http_client
from tests.unit.test_auth import REMOTE, call, login, make_container
from zfsapi.adapters.outbound.state.sqlite.revocations import FILE, EmbeddedRevocations
from zfsapi.bootstrap.lifecycle import http_app



async def _pool_list(app, token: str) -> dict:
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:
        return (await call(c, "pool_list", token=token)).json()


async def test_a_logout_survives_a_restart(tmp_path):
    first = http_app(make_container(tmp_path))
    async with http_client(first, peer=REMOTE, host="zfs.example") as c:
        revoked, kept = await login(c, "viewer"), await login(c, "viewer")
        assert (await call(c, "auth_logout", token=revoked)).json()["result"]
    restarted = http_app(make_container(tmp_path))
    assert (await _pool_list(restarted, revoked))["error"]["code"] == -32002
    assert "result" in await _pool_list(restarted, kept)
    assert stat.S_IMODE(os.stat(tmp_path / FILE).st_mode) == 0o600


async def test_all_sessions_survives_a_restart(tmp_path):
    first = http_app(make_container(tmp_path))
    async with http_client(first, peer=REMOTE, host="zfs.example") as c:
        a, b = await login(c, "viewer"), await login(c, "viewer")
        assert (await call(c, "auth_logout", {"all_sessions": True}, token=a)).json()["result"]
    restarted = http_app(make_container(tmp_path))
    for token in (a, b):
        assert (await _pool_list(restarted, token))["error"]["code"] == -32002
    async with http_client(restarted, peer=REMOTE, host="zfs.example") as c:
        fresh = await login(c, "viewer")  # issued after the mark: valid
    assert "result" in await _pool_list(restarted, fresh)


async def test_rows_expire_with_the_tokens(tmp_path):
    store = EmbeddedRevocations(str(tmp_path))
    await store.revoke("short", 0.05)
    await store.revoke("long", 3600)
    await store.revoke_before("bob", 100.0, 3600)
    await store.revoke_before("bob", 50.0, 3600)  # an older mark never replaces a newer one
    deadline = time.monotonic() + 30
    while (await store.state("short", "x"))[0]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    store.close()
    again = EmbeddedRevocations(str(tmp_path))
    assert await again.state("long", "bob") == (True, 100.0)
    assert await again.state("short", "bob") == (False, 100.0)
    again.close()
    with sqlite3.connect(tmp_path / FILE) as db:
        keys = {k for (k,) in db.execute("SELECT key FROM revocations")}
    assert keys == {"jti:long", "nbf:bob"}  # the expired row was deleted on load


async def test_without_users_or_key_nothing_is_written(tmp_path):
    from zfsapi.bootstrap.containers import build_container
    from zfsapi.bootstrap.settings import load_settings
    settings = load_settings(None, environ={}, overrides={"state_dir": str(tmp_path / "state")})
    c = build_container(settings)
    assert type(c.revocations()).__name__ == "MemoryRevocations"
    assert not (tmp_path / "state").exists()
