"""Remotes are named in config (replication.remotes): the allow-list, strict host syntax, credentials on every
outgoing call, and a migration to this same server that runs with the caller's own rights (issue 22, class 1)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import jwt
import pytest
import yaml
from argon2 import PasswordHasher
from dependency_injector import providers

from tests.conftest import http_client
from tests.fakes import FakeZfs
from tests.unit.test_replication import World
from zfsapi.adapters.outbound.state.memory.jobs import MemoryJobStore
from zfsapi.adapters.outbound.replicas.http import HttpReplica, _Error, remote_error
from zfsapi.adapters.outbound.replicas.sides import RemoteConfig, ReplicaSides, Secret
from zfsapi.adapters.outbound.replicas.ssh import SshReplica
from zfsapi.adapters.outbound.zfs.executor import ZfsExecutor
from zfsapi.bootstrap import build_container, load_settings
from zfsapi.bootstrap.containers import remote_config
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.bootstrap.security import signing_key
from zfsapi.bootstrap.service import Reloader
from zfsapi.bootstrap.settings import SettingsError
from zfsapi.domain.authz import LOCALHOST, Principal, Role
from zfsapi.domain.errors import InvalidArgument, PermissionDenied, StateConflict, ZfsUnavailable
from zfsapi.domain.names import DatasetName
from zfsapi.domain.replication import NamedRemote, Remote, RemoteBook, RemoteKind, ReplicationSpec

FAST = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
OP = Principal("op", Role.OPERATOR, ("tank/backups",))
SCOPED_ADMIN = Principal("sadm", Role.ADMIN, ("tank/backups",))
ADMIN = Principal("adm", Role.ADMIN)

# ---- host syntax: nothing a shell, ssh or a URL parser could read another way ----

HOSTILE = [
    "fe80::1%$(id)", "fe80::1%;id;", "root@fe80::1%`id`", "root@fe80::1%$(id)", "fe80::1%eth0;id", "fe80::1%",
    "fe80::1%eth0/64", "127.0.0.1%lo", "-oProxyCommand=x", "root@-oProxyCommand=x", "-l root", "host;id",
    "host|id", "host&id", "$(id)", "`id`", "host$IFS", "a'b", 'a"b', "a\\b", "host\n", "host\nid", "root@host\n",
    "\nhost", "host\r", "host\t", "ho st", "host\x00", "hóst", "host\u200b", "ｈost", "١٢٧.0.0.1", "127.1",
    "0x7f000001", "2130706433", "0177.0.0.1", "root@@host", "@host", "root@", "", "x" * 301, "host.-bad",
    "-host", "host-", "ROOT@host", "root:x@host", "root@host:22", "[::1]", "root@[::1]",
    "http://user:pw@host:1", "http://user@host:1", "http://host:1/path", "http://host:1?x=1", "http://host:1#f",
    "http://host:1/?", "http://host:0", "http://host:65536", "http://host:+80", "http://host:1\n",
    "http://host:1 ", "ftp://host", "file:///etc/passwd", "gopher://host:70", "http://[fe80::1%25eth0]:8545",
    "http://[fe80::1%eth0]:8545", "http://host:1:2", "http://-host:1", "http://host_x:1", "http://[::1",
    "http://::1:8545", "http://host\\@evil:1", "http://[127.0.0.1]:1", "http://127.1:8545", "http://0x7f000001:1",
    "http://hóst:1", "http://host%2F:1", "http://", "http:///x", "//host:1", "HTTP://host:1",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_a_hostile_remote_is_refused_naming_remote(text: str) -> None:
    with pytest.raises(InvalidArgument) as bad:
        Remote.parse(text)
    assert bad.value.param == "remote"
    with pytest.raises(InvalidArgument) as bad:  # the same through migration_create's params
        ReplicationSpec.parse(source="tank/a@s1", destination="backup/x", remote=text)
    assert bad.value.param == "remote"


@pytest.mark.parametrize(("text", "kind", "shown"), [
    ("nas.example", RemoteKind.SSH, "nas.example"),
    ("NAS.Example.", RemoteKind.SSH, "nas.example."),
    ("backup@nas.example", RemoteKind.SSH, "backup@nas.example"),
    ("root@127.0.0.1", RemoteKind.SSH, "root@127.0.0.1"),
    ("root@fe80::1%eth0", RemoteKind.SSH, "root@fe80::1%eth0"),
    ("root@fe80::1%2", RemoteKind.SSH, "root@fe80::1%2"),
    ("::1", RemoteKind.SSH, "::1"),
    ("http://127.0.0.1:8545", RemoteKind.HTTP, "http://127.0.0.1:8545"),
    ("https://NAS.example:8545/", RemoteKind.HTTP, "https://nas.example:8545"),
    ("http://[::1]:8545", RemoteKind.HTTP, "http://[::1]:8545"),
    ("http://[0:0:0:0:0:0:0:1]:8545", RemoteKind.HTTP, "http://[::1]:8545"),
    ("root@FE80:0::1%eth0", RemoteKind.SSH, "root@fe80::1%eth0"),
    ("http://169.254.169.254/", RemoteKind.HTTP, "http://169.254.169.254"),  # syntax only: see the book
])
def test_good_remotes_parse(text: str, kind: RemoteKind, shown: str) -> None:
    remote = Remote.parse(text)
    assert (remote.kind, str(remote)) == (kind, shown)


def test_a_zone_id_reaches_ssh_only_after_double_dash_and_as_letters_and_digits() -> None:
    argv = SshReplica(Remote.parse("root@fe80::1%eth0"), ZfsExecutor()).argv(["zfs", "list"])
    assert argv[argv.index("--") + 1] == "root@fe80::1%eth0"
    assert all(not a.startswith("-") for a in argv[argv.index("--") + 1:])


@pytest.mark.parametrize(("host", "here"), [
    ("http://127.0.0.1:1", True), ("http://127.8.9.1:1", True), ("http://[::1]:1", True),
    ("http://localhost:1", True), ("http://a.localhost:1", True), ("http://0.0.0.0:1", True),
    ("http://[::ffff:127.0.0.1]:1", True), ("http://[::]:1", True), ("root@127.0.0.1", True),
    ("http://10.0.0.1:1", False), ("http://nas.example:1", False), ("http://169.254.169.254:1", False),
    ("http://localhost.example:1", False),
])
def test_on_this_host(host: str, here: bool) -> None:
    assert Remote.parse(host).on_this_host is here


# ---- the book: listed remotes for everyone, unlisted ones only for an unrestricted admin who allowed them ----

NAS = NamedRemote("nas", Remote.parse("backup@nas.example"), ("Port=2222",))
NAS2 = NamedRemote("nas2", Remote.parse("https://nas2.example:8545"), credentials=True)
SELF = NamedRemote("self", Remote.parse("http://127.0.0.1:8545"))
BOOK = RemoteBook((NAS, NAS2, SELF))


@pytest.mark.parametrize("who", [OP, SCOPED_ADMIN, ADMIN, Principal("ro", Role.READONLY)])
@pytest.mark.parametrize(("text", "found"), [
    ("nas", NAS), ("backup@nas.example", NAS), ("backup@NAS.example", NAS), ("nas2", NAS2),
    ("https://nas2.example:8545", NAS2), ("https://nas2.example:8545/", NAS2), ("self", SELF),
    ("http://127.0.0.1:8545", SELF),
])
def test_a_listed_remote_by_name_url_or_ssh_string(who: Principal, text: str, found: NamedRemote) -> None:
    assert BOOK.resolve(text, who) == found


@pytest.mark.parametrize("text", [
    "nas3", "root@nas.example", "nas.example", "http://169.254.169.254/", "http://127.0.0.1:8546",
    "https://nas2.example:8546", "http://nas2.example:8545", "root@127.0.0.1", "http://localhost:8545",
])
@pytest.mark.parametrize("allow", [False, True])
def test_an_unlisted_remote_is_refused_for_all_but_an_unrestricted_admin(text: str, allow: bool) -> None:
    book = RemoteBook(BOOK.remotes, allow_unlisted=allow)
    for who in (OP, SCOPED_ADMIN, Principal("ro", Role.READONLY)):
        with pytest.raises(InvalidArgument) as bad:
            book.resolve(text, who)
        assert bad.value.param == "remote" and "not a remote listed in replication.remotes" in bad.value.reason
    if not allow:
        with pytest.raises(InvalidArgument) as bad:
            book.resolve(text, ADMIN)
        assert bad.value.param == "remote" and "allow_unlisted_remotes is off" in bad.value.reason


def test_an_unrestricted_admin_may_name_unlisted_ssh_remotes_where_allowed_but_never_an_unlisted_url() -> None:
    book = RemoteBook(BOOK.remotes, allow_unlisted=True)
    assert book.resolve("root@other.example", ADMIN) == NamedRemote(None, Remote.parse("root@other.example"))
    # no credentials, and no caller's token sent to whatever listens there (a local user's port, metadata)
    for text in ("http://169.254.169.254/", "http://other.example:8545", "http://localhost:8545",
                 "http://127.0.0.1:9999"):
        with pytest.raises(InvalidArgument) as bad:
            book.resolve(text, ADMIN)
        assert bad.value.param == "remote" and "only with the credentials listed there" in bad.value.reason
    with pytest.raises(InvalidArgument) as bad:
        NamedRemote("x", Remote.parse("http://nas.example:1"))  # listed without credentials: loopback only
    assert "no credentials" in bad.value.reason


# ---- settings: validated at load, one line naming the key ----

GOOD = {"remotes": {
    "nas": {"ssh": "backup@nas.example", "options": ["Port=2222"]},
    "nas2": {"url": "https://nas2.example:8545", "username": "repl", "password": "s3cret pw"},
    "vault_1": {"url": "http://vault.example:8545", "token": "tok-s3cret"},
    "self": {"url": "http://127.0.0.1:8545"}}}


def test_remotes_load_into_the_book_and_the_secrets_stay_out_of_reprs() -> None:
    config = remote_config(load_settings(environ={}, overrides={"replication": GOOD}))
    assert [(r.name, str(r.remote), r.options, r.credentials) for r in config.book.remotes] == [
        ("nas", "backup@nas.example", ("Port=2222",), False), ("nas2", "https://nas2.example:8545", (), True),
        ("vault_1", "http://vault.example:8545", (), True), ("self", "http://127.0.0.1:8545", (), False)]
    assert config.book.allow_unlisted is False
    assert config.secrets["nas2"] == Secret("repl", "s3cret pw") and config.secrets["vault_1"].token == "tok-s3cret"
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize(("replication", "key"), [
    ({"remotes": {"http://h.example:1": {"url": "http://h.example:1", "token": "t"}}},
     "replication.remotes.http://h.example:1"),
    ({"remotes": {"-x": {"ssh": "a@b.example"}}}, "replication.remotes.-x"),
    ({"remotes": {"a.b": {"ssh": "a@b.example"}}}, "replication.remotes.a.b"),
    ({"remotes": {"a\n": {"ssh": "a@b.example"}}}, "replication.remotes.a\n"),
    ({"remotes": {"a": {}}}, "replication.remotes.a"),
    ({"remotes": {"a": {"url": "http://127.0.0.1:1", "ssh": "a@b.example"}}}, "replication.remotes.a"),
    ({"remotes": {"a": {"url": "http://u:s3cret@h.example:1", "token": "t"}}}, "replication.remotes.a.url"),
    ({"remotes": {"a": {"url": "http://169.254.169.254/"}}}, "replication.remotes.a"),
    ({"remotes": {"a": {"url": "http://h.example:1", "username": "u"}}}, "replication.remotes.a"),
    ({"remotes": {"a": {"url": "http://127.0.0.1:8545", "username": "adm", "password": "s3cret"}}},
     "replication.remotes.a"),  # this server itself with an admin's credentials: anyone would act as that admin
    ({"remotes": {"a": {"url": "http://[::1]:8545/", "token": "s3cret"}}}, "replication.remotes.a"),
    ({"remotes": {"a": {"url": "http://localhost:8545", "token": "s3cret"}}}, "replication.remotes.a"),
    ({"remotes": {"a": {"url": "http://h.example:1", "username": "u", "password": "p", "token": "t"}}},
     "replication.remotes.a"),
    ({"remotes": {"a": {"url": "root@h.example", "token": "t"}}}, "replication.remotes.a.url"),
    ({"remotes": {"a": {"url": "http://127.0.0.1:1", "options": ["Port=2"]}}}, "replication.remotes.a.options"),
    ({"remotes": {"a": {"ssh": "root@fe80::1%$(id)"}}}, "replication.remotes.a.ssh"),
    ({"remotes": {"a": {"ssh": "-oProxyCommand=x"}}}, "replication.remotes.a.ssh"),
    ({"remotes": {"a": {"ssh": "http://127.0.0.1:1"}}}, "replication.remotes.a.ssh"),
    ({"remotes": {"a": {"ssh": "root@h.example", "token": "t"}}}, "replication.remotes.a"),
    ({"remotes": {"a": {"ssh": "root@h.example", "options": ["-oProxyCommand=x"]}}},
     "replication.remotes.a.options"),
    ({"remotes": {"a": {"ssh": "root@h.example", "options": ["ProxyCommand=x\nHost *"]}}},
     "replication.remotes.a.options"),
    ({"remotes": {"a": {"ssh": "root@h.example"}, "b": {"ssh": "root@H.example"}}}, "replication.remotes.b"),
    ({"remotes": {"a": {"ssh": "root@h.example", "port": 22}}}, "replication.remotes"),
    ({"remotes": ["root@h.example"]}, "replication.remotes"),
    ({"allow_unlisted_remotes": "maybe"}, "replication.allow_unlisted_remotes"),
    ({"ssh_options": ["-oProxyCommand=x"]}, "replication.ssh_options"),
])
def test_a_bad_remote_config_is_one_line_naming_the_key(replication: dict[str, object], key: str) -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings(environ={}, overrides={"replication": replication})
    assert str(exc.value).startswith(f"config key {key}"), str(exc.value)
    assert "s3cret" not in str(exc.value)


def test_another_zfsapi_on_this_host_takes_its_credentials() -> None:
    settings = load_settings(environ={}, overrides={"replication": {"remotes": {
        "peer": {"url": "http://127.0.0.1:8546", "username": "u", "password": "p"}}}})
    assert remote_config(settings).book.remotes[0].credentials is True


def test_remotes_come_from_the_environment_too() -> None:
    settings = load_settings(environ={"ZFSAPI_REPLICATION__ALLOW_UNLISTED_REMOTES": "true",
                                      "ZFSAPI_REPLICATION__REMOTES": '{nas: {ssh: "root@nas.example"}}'})
    assert remote_config(settings).book == RemoteBook((NamedRemote("nas", Remote.parse("root@nas.example")),), True)


# ---- the replica sides: credentials on every call, the owner's token for this server ----

def users_config() -> dict[str, object]:
    return {"op": {"password_hash": FAST.hash("op-pw"), "role": "operator", "datasets": ["tank/backups"]},
            "adm": {"password_hash": FAST.hash("adm-pw"), "role": "admin"},
            "sadm": {"password_hash": FAST.hash("sadm-pw"), "role": "admin", "datasets": ["tank/backups"]}}


@pytest.fixture
def settings(tmp_path):
    return load_settings(environ={}, overrides={
        "state_dir": str(tmp_path), "rate_limit": {"enabled": False}, "auth": {"users": users_config()},
        "replication": GOOD})


def test_a_remote_without_credentials_needs_a_caller_with_a_token_identity(settings) -> None:
    sides = build_container(settings).replicas()
    assert sides.resolve("self", OP) == NamedRemote("self", Remote.parse("http://127.0.0.1:8545"))
    for who in (LOCALHOST, Principal("op", Role.ADMIN, ("tank/backups",)), Principal("op", Role.OPERATOR),
                Principal("nobody", Role.ADMIN)):  # not exactly a user of auth.users: no token grants it more
        with pytest.raises(InvalidArgument) as bad:
            sides.resolve("self", who)
        assert bad.value.param == "remote" and "no token identity" in bad.value.reason
    assert sides.resolve("nas", LOCALHOST).name == "nas"  # an SSH remote: no token involved


def test_an_ssh_remote_gets_its_own_options_after_the_global_ones(settings) -> None:
    sides = build_container(settings).replicas()
    side = sides.side(sides.resolve("nas", OP), OP)
    assert isinstance(side, SshReplica)
    argv = side.argv(["zfs", "list"])
    assert argv[argv.index("BatchMode=yes") + 1:argv.index("--")][:2] == ["-o", "Port=2222"]


def recorder(seen: list[tuple[str, str | None]]) -> httpx.MockTransport:
    """A stand-in zfsapi that records (method, Authorization) and logs anyone in."""
    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append((body["method"], request.headers.get("authorization")))
        result = {"token": "login-token"} if body["method"] == "auth_login" else {"properties": {}}
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": result})
    return httpx.MockTransport(answer)


async def test_every_outgoing_call_carries_credentials(settings) -> None:
    seen: list[tuple[str, str | None]] = []
    c = build_container(settings)
    c.replicas.override(providers.Singleton(
        ReplicaSides, c.replicas().side(None, OP), ZfsExecutor(), config=remote_config(settings),
        mint=c.replicas()._mint, client=httpx.AsyncClient(transport=recorder(seen))))
    sides = c.replicas()
    for name in ("nas2", "vault_1", "self"):
        await sides.side(sides.resolve(name, OP), OP).resume_token(DatasetName.parse("tank/backups/x"))
    assert [m for m, _ in seen] == ["auth_login", "dataset_get_properties", "dataset_get_properties",
                                    "dataset_get_properties"]
    assert [a for _, a in seen][1:3] == ["Bearer login-token", "Bearer tok-s3cret"]
    minted = seen[3][1]
    assert minted is not None and minted.startswith("Bearer ")
    claims = jwt.decode(minted.removeprefix("Bearer "), signing_key(settings), algorithms=["HS256"],
                        audience="zfsapi")
    assert claims["sub"] == "op" and 0 < claims["exp"] - claims["iat"] <= 300  # the owner's, short-lived


async def test_remote_answers_reach_a_job_error_only_bounded() -> None:
    huge = "A" * 100_000
    error = remote_error(_Error(-32015, huge, {"reason": huge, **{f"k{i}": huge for i in range(50)},
                                               "list": [huge] * 50, "nested": {"x": huge}}), "zfsapi at X")
    assert isinstance(error, StateConflict) and len(repr(vars(error))) < 5000
    for code in (-32013, -32014, -32001, -32603, -32099, -32010, -32602, -32004):
        e = remote_error(_Error(code, huge, {"stderr": huge, "reason": huge, "name": huge, "command": [huge] * 99,
                                             "param": huge, "method": huge, "dataset": huge}), "zfsapi at X")
        assert len(repr(vars(e))) < 10_000, (code, len(repr(vars(e))))


async def test_a_foreign_server_body_is_never_reflected() -> None:
    def foreign(request: httpx.Request) -> httpx.Response:
        secret = "<html>metadata: iam/security-credentials/role AKIA...</html>"
        if "json" in request.headers.get("content-type", ""):
            return httpx.Response(200, json={"error": secret, "success": False})
        return httpx.Response(403, text=secret)

    for transport in (httpx.MockTransport(foreign),
                      httpx.MockTransport(lambda r: httpx.Response(200, text="AKIA metadata"))):
        side = HttpReplica(Remote.parse("http://127.0.0.1:1"), httpx.AsyncClient(transport=transport),
                           ZfsExecutor(), token="t")
        with pytest.raises(ZfsUnavailable) as exc:
            await side.snapshots(DatasetName.parse("tank/a"))
        assert "AKIA" not in exc.value.reason and "metadata" not in exc.value.reason


async def test_a_redirect_is_never_followed_and_an_answer_is_read_only_so_far(monkeypatch) -> None:
    seen: list[str] = []

    def redirect(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})

    side = HttpReplica(Remote.parse("http://127.0.0.1:1"), httpx.AsyncClient(transport=httpx.MockTransport(
        redirect)), ZfsExecutor(), token="t")
    with pytest.raises(ZfsUnavailable) as exc:
        await side.snapshots(DatasetName.parse("tank/a"))
    assert exc.value.reason.endswith("HTTP 302 to snapshot_list") and seen == ["http://127.0.0.1:1/"]

    async def endless():
        for _ in range(1 << 20):
            yield b" " * 65536

    monkeypatch.setattr("zfsapi.adapters.outbound.replicas.http.MAX_ANSWER", 1 << 20)
    side = HttpReplica(Remote.parse("http://127.0.0.1:1"), httpx.AsyncClient(transport=httpx.MockTransport(
        lambda r: httpx.Response(200, content=endless()))), ZfsExecutor(), token="t")
    with pytest.raises(ZfsUnavailable) as exc:
        await side.snapshots(DatasetName.parse("tank/a"))
    assert exc.value.reason.endswith(f"its answer to snapshot_list is over {1 << 20} bytes")


# ---- a migration to this same server runs with the caller's rights ----

@pytest.fixture
async def same_server(settings):
    """This server (FakeZfs), whose replica sides call it back in process, from loopback as root would: a call
    without a token would be passwordless root's."""
    c = build_container(settings)
    zfs = FakeZfs(pools=("tank",))
    for name in ("tank/backups", "tank/backups/a", "tank/other"):
        await zfs.create_dataset(DatasetName.parse(name), properties={}, parents=False)
    c.zfs.override(providers.Object(zfs))
    c.job_store.override(providers.Object(MemoryJobStore()))
    app = http_app(c)
    async with http_client(app) as client:
        mint = build_container(settings).replicas()._mint
        c.replicas.override(providers.Singleton(ReplicaSides, c.replicas().side(None, OP), ZfsExecutor(),
                                                config=remote_config(settings), mint=mint, client=client))
        yield c


async def test_a_scoped_operator_gets_its_own_rights_on_this_same_server(same_server) -> None:
    sides = same_server.replicas()
    side = sides.side(sides.resolve("self", OP), OP)
    assert isinstance(side, HttpReplica)
    with pytest.raises(PermissionDenied) as denied:  # passwordless root would have been allowed
        await side.snapshots(DatasetName.parse("tank/other"))
    assert denied.value.dataset == "tank/other"
    with pytest.raises(PermissionDenied):
        await side.call("stream_init", {"operation": "receive", "target_dataset": "tank/other/x"})
    with pytest.raises(PermissionDenied):
        await side.call("stream_init", {"operation": "receive", "target_dataset": "tank/backups/x", "force": True})
    assert await side.snapshots(DatasetName.parse("tank/backups/a")) == []
    init = await side.call("stream_init", {"operation": "receive", "target_dataset": "tank/backups/x"})
    session = await same_server.stream_sessions().get(init["stream_id"])
    assert session.username == "op" and session.transfer.trusted is False  # zfs receive -x mountpoint ...


async def test_an_unrestricted_admin_gets_an_admins_receive_on_this_same_server(same_server) -> None:
    sides = same_server.replicas()
    side = sides.side(sides.resolve("http://127.0.0.1:8545", ADMIN), ADMIN)
    init = await side.call("stream_init", {"operation": "receive", "target_dataset": "tank/other/x"})
    session = await same_server.stream_sessions().get(init["stream_id"])
    assert session.username == "adm" and session.transfer.trusted is True


def test_a_destination_inside_the_source_is_refused_on_this_host_by_any_remote() -> None:
    world = World()
    with pytest.raises(InvalidArgument) as bad:
        ReplicationSpec.parse(source="tank/a@s1", destination="tank/a/copy")
    assert bad.value.param == "destination"
    for remote in ("self", "http://127.0.0.1:8545"):
        spec = ReplicationSpec.parse(source="tank/a@s1", destination="tank/a/copy", remote=remote)
        with pytest.raises(InvalidArgument) as bad:
            world.use_case.admit(who=LOCALHOST, spec=spec)
        assert bad.value.param == "destination"
    remote = ReplicationSpec.parse(source="tank/a@s1", destination="tank/a/copy", remote="nas")
    assert world.use_case.admit(who=LOCALHOST, spec=remote) == world.book.resolve("nas", LOCALHOST)


# ---- over the wire: checked before the job is queued, and again when it runs ----

async def login(client: httpx.AsyncClient, user: str) -> dict[str, str]:
    r = await client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "auth_login",
                                     "params": {"username": user, "password": f"{user}-pw"}})
    return {"Authorization": "Bearer " + r.json()["result"]["token"]}


async def call(client: httpx.AsyncClient, method: str, headers: dict[str, str] | None = None, **params):
    r = await client.post("/", headers=headers or {},
                          json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
async def wire(tmp_path):
    """The real container on FakeZfs, with the runner not started (jobs stay queued)."""
    def container(**replication: object):
        s = load_settings(environ={}, overrides={
            "state_dir": str(tmp_path), "rate_limit": {"enabled": False}, "auth": {"users": users_config()},
            "replication": {**GOOD, **replication}})
        c = build_container(s)
        zfs = FakeZfs(pools=("tank", "backup"))
        c.zfs.override(providers.Object(zfs))
        c.job_store.override(providers.Object(MemoryJobStore()))
        return c
    return container


MIGRATION = {"source": "tank/backups/a@s1", "destination": "tank/backups/x"}
# (caller, remote): unrestricted admins naming unlisted remotes (nas3 is an SSH host then; an unlisted URL never)
ALLOWED_UNLISTED = {("adm", "root@other.example"), ("root", "root@other.example"), ("adm", "nas3"),
                    ("root", "nas3")}


@pytest.mark.parametrize("allow", [False, True])
async def test_migration_create_refuses_unlisted_remotes_before_queueing(wire, allow: bool) -> None:
    c = wire(allow_unlisted_remotes=allow)
    async with http_client(http_app(c)) as client:
        callers = {"op": await login(client, "op"), "sadm": await login(client, "sadm"),
                   "adm": await login(client, "adm"), "root": {}}
        for remote in ("http://169.254.169.254/", "root@other.example", "nas3", "http://127.0.0.1:8546",
                       "fe80::1%$(id)", "root@fe80::1%`id`", "-oProxyCommand=x"):
            for who, headers in callers.items():
                body = await call(client, "migration_create", headers, **MIGRATION, remote=remote)
                if allow and (who, remote) in ALLOWED_UNLISTED:  # an unrestricted admin where unlisted ones are on
                    assert body["result"]["status"] == "created", (who, remote, body)
                    continue
                assert "error" in body and body["error"]["code"] == -32602, (who, remote, body)
                assert body["error"]["data"]["param"] == "remote", (who, remote, body)
        for remote in ("nas", "backup@nas.example", "nas2", "https://nas2.example:8545/"):
            body = await call(client, "migration_create", callers["op"], **MIGRATION, remote=remote)
            assert body["result"]["status"] == "created", body
        body = await call(client, "migration_create", **MIGRATION, remote="self")  # root: no token identity
        assert (body["error"]["code"], body["error"]["data"]["param"]) == (-32602, "remote"), body
        body = await call(client, "migration_create", callers["op"], source="tank/backups/a@s1",
                          destination="tank/backups/a/in", remote="self")
        assert (body["error"]["code"], body["error"]["data"]["param"]) == (-32602, "destination"), body
        listed = await call(client, "job_list", callers["adm"])
        assert listed["result"]["total"] == 4 + len(ALLOWED_UNLISTED) * allow


async def test_a_remote_removed_on_reload_fails_the_queued_job_naming_remote(wire, tmp_path) -> None:
    c = wire()
    async with http_client(http_app(c)) as client:
        op = await login(client, "op")
        created = await call(client, "migration_create", op, **MIGRATION, remote="nas")
        job_id = created["result"]["job_id"]
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump({"state_dir": str(tmp_path), "auth": {"users": users_config()},
                                        "replication": {"remotes": {"self": {"url": "http://127.0.0.1:8545"}}}}))
        assert Reloader(c, lambda: load_settings(path, environ={}))() is True  # what SIGHUP runs
        assert [r.name for r in c.replicas()._config.book.remotes] == ["self"]
        runner = c.job_runner()
        await runner.start()
        try:
            deadline = time.monotonic() + 30
            while (job := (await call(client, "job_get", op, job_id=job_id))["result"])["state"] in ("queued",
                                                                                                  "running"):
                assert time.monotonic() < deadline, job
                await asyncio.sleep(0.05)
        finally:
            await runner.stop()
        assert job["state"] == "failed", job
        assert (job["error"]["code"], job["error"]["data"]["param"]) == (-32602, "remote"), job
        again = await call(client, "migration_create", op, **MIGRATION, remote="nas")
        assert again["error"]["data"]["param"] == "remote"


async def test_a_reload_with_a_bad_remote_keeps_the_running_book(wire, tmp_path) -> None:
    c = wire()
    path = tmp_path / "bad.yaml"
    path.write_text('replication: {remotes: {evil: {ssh: "root@fe80::1%;id;"}}}\n')
    assert Reloader(c, lambda: load_settings(path, environ={}))() is False
    assert [r.name for r in c.replicas()._config.book.remotes] == ["nas", "nas2", "vault_1", "self"]


def test_the_config_swap_is_the_whole_book() -> None:
    sides = ReplicaSides(World().replica, ZfsExecutor(), config=RemoteConfig(BOOK))
    assert sides.resolve("nas", OP) == NAS
    sides.swap(RemoteConfig())
    with pytest.raises(InvalidArgument):
        sides.resolve("nas", OP)
