from __future__ import annotations

from pathlib import Path

import yaml

from zfsapi.bootstrap.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_compose_is_valid_and_loopback_only():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert set(compose["services"]) == {"zfsapi", "redis"}
    for service in compose["services"].values():
        assert service["network_mode"] == "host" and "ports" not in service
    assert "127.0.0.1" in compose["services"]["redis"]["command"]
    assert compose["services"]["zfsapi"]["environment"]["ZFSAPI_SERVER__HTTP__HOST"] == "127.0.0.1"
    check = " ".join(compose["services"]["zfsapi"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8545/health" in check
    redis = compose["services"]["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert "redis-data:/data" in redis["volumes"] and "redis-data" in compose["volumes"]


def test_license_is_shipped_and_declared():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()


def test_example_config_loads():
    s = load_settings(ROOT / "config.example.yaml", environ={})
    assert s.server.http.host == "127.0.0.1" and s.auth.users == {}
