"""The audit trail: a line for every change (ran, refused or failed), login and logout; none for reads; names
only, never a password or a property value."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest

from tests.conftest import http_client
from tests.unit.test_auth import PASSWORDS, REMOTE, call, fake, login, make_container  # noqa: F401 (fixture)
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.bootstrap.logs import JsonFormatter, json_file_handler


@pytest.fixture
def trail(caplog):
    caplog.set_level(logging.INFO, logger="zfsapi.audit")

    def lines() -> list[dict]:
        return [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "zfsapi.audit"]
    return lines


async def test_changes_are_audited_reads_are_not(tmp_path, fake, trail):
    app = http_app(make_container(tmp_path, fake))
    async with http_client(app) as c:  # a local root caller over loopback TCP
        await call(c, "pool_list")
        await call(c, "dataset_create", {"dataset": "tank/new", "properties": {"com.example:secret": "v4lue"}})
        await call(c, "dataset_destroy", {"dataset": "tank/missing"})
    entries = trail()
    assert [e["method"] for e in entries] == ["dataset_create", "dataset_destroy"]
    ok, failed = entries
    assert ok["principal"] == "root" and ok["auth"] == "tcp uid 0" and ok["peer"] == "127.0.0.1"
    assert ok["targets"] == ["tank/new"] and ok["outcome"] == "ok" and ok["code"] is None
    assert failed["outcome"] == "failed" and failed["code"] == -32010 and failed["targets"] == ["tank/missing"]
    assert "v4lue" not in json.dumps(entries)


async def test_refusals_and_bad_params_are_audited_with_their_code(tmp_path, fake, trail):
    app = http_app(make_container(tmp_path, fake))
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:
        token = await login(c, "scoped")
        await call(c, "dataset_create", {"dataset": "tank/b/out"}, token=token)
        await call(c, "dataset_create", {"dataset": "tank/a/../x", "parents": "yes"}, token=token)
        await call(c, "dataset_create", {"dataset": "tank/x"})  # no token from a remote peer
    login_, refused, invalid, anonymous = trail()
    assert login_["method"] == "auth_login" and login_["username"] == "scoped" and login_["outcome"] == "ok"
    assert refused["code"] == -32004 and refused["principal"] == "scoped" and refused["auth"] == "token"
    assert invalid["code"] == -32602 and invalid["targets"] == ["tank/a/../x"] and invalid["outcome"] == "refused"
    assert anonymous["code"] == -32001 and anonymous["principal"] is None and anonymous["auth"] == "none"


async def test_logins_that_fail_are_audited_without_the_password(tmp_path, trail):
    app = http_app(make_container(tmp_path))
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:
        await call(c, "auth_login", {"username": "viewer", "password": "wrong-" + PASSWORDS["viewer"]})
        token = await login(c, "viewer")
        await call(c, "auth_logout", token=token)
    failed, ok, logout = trail()
    assert failed["code"] == -32003 and failed["username"] == "viewer" and failed["peer"] == REMOTE
    assert ok["outcome"] == "ok" and logout["method"] == "auth_logout" and logout["principal"] == "viewer"
    text = json.dumps(trail())
    assert PASSWORDS["viewer"] not in text and token not in text


def test_the_audit_file_is_private_and_written_off_the_loop(tmp_path):
    path = tmp_path / "audit.log"
    handler = json_file_handler(str(path))
    logger = logging.getLogger("zfsapi.audit.test")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        logger.info("dataset_create", extra={"audit": True, "targets": ["tank/x"]})
    finally:
        logger.removeHandler(handler)
        handler.listener.stop()  # the writer thread drains the queue before it stops
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    (line,) = path.read_text().splitlines()
    entry = json.loads(line)
    assert entry["msg"] == "dataset_create" and entry["targets"] == ["tank/x"]


def test_log_lines_carry_no_colour_escapes():
    record = logging.makeLogRecord({"name": "uvicorn.error", "msg": "Started server process [%d]", "args": (7,),
                                    "color_message": "Started server process [\x1b[36m%d\x1b[0m]", "levelname": "INFO"})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["msg"] == "Started server process [7]" and "color_message" not in entry
    assert "\x1b" not in JsonFormatter().format(record)
