from __future__ import annotations

import os
import subprocess
import sys

import pytest

from zfsapi.bootstrap import cli
from zfsapi.bootstrap.settings import SettingsError, load_settings


def test_defaults_bind_loopback():
    s = load_settings(environ={})
    assert (s.server.http.host, s.server.http.port) == ("127.0.0.1", 8545)
    assert s.redis.host is None and s.auth.passwordless_localhost and s.auth.users == {}


def test_file_then_env_then_overrides(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("server:\n  http:\n    port: 9000\nrate_limit:\n  requests: 5\n  window: 10\n"
                   "logging:\n  level: DEBUG\nredis:\n  host: 127.0.0.1\n")
    s = load_settings(cfg, environ={"ZFSAPI_RATE_LIMIT__REQUESTS": "7", "ZFSAPI_ZFS__TIMEOUT": "12.5"})
    assert s.server.http.port == 9000 and s.rate_limit.requests == 7 and s.zfs.timeout == 12.5
    assert s.logging.level == "DEBUG" and s.redis.host == "127.0.0.1"
    s = load_settings(cfg, environ={}, overrides={"server": {"http": {"port": 1234}}})
    assert s.server.http.port == 1234


@pytest.mark.parametrize("text, key", [
    ("server:\n  http:\n    port: 99999\n", "server.http.port"),
    ("server:\n  htp:\n    port: 1\n", "htp"),
    ("logging:\n  level: LOUD\n", "logging.level"),
    ("rate_limit:\n  requests: 0\n", "rate_limit.requests"),
])
def test_bad_config_names_the_key(tmp_path, text, key):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(SettingsError) as exc:
        load_settings(cfg, environ={})
    assert key in str(exc.value)


def test_public_bind_with_passwordless_needs_explicit_consent():
    with pytest.raises(SettingsError) as exc:
        load_settings(environ={"ZFSAPI_SERVER__HTTP__HOST": "0.0.0.0"})
    assert "allow_passwordless_with_public_bind" in str(exc.value)
    s = load_settings(environ={"ZFSAPI_SERVER__HTTP__HOST": "0.0.0.0",
                               "ZFSAPI_AUTH__ALLOW_PASSWORDLESS_WITH_PUBLIC_BIND": "true"})
    assert s.server.http.host == "0.0.0.0"


def test_cli_bad_config_is_one_line_and_exit_2(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("server:\n  http:\n    port: nope\n")
    r = subprocess.run([sys.executable, "-m", "zfsapi", "check-config", "--config", str(cfg)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "server.http.port" in r.stderr
    env = {k: v for k, v in os.environ.items() if k != "ZFSAPI_CONFIG"}
    r = subprocess.run([sys.executable, "-m", "zfsapi", "check-config"], capture_output=True, text=True,
                       cwd=tmp_path, env=env)  # tmp_path has no config.yaml
    assert r.returncode == 0 and r.stdout.startswith("configuration ok (")


def test_the_config_finds_itself(tmp_path, monkeypatch):
    etc = tmp_path / "etc.yaml"
    monkeypatch.setattr(cli, "CONFIG_PLACES", ("config.yaml", str(etc)))
    monkeypatch.chdir(tmp_path)
    assert cli.find_config(None, {}) is None  # nothing anywhere: built-in defaults
    etc.write_text("server: {http: {port: 9001}}\n")
    assert cli.find_config(None, {}) == str(etc)
    (tmp_path / "config.yaml").write_text("server: {http: {port: 9002}}\n")
    assert cli.find_config(None, {}) == "config.yaml"  # where `zfsapi user add` writes comes first
    assert cli.find_config(None, {"ZFSAPI_CONFIG": "/x.yaml"}) == "/x.yaml"
    assert cli.find_config("given.yaml", {"ZFSAPI_CONFIG": "/x.yaml"}) == "given.yaml"
    env = {k: v for k, v in os.environ.items() if k != "ZFSAPI_CONFIG"}
    r = subprocess.run([sys.executable, "-m", "zfsapi", "check-config"], capture_output=True, text=True, env=env)
    assert (r.returncode, r.stdout) == (0, "configuration ok (config.yaml)\n"), r.stderr


def test_env_variables_outside_the_settings_sections_are_ignored():
    s = load_settings(environ={"ZFSAPI_VENV": "/x", "ZFSAPI_TESTHOST_ZFS": "2.1"})
    assert s == load_settings(environ={})
    with pytest.raises(SettingsError) as exc:
        load_settings(environ={"ZFSAPI_SERVER__HTTP__PROT": "1"})
    assert "prot" in str(exc.value)


def _check_config(tmp_path, config: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config)
    return subprocess.run([sys.executable, "-m", "zfsapi", "check-config", "--config", str(cfg)],
                          capture_output=True, text=True)


def test_check_config_refuses_a_malformed_hash_in_one_line(tmp_path):
    for digest in ("$argon2id$garbage", "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA", "$2b$04$short", "$2b$99$" + "a" * 53):
        r = _check_config(tmp_path, f"auth:\n  users:\n    bob: '{digest}'\n")
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "auth.users.bob" in r.stderr, (digest, r.stderr)


def test_check_config_refuses_a_state_dir_it_cannot_write(tmp_path):
    (tmp_path / "plain").write_text("")
    key = "k" * 32
    r = _check_config(tmp_path, f"state_dir: {tmp_path}/plain/state\nauth:\n  secret_key: {key}\n")
    assert (r.returncode, r.stderr) == (2, f"zfsapi: config key state_dir: {tmp_path}/plain is not a directory\n")
    assert key not in r.stderr
    r = _check_config(tmp_path, f"state_dir: {tmp_path}/new/state\nauth:\n  secret_key: {key}\n")
    assert r.returncode == 0 and not (tmp_path / "new").exists()  # checked, nothing created
    # no users, no key, but the job store (no Redis) lives there: refused too (it was "ok", then serve logged a
    # traceback every second)
    r = _check_config(tmp_path, f"state_dir: {tmp_path}/plain/state\n")
    assert (r.returncode, r.stderr) == (2, f"zfsapi: config key state_dir: {tmp_path}/plain is not a directory\n")
    r = _check_config(tmp_path, f"state_dir: {tmp_path}/plain/state\nredis: {{host: 127.0.0.1}}\n")
    assert r.returncode == 0, r.stderr  # jobs in Redis, no users, no key: nothing to keep there


def test_serve_refuses_a_state_dir_it_cannot_write_in_one_line(tmp_path):
    (tmp_path / "plain").write_text("")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"state_dir: {tmp_path}/plain/state\nserver: {{http: {{port: 0}}}}\n")
    r = subprocess.run([sys.executable, "-m", "zfsapi", "serve", "--config", str(cfg)], capture_output=True,
                       text=True, timeout=120, env={k: v for k, v in os.environ.items() if not k.startswith("ZFSAPI_")})
    assert r.returncode == 2, r.stderr
    assert f"zfsapi: config key state_dir: {tmp_path}/plain is not a directory" in r.stderr
    assert "Traceback" not in r.stderr


def test_yaml_errors_name_their_line_and_column(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("server:\n  http:\n    port: [1, 2\n")
    with pytest.raises(SettingsError) as err:
        load_settings(cfg, environ={})
    assert str(err.value).startswith(f"config {cfg}: not valid YAML: line 4, column 1: expected ',' or ']'"), err.value
    cfg.write_text("a: b\n\tc: d\n")
    with pytest.raises(SettingsError, match=r"line 2, column 1: found character '\\t'"):
        load_settings(cfg, environ={})


OLD_SERVER_CONFIG = """\
# the old server's config.yaml (its documented shape)
server:
  http:
    host: 127.0.0.1
    port: 8545
  tcp:
    host: 0.0.0.0
    port: 9999
    enabled: true
  unix:
    path: ./zfs_token_socket
    enabled: true
  workers: 20
task_manager:
  migration_workers: 6
auth:
  enabled: true
  users:
    admin: "$2b$12$/Cgi8ftHgz1adWuhpy7SGOfnKc2HJqY5WtKYrmoqeaN3eKDq055rO"
rate_limit: {enabled: true, requests: 100, window: 60}
logging:
  level: INFO
  file: zfs_api.log
redis: {host: null, port: 6379, db: 0, password: null}
"""


def test_the_old_servers_config_is_read_into_its_zfsapi_meaning(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(OLD_SERVER_CONFIG)
    s = load_settings(cfg, environ={})
    assert s.server.unix.path == "./zfs_token_socket"
    assert s.zfs.max_concurrency == 20 and s.server.http.workers == 1
    assert s.jobs.workers == 6
    assert s.logging.file == "zfs_api.log"
    assert s.notices == (
        "config key server.tcp ignored: the token socket is replaced by HTTP streams (stream_init, then GET or "
        "POST /stream/{id})",
        "config key server.unix.enabled read: the Unix socket is on (server.unix.path is set)",
        "config key server.workers read as zfs.max_concurrency: 20",
        "config key task_manager.migration_workers read as jobs.workers: 6",
    )


def test_old_keys_never_refuse_a_config(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("server:\n  tcp: {enabled: false}\n  unix: {path: /run/x.sock, enabled: false}\n"
                   "  workers: 5000\ntask_manager: {migration_workers: 0, poll: 3}\nzfs: {max_concurrency: 8}\n")
    s = load_settings(cfg, environ={})
    assert s.server.unix.path is None
    assert "config key server.unix.enabled read: the Unix socket is off" in s.notices  # it said "on" before
    assert s.zfs.max_concurrency == 8  # the new key wins over the old one
    assert s.jobs.workers == 1  # kept within the new key's bounds
    assert s.notices[-2:] == ("config key task_manager.migration_workers read as jobs.workers: 1",
                              "config key task_manager.poll ignored: zfsapi has no such setting")
    assert "config key server.workers ignored: zfs.max_concurrency is set" in s.notices


def test_check_config_reports_old_keys(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(OLD_SERVER_CONFIG.replace("$2b$", "$2b$"))
    r = subprocess.run([sys.executable, "-m", "zfsapi", "check-config", "--config", str(cfg)],
                       capture_output=True, text=True, cwd=tmp_path,
                       env={k: v for k, v in os.environ.items() if not k.startswith("ZFSAPI_")}
                       | {"ZFSAPI_STATE_DIR": str(tmp_path / "state")})
    assert r.returncode == 0, r.stderr
    assert "config key server.tcp ignored" in r.stderr and r.stdout.startswith("configuration ok")


def test_health_and_alert_settings_are_read_and_checked():
    s = load_settings(environ={}, overrides={
        "health": {"interval": 30, "scrub_max_age_days": None, "scrub_schedule": "0 3 * * 0",
                   "capacity": {"warning": 70, "critical": 85, "full": 97}},
        "alerts": {"webhooks": [{"url": "https://hooks.example/x?key=s", "kinds": ["pool_health"],
                                 "min_severity": "critical"}]}})
    assert s.health.interval == 30 and s.health.scrub_max_age_days is None and s.health.capacity.full == 97
    assert s.alerts.webhooks[0].kinds == ["pool_health"] and s.alerts.webhooks[0].min_severity == "critical"
    assert load_settings(environ={}).health.scrub_max_age_days == 35
    bad = [
        ({"health": {"capacity": {"warning": 90, "critical": 80}}}, "health.capacity"),
        ({"health": {"scrub_schedule": "every day"}}, "health.scrub_schedule"),
        ({"health": {"interval": 1}}, "health.interval"),
        ({"alerts": {"webhooks": [{"url": "ftp://x/y"}]}}, "alerts.webhooks[0].url"),
        ({"alerts": {"webhooks": [{"url": "http:///y"}]}}, "alerts.webhooks[0].url"),
        ({"alerts": {"webhooks": [{"url": "http://x", "kinds": ["disk"]}]}}, "alerts.webhooks[0].kinds"),
        ({"alerts": {"webhooks": [{"url": "http://x", "min_severity": "info"}]}}, "alerts.webhooks[0].min_severity"),
    ]
    for overrides, key in bad:
        with pytest.raises(SettingsError) as exc:
            load_settings(environ={}, overrides=overrides)
        assert f"config key {key}" in str(exc.value), (key, str(exc.value))
