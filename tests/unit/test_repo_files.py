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


def test_example_config_loads():
    s = load_settings(ROOT / "config.example.yaml", environ={})
    assert s.server.http.host == "127.0.0.1" and s.auth.users == {}
