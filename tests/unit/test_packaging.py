"""packaging/zfsapi.service: systemd's own checker finds nothing to say about it, and it keeps zfs's mounts
visible to the host (no option that gives the service a private mount namespace)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "packaging" / "zfsapi.service"


def unit() -> dict[str, list[str]]:
    """[Service] keys -> their values (a key may repeat)."""
    out: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_systemd_analyze_verify_is_silent(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    # the unit as shipped, with ExecStart pointing at this checkout's entry point (verify wants it executable)
    entry = Path(sys.executable).with_name("zfsapi")
    text = UNIT.read_text().replace("/usr/local/bin/zfsapi", str(entry))
    assert str(entry) in text
    (tmp_path / "zfsapi.service").write_text(text)
    r = subprocess.run([analyze, "verify", "--man=no", str(tmp_path / "zfsapi.service")], capture_output=True,
                       text=True, timeout=120)
    if "Failed to initialize" in r.stderr or "Operation not permitted" in r.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {r.stderr.strip()}")
    assert (r.returncode, r.stderr, r.stdout) == (0, "", "")  # unknown keys and bad values are warnings: none


def test_the_unit_notifies_restarts_and_reaches_dev_zfs():
    s = unit()
    assert s["Type"] == ["notify"] and s["Restart"] == ["on-failure"] and s["WatchdogSec"] == ["30s"]
    assert "/dev/zfs rw" in s["DeviceAllow"] and s["DevicePolicy"] == ["closed"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert "CAP_SYS_ADMIN" in s["CapabilityBoundingSet"][0].split()
    assert "@mount" in s["SystemCallFilter"][0].split()
    # each of these makes a private mount namespace: a dataset mounted by zfsapi would not appear on the host
    namespacing = {"ProtectSystem", "ProtectHome", "ReadWritePaths", "ReadOnlyPaths", "PrivateTmp", "PrivateDevices",
                   "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
                   "PrivateMounts", "TemporaryFileSystem", "BindPaths", "InaccessiblePaths", "MountFlags"}
    assert namespacing.isdisjoint(s)
