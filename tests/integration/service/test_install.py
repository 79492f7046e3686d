"""scripts/install into a temporary tree: a venv with the project, the command linked, the systemd unit written
with that command and passed by `systemd-analyze verify`; --uninstall removes all of it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None and not os.environ.get("CI"),
                    reason="systemd-analyze is not installed (CI has it: systemd is part of Debian)")
def test_install_links_the_command_and_verifies_the_unit(tmp_path):
    opt, bin_, units = tmp_path / "opt", tmp_path / "bin", tmp_path / "units"
    r = subprocess.run([str(ROOT / "scripts/install"), "--prefix", str(opt), "--bin", str(bin_), "--unit-dir",
                        str(units), "--systemd"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{units}/zfsapi.service verified" in r.stdout
    assert os.readlink(bin_ / "zfsapi") == str(opt / "bin" / "zfsapi")
    version = subprocess.run([str(bin_ / "zfsapi"), "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and version.stdout.startswith("zfsapi "), version.stderr
    unit = (units / "zfsapi.service").read_text()
    assert f"ExecStart={bin_}/zfsapi serve --config /etc/zfsapi/config.yaml" in unit
    assert "/usr/local/bin" not in unit
    # the unit as shipped names the command the default install makes
    assert "ExecStart=/usr/local/bin/zfsapi serve" in (ROOT / "packaging/zfsapi.service").read_text()
    r = subprocess.run([str(ROOT / "scripts/install"), "--prefix", str(opt), "--bin", str(bin_), "--unit-dir",
                        str(units), "--uninstall"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert not opt.exists() and not (bin_ / "zfsapi").exists() and not (units / "zfsapi.service").exists()
