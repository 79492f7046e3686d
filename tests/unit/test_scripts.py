"""The scripts answer --help with their usage (exit 0, nothing started) and refuse what they do not know (2)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script, first", [("scripts/test", "The whole test suite"),
                                           ("scripts/zfs-testhost", "zfs-testhost: a throwaway")])
def test_help_is_the_usage_and_starts_nothing(script, first):
    r = subprocess.run([str(ROOT / script), "--help"], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert r.stdout.startswith(first) and "set -euo" not in r.stdout
    r = subprocess.run([str(ROOT / script), "--no-such-thing"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == "" and "--no-such-thing" in r.stderr
