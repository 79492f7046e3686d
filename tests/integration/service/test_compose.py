"""compose.yaml, as far as this machine (no Docker engine) can check it: the healthcheck runs a program that the
Dockerfile's own steps create (its venv's python, since the image puts no `python` on PATH), and the check's
script, run with such a venv against a real `zfsapi serve`, passes while the server is healthy and fails when
/health answers 503 (no ZFS): exactly what Docker would see."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from .conftest import serve_process

ROOT = Path(__file__).resolve().parents[3]


def test_the_healthcheck_program_is_made_by_the_dockerfile_and_the_check_tells_health(tmp_path):
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    test = compose["services"]["zfsapi"]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[2] == "-c", test
    program, script = test[1], test[3]
    dockerfile = (ROOT / "Dockerfile").read_text()
    venv = re.search(r"python3 -m venv (\S+)", dockerfile)
    assert venv is not None and program == f"{venv.group(1)}/bin/python", (program, dockerfile)
    assert f"{venv.group(1)}/bin/zfsapi" in dockerfile  # the image's entrypoint lives in the same venv
    port = compose["services"]["zfsapi"]["environment"]["ZFSAPI_SERVER__HTTP__PORT"]
    assert f"127.0.0.1:{port}/health" in script

    # the same steps here: a venv made by `python3 -m venv`, its python running the check's script
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True, timeout=120)
    python = tmp_path / "venv" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZFSAPI_")}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"state_dir: {tmp_path}/state\nzfs: {{zfs: /nonexistent/zfs, zpool: /nonexistent/zpool}}\n")
    for simulate, healthy in ((["--simulate"], True), ([], False)):
        proc, _, url = serve_process(tmp_path, "--config", str(cfg), *simulate, env=env)
        try:
            check = subprocess.run([str(python), "-c", script.replace(f"127.0.0.1:{port}", url.split("//")[1])],
                                   capture_output=True, text=True, timeout=60)
            assert (check.returncode == 0) is healthy, (simulate, check.returncode, check.stderr[-500:])
        finally:
            proc.terminate()
            proc.wait(30)
