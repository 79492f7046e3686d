"""Authentication over HTTP with FakeZfs: login, tokens and every JWT attack, roles and dataset scopes, rate
limits (per principal, batches, auth_login's own limit), hash upgrades, the signing key file."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from datetime import datetime, timezone

import bcrypt
import jwt
import pytest
from argon2 import PasswordHasher
from dependency_injector import providers

from tests.conftest import http_client
from tests.fakes import FakeZfs, FixedClock
from zfsapi.adapters.outbound.auth.secret import SecretError, load_or_create_key
from zfsapi.bootstrap import build_container, load_settings
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.bootstrap.settings import SettingsError

KEY = "k" * 40
REMOTE = "192.0.2.10"
FAST = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)  # cheap hashes for tests only
PASSWORDS = {"root": "root-pw", "ops": "ops-pw", "viewer": "viewer-pw", "scoped": "scoped-pw"}


def users_config():
    return {
        "root": FAST.hash(PASSWORDS["root"]),  # old form: an admin
        "ops": {"password_hash": FAST.hash(PASSWORDS["ops"]), "role": "operator"},
        "viewer": {"password_hash": FAST.hash(PASSWORDS["viewer"]), "role": "readonly"},
        "scoped": {"password_hash": FAST.hash(PASSWORDS["scoped"]), "role": "operator", "datasets": ["tank/a"]},
    }


def make_container(tmp_path, fake=None, config_file=None, **sections):
    auth = {"secret_key": KEY, "users": users_config(), "password_profile": "owasp-minimum", **sections.pop("auth", {})}
    settings = load_settings(config_file, environ={}, overrides={"auth": auth, "state_dir": str(tmp_path), **sections})
    c = build_container(settings)
    c.zfs.override(providers.Object(fake or FakeZfs()))
    c.clock.override(providers.Object(FixedClock(datetime(2026, 11, 24, 12, 30, tzinfo=timezone.utc))))
    return c


@pytest.fixture
def fake():
    z = FakeZfs()
    for name in ("tank/a", "tank/a/x", "tank/b"):
        z.datasets[name] = type(z.datasets["tank"])(z.datasets["tank"].type)
    return z


@pytest.fixture
def app(tmp_path, fake):
    return http_app(make_container(tmp_path, fake))


async def call(client, method, params=None, token=None, id_=1):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = await client.post("/", json={"jsonrpc": "2.0", "method": method, "params": params or {}, "id": id_},
                          headers=headers)
    return r


async def login(client, user, password=None):
    r = await call(client, "auth_login", {"username": user, "password": password or PASSWORDS[user]})
    return r.json()["result"]["token"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict, payload: dict, key: bytes | None = None, alg: str = "HS256") -> str:
    """A token built by hand, so that any header can be sent (pyjwt would refuse to make some of these)."""
    signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if key is None:
        return signing + "."
    import hashlib
    import hmac

    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    return signing + "." + b64(hmac.new(key, signing.encode(), digest).digest())


def claims(**over):
    now = time.time()
    base = {"sub": "root", "iat": now, "nbf": now, "exp": now + 600, "jti": os.urandom(8).hex(),
            "iss": "zfsapi", "aud": "zfsapi"}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


# ---- login and tokens ---------------------------------------------------------------------------------------

async def test_login_gives_a_bearer_token_that_works_remotely(app):
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:
        r = await call(c, "auth_login", {"username": "root", "password": "root-pw"})
        result = r.json()["result"]
        assert result["token_type"] == "Bearer" and result["expires_in"] == 1800
        assert result["expires_at"].endswith("Z")
        r = await call(c, "pool_list", token=result["token"])
        assert r.json()["result"]["pools"] == ["tank"]
        header = json.loads(base64.urlsafe_b64decode(result["token"].split(".")[0] + "=="))
        assert header["alg"] == "HS256"
        payload = jwt.decode(result["token"], KEY, algorithms=["HS256"], audience="zfsapi")
        assert set(payload) == {"sub", "iat", "nbf", "exp", "jti", "iss", "aud"}


@pytest.mark.parametrize("user, password", [("root", "wrong"), ("nobody", "root-pw"), ("root", "")])
async def test_bad_credentials_are_one_error(app, user, password):
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:
        r = await call(c, "auth_login", {"username": user, "password": password})
    assert r.json()["error"] == {"code": -32003, "message": "Invalid credentials", "data": {}}


async def test_unknown_users_cost_a_real_hash_check(tmp_path):
    """The unknown-user path verifies against a dummy hash with the same parameters as real ones."""
    c = make_container(tmp_path)
    hasher = c.passwords()
    known_hash = hasher.hash("x")
    t0 = time.perf_counter()
    for _ in range(5):
        assert not (await hasher.verify(known_hash, "y")).ok
    known = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(5):
        assert not (await hasher.verify(None, "y")).ok
    unknown = time.perf_counter() - t0
    assert hasher._dummy is not None and hasher._dummy.split("$")[3] == known_hash.split("$")[3]
    assert unknown > known / 4  # same work (not a timing assertion of our speed: a ratio of two equal costs)


def _tamper(token: str) -> str:
    h, p, s = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(p + "=="))
    payload["sub"] = "ops"
    return f"{h}.{b64(json.dumps(payload).encode())}.{s}"


ATTACKS = {
    "alg none": lambda: forge({"alg": "none", "typ": "JWT"}, claims()),
    "alg None with a signature": lambda: forge({"alg": "None", "typ": "JWT"}, claims(), KEY.encode()),
    "HS512 swapped in": lambda: forge({"alg": "HS512", "typ": "JWT"}, claims(), KEY.encode(), "HS512"),
    "RS256 header, HMAC with the key": lambda: forge({"alg": "RS256", "typ": "JWT"}, claims(), KEY.encode()),
    "wrong key": lambda: jwt.encode(claims(), "w" * 40, algorithm="HS256"),
    "expired": lambda: jwt.encode(claims(exp=time.time() - 5), KEY, algorithm="HS256"),
    "nbf in the future": lambda: jwt.encode(claims(nbf=time.time() + 300), KEY, algorithm="HS256"),
    "iat in the future": lambda: jwt.encode(claims(iat=time.time() + 300), KEY, algorithm="HS256"),
    "wrong aud": lambda: jwt.encode(claims(aud="other"), KEY, algorithm="HS256"),
    "aud list": lambda: jwt.encode(claims(aud=["zfsapi", "other"]), KEY, algorithm="HS256"),
    "wrong iss": lambda: jwt.encode(claims(iss="evil"), KEY, algorithm="HS256"),
    "missing sub": lambda: jwt.encode(claims(sub=None), KEY, algorithm="HS256"),
    "missing iat": lambda: jwt.encode(claims(iat=None), KEY, algorithm="HS256"),
    "missing exp": lambda: jwt.encode(claims(exp=None), KEY, algorithm="HS256"),
    "missing jti": lambda: jwt.encode(claims(jti=None), KEY, algorithm="HS256"),
    "missing iss": lambda: jwt.encode(claims(iss=None), KEY, algorithm="HS256"),
    "missing aud": lambda: jwt.encode(claims(aud=None), KEY, algorithm="HS256"),
    "unknown user": lambda: jwt.encode(claims(sub="ghost"), KEY, algorithm="HS256"),
    "garbage": lambda: "not-a-token",
    "empty parts": lambda: "..",
}


@pytest.mark.parametrize("name", ATTACKS)
async def test_jwt_attacks_get_invalid_token(app, name):
    token = ATTACKS[name]()
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:
        r = await call(c, "pool_list", token=token)
    assert r.json()["error"]["code"] == -32002, (name, r.text)


async def test_a_well_formed_token_is_accepted(app):
    """The control for the attacks above: the same construction with nothing wrong passes."""
    token = forge({"alg": "HS256", "typ": "JWT"}, claims(), KEY.encode())
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:
        assert (await call(c, "pool_list", token=token)).json()["result"]["pools"] == ["tank"]


async def test_tampered_payload(app):
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:
        token = await login(c, "viewer")
        r = await call(c, "pool_list", token=_tamper(token))
    assert r.json()["error"]["code"] == -32002


async def test_logout_revokes_the_token_and_only_it(app):
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:
        t1, t2 = await login(c, "ops"), await login(c, "ops")
        r = await call(c, "auth_logout", token=t1)
        assert r.json()["result"] == {"logged_out": True, "revoked": True}
        assert (await call(c, "pool_list", token=t1)).json()["error"]["code"] == -32002
        assert (await call(c, "pool_list", token=t2)).json()["result"]["pools"] == ["tank"]
        # all_sessions: every token of the user issued until now
        await call(c, "auth_logout", {"all_sessions": True}, token=t2)
        assert (await call(c, "pool_list", token=t2)).json()["error"]["code"] == -32002
        t3 = await login(c, "ops")
        assert (await call(c, "pool_list", token=t3)).json()["result"]["pools"] == ["tank"]


async def test_a_token_from_loopback_is_the_token_user_not_the_local_admin(app):
    async with http_client(app) as c:
        token = await login(c, "viewer")
        r = await call(c, "dataset_create", {"dataset": "tank/new"}, token=token)
        assert r.json()["error"]["code"] == -32004
        r = await call(c, "dataset_create", {"dataset": "tank/new"}, token="garbage")
        assert r.json()["error"]["code"] == -32002
        assert "result" in (await call(c, "dataset_create", {"dataset": "tank/new"})).json()


async def test_authorization_header_must_be_bearer(app):
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:
        token = await login(c, "root")
        r = await c.post("/", json={"jsonrpc": "2.0", "method": "pool_list", "id": 1},
                         headers={"Authorization": f"Basic {token}"})
    assert r.json()["error"]["code"] == -32002


async def test_login_disabled_issues_nothing(tmp_path):
    app = http_app(make_container(tmp_path, auth={"enabled": False}))
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:
        r = await call(c, "auth_login", {"username": "root", "password": "root-pw"})
    assert r.json()["error"]["code"] == -32003


# ---- roles and scopes ---------------------------------------------------------------------------------------

# (method, params): one per method class, run against each role
CALLS = {
    "list": ("dataset_list", {}),
    "get": ("dataset_get_properties", {"dataset": "tank/a"}),
    "status": ("pool_status", {"pool": "tank"}),
    "create": ("dataset_create", {"dataset": "tank/a/new"}),
    "create with mountpoint": ("dataset_create", {"dataset": "tank/a/new2", "properties": {"mountpoint": "/x"}}),
    "set compression": ("dataset_set_property", {"dataset": "tank/a", "property": "compression", "value": "lz4"}),
    "set sharenfs": ("dataset_set_property", {"dataset": "tank/a", "property": "sharenfs", "value": "on"}),
    "snapshot": ("snapshot_create", {"dataset": "tank/a", "name": "s1"}),
    "destroy": ("dataset_destroy", {"dataset": "tank/a/x"}),
    "rollback": ("snapshot_rollback", {"dataset": "tank/a", "snapshot": "s0"}),
    "scrub": ("pool_scrub_start", {"pool": "tank"}),
}
ALLOWED = {
    "root": set(CALLS),
    "ops": {"list", "get", "status", "create", "set compression", "snapshot", "scrub"},
    "viewer": {"list", "get", "status"},
    # operator on tank/a only: pool status is visible (its pool), a scrub of the whole pool is not
    "scoped": {"list", "get", "status", "create", "set compression", "snapshot"},
}


@pytest.mark.parametrize("user", ALLOWED)
@pytest.mark.parametrize("what", CALLS)
async def test_roles(tmp_path, fake, user, what):
    app = http_app(make_container(tmp_path, fake))
    method, params = CALLS[what]
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:
        token = await login(c, user)
        if what == "rollback":
            await call(c, "snapshot_create", {"dataset": "tank/a", "name": "s0"}, token=await login(c, "root"))
        body = (await call(c, method, params, token=token)).json()
    if what in ALLOWED[user]:
        assert "result" in body, (user, what, body)
    else:
        assert body["error"]["code"] == -32004, (user, what, body)
        assert body["error"]["data"]["method"] == method
        assert body["error"]["data"]["dataset"] == params.get("dataset", params.get("pool"))


@pytest.mark.parametrize("method, params", [
    ("dataset_create", {"dataset": "tank/b/new"}),
    ("dataset_create", {"dataset": "tank/ab"}),  # a sibling sharing the prefix's characters is outside
    ("dataset_get_properties", {"dataset": "tank/b"}),
    ("dataset_get_properties", {"dataset": "tank"}),
    ("dataset_rename", {"dataset": "tank/a/x", "new_name": "tank/b/x"}),
    ("clone_create", {"source": "tank/b@s", "target": "tank/a/c"}),
    ("clone_create", {"source": "tank/a@s", "target": "tank/b/c"}),
    ("snapshot_diff", {"snapshot1": "tank/b@s"}),
    ("bookmark_create", {"snapshot": "tank/b@s", "bookmark": "tank/b#m"}),
    ("pool_get_properties", {"pool": "other"}),
    ("snapshot_hold", {"dataset": "tank/b", "snapshot": "s", "tag": "t"}),
])
async def test_dataset_scope_is_checked_on_every_name(app, method, params):
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:
        token = await login(c, "scoped")
        body = (await call(c, method, params, token=token)).json()
    assert body["error"]["code"] == -32004, body


async def test_lists_are_filtered_to_the_scope(app, fake):
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:
        root, scoped = await login(c, "root"), await login(c, "scoped")
        for ds in ("tank/a", "tank/b"):
            await call(c, "snapshot_create", {"dataset": ds, "name": "s", "recursive": True}, token=root)
        await call(c, "volume_create", {"dataset": "tank/a/v", "size_bytes": 1 << 20}, token=root)
        await call(c, "volume_create", {"dataset": "tank/b/v", "size_bytes": 1 << 20}, token=root)
        r = (await call(c, "dataset_list", {}, token=scoped)).json()["result"]
        assert r["datasets"] == ["tank/a", "tank/a/v", "tank/a/x"]
        r = (await call(c, "dataset_list", {"dataset": "tank", "properties": ["used"]}, token=scoped)).json()
        assert sorted(r["result"]["properties"]) == ["tank/a", "tank/a/v", "tank/a/x"]
        r = (await call(c, "volume_list", {}, token=scoped)).json()["result"]
        assert r["volumes"] == ["tank/a/v"]
        r = (await call(c, "snapshot_list", {"dataset": "tank", "recursive": True}, token=scoped)).json()["result"]
        assert sorted(r["snapshots"]) == ["tank/a/x@s", "tank/a@s"]
        assert sorted(d["name"] for d in r["details"]) == ["tank/a/x@s", "tank/a@s"]
        r = (await call(c, "pool_list", {}, token=scoped)).json()["result"]
        assert r["pools"] == ["tank"]
        r = (await call(c, "dataset_list", {}, token=root)).json()["result"]
        assert "tank/b/v" in r["datasets"]


# ---- rate limits -------------------------------------------------------------------------------------------

# The tests below call as local root: its own limit (off by default) is set to the same quota.
LOCAL_TOO = {"local_requests": 5, "local_window": 60}

async def test_rate_limit_exact_count_and_retry_after(tmp_path):
    app = http_app(make_container(tmp_path, rate_limit=LOCAL_TOO | {"requests": 5, "window": 60}))
    async with http_client(app) as c:
        statuses = []
        first = time.monotonic()
        for i in range(5):
            r = await call(c, "pool_list", id_=i)
            statuses.append(r.status_code)
            assert r.headers["ratelimit-policy"] == '"default";q=5;w=60'
            assert r.headers["ratelimit"].startswith(f'"default";r={4 - i};')
        assert statuses == [200] * 5
        r = await call(c, "pool_list", id_=99)
        spent = time.monotonic() - first  # a busy machine makes the burst slow: the wait shrinks by that much
    assert r.status_code == 429
    retry = int(r.headers["retry-after"])
    assert 12 - spent - 1 <= retry <= 12  # one request's share of the window: 60 s / 5
    body = r.json()
    assert body["id"] == 99 and body["error"]["code"] == -32000
    assert 12 - spent - 1 <= body["error"]["data"]["retry_after"] <= 12


async def test_a_batch_of_n_costs_n_and_is_refused_whole(tmp_path, fake):
    app = http_app(make_container(tmp_path, fake, rate_limit=LOCAL_TOO | {"requests": 5, "window": 60}))
    batch = [{"jsonrpc": "2.0", "method": "dataset_create", "params": {"dataset": f"tank/n{i}"}, "id": i}
             for i in range(3)]
    async with http_client(app) as c:
        r = await c.post("/", json=batch)
        assert r.status_code == 200 and len(r.json()) == 3
        r = await c.post("/", json=[{**x, "params": {"dataset": f"tank/m{x['id']}"}} for x in batch])
        assert r.status_code == 429
        assert sorted(x["id"] for x in r.json()) == [0, 1, 2]
        assert all(x["error"]["code"] == -32000 for x in r.json())
        assert not any(n.startswith("tank/m") for n in fake.datasets)  # nothing of a refused batch ran
        assert (await call(c, "pool_list")).status_code == 200  # 4 of 5 used
        assert (await call(c, "pool_list")).status_code == 200
        assert (await call(c, "pool_list")).status_code == 429


async def test_local_users_are_not_limited_unless_asked(tmp_path):
    app = http_app(make_container(tmp_path, rate_limit={"requests": 3, "window": 60, "login_requests": 10}))
    batch = [{"jsonrpc": "2.0", "method": "pool_list", "id": i} for i in range(100)]
    async with http_client(app) as local:  # root on this machine, no token: a script's batch of 100, twice
        for _ in range(2):
            r = await local.post("/", json=batch)
            assert r.status_code == 200 and all("result" in x for x in r.json()) and "ratelimit" not in r.headers
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:  # a token's user keeps the limit
        token = await login(c, "ops")
        assert [(await call(c, "pool_list", token=token)).status_code for _ in range(4)] == [200, 200, 200, 429]


async def test_rate_limit_is_per_principal(tmp_path):
    app = http_app(make_container(tmp_path, rate_limit={"requests": 3, "window": 60, "login_requests": 10}))
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:
        t_ops, t_view = await login(c, "ops"), await login(c, "viewer")
        for _ in range(3):
            assert (await call(c, "pool_list", token=t_ops)).status_code == 200
        assert (await call(c, "pool_list", token=t_ops)).status_code == 429
        assert (await call(c, "pool_list", token=t_view)).status_code == 200


async def test_auth_login_has_its_own_stricter_limit(tmp_path):
    app = http_app(make_container(tmp_path, rate_limit={"requests": 100, "window": 60, "login_requests": 3,
                                                          "login_window": 60}))
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:
        codes = []
        first = time.monotonic()
        for _ in range(5):
            r = await call(c, "auth_login", {"username": "root", "password": "guess"})
            codes.append(r.json()["error"]["code"])
        spent = time.monotonic() - first  # the wait shrinks by however long the burst took
        assert codes == [-32003, -32003, -32003, -32000, -32000]
        assert 20 - spent - 1 <= r.json()["error"]["data"]["retry_after"] <= 20  # 60 s / 3
    # another peer is not affected
    async with http_client(app, peer="192.0.2.11", host="zfs.example") as c:
        assert "result" in (await call(c, "auth_login", {"username": "root", "password": "root-pw"})).json()


async def test_rate_limit_refusals_are_counted(tmp_path):
    app = http_app(make_container(tmp_path, rate_limit={"local_requests": 1, "local_window": 60}))
    async with http_client(app) as c:
        await call(c, "pool_list")
        await call(c, "pool_list")
        text = (await c.get("/metrics")).text
    assert 'zfsapi_rate_limit_refusals_total{limit="requests"} 1.0' in text


# ---- hashes, key file, settings ---------------------------------------------------------------------------

async def test_bcrypt_hash_verifies_and_is_upgraded_in_the_config_file(tmp_path):
    legacy = bcrypt.hashpw(b"old-pw", bcrypt.gensalt(rounds=4)).decode()
    config = tmp_path / "config.yaml"
    config.write_text(f"# my server\nauth:\n  users:\n    legacy: '{legacy}'  # keep this comment\n")
    config.chmod(0o640)
    app = http_app(make_container(tmp_path, config_file=str(config), auth={"users": {}}))
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:
        token = await login(c, "legacy", "old-pw")
        assert (await call(c, "pool_list", token=token)).json()["result"]["pools"] == ["tank"]
        text = config.read_text()
        assert legacy not in text and "$argon2id$" in text and "# keep this comment" in text
        assert stat.S_IMODE(config.stat().st_mode) == 0o640
        await login(c, "legacy", "old-pw")  # the upgraded hash verifies
        r = await call(c, "auth_login", {"username": "legacy", "password": "wrong"})
        assert r.json()["error"]["code"] == -32003


def test_signing_key_is_generated_once_with_mode_0600(tmp_path):
    state = tmp_path / "state"
    k1 = load_or_create_key(None, str(state))
    assert len(k1) == 32 and stat.S_IMODE((state / "jwt.key").stat().st_mode) == 0o600
    assert load_or_create_key(None, str(state)) == k1
    (state / "jwt.key").chmod(0o644)
    with pytest.raises(SecretError, match="readable by others"):
        load_or_create_key(None, str(state))


def test_short_keys_refuse_to_start(tmp_path):
    with pytest.raises(SettingsError, match="auth.secret_key"):
        load_settings(environ={}, overrides={"auth": {"secret_key": "short"}})
    (tmp_path / "jwt.key").write_bytes(b"x" * 16)
    (tmp_path / "jwt.key").chmod(0o600)
    with pytest.raises(SecretError, match="16 bytes"):
        load_or_create_key(None, str(tmp_path))


async def test_tokens_survive_a_restart_with_the_generated_key(tmp_path, fake):
    def app():
        s = load_settings(environ={}, overrides={"auth": {"users": users_config(), "password_profile": "owasp-minimum"},
                                                 "state_dir": str(tmp_path)})
        c = build_container(s)
        c.zfs.override(providers.Object(fake))
        return http_app(c)

    async with http_client(app(), peer=REMOTE, host="zfs.example") as c:
        token = await login(c, "root")
    async with http_client(app(), peer=REMOTE, host="zfs.example") as c:
        assert (await call(c, "pool_list", token=token)).json()["result"]["pools"] == ["tank"]


@pytest.mark.parametrize("users, match", [
    ({"a": "plaintext"}, "auth.users.a"),
    ({"a": {"password_hash": "$argon2id$x", "datasets": ["tank/../x"]}}, "auth.users.a.datasets"),
    ({"a": {"password_hash": "$argon2id$x", "role": "root"}}, "auth.users"),
])
def test_bad_user_config_is_one_line(users, match):
    with pytest.raises(SettingsError, match=match):
        load_settings(environ={}, overrides={"auth": {"users": users}})


def test_workers_need_redis():
    with pytest.raises(SettingsError, match="server.http.workers"):
        load_settings(environ={}, overrides={"server": {"http": {"workers": 2}}})


# ---- CLI ---------------------------------------------------------------------------------------------------

def test_cli_user_add_and_hash_password(tmp_path):
    import subprocess
    import sys

    config = tmp_path / "config.yaml"
    config.write_text("# production box\nserver:\n  http:\n    port: 9000  # not the default\n")
    run = lambda *a: subprocess.run([sys.executable, "-m", "zfsapi", *a], input="s3cret-pw\n", text=True,  # noqa: E731
                                    capture_output=True, timeout=60)
    r = run("user", "add", "backup", "--role", "operator", "--dataset", "tank/backups", "--config", str(config),
            "--profile", "owasp-minimum")
    assert r.returncode == 0, r.stderr
    text = config.read_text()
    assert "# production box" in text and "# not the default" in text and "s3cret" not in text
    settings = load_settings(config, environ={})
    user = settings.auth.users["backup"]
    assert user.role == "operator" and user.datasets == ["tank/backups"]
    PasswordHasher().verify(user.password_hash, "s3cret-pw")
    r = run("hash-password", "--profile", "owasp-minimum")
    assert r.returncode == 0 and r.stdout.startswith("$argon2id$") and "s3cret" not in r.stdout + r.stderr
    r = run("user", "add", "x", "--dataset", "tank/../etc", "--config", str(config))
    assert r.returncode == 1 and "tank/../etc" in r.stderr
