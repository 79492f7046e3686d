"""Imports point inward: domain imports nothing of ours; application only domain; adapters not bootstrap;
inbound never outbound; domain and application import no framework or driver."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
FRAMEWORKS = {"litestar", "redis", "msgspec", "uvicorn", "prometheus_client", "dependency_injector", "jwt",
              "argon2", "subprocess", "yaml", "httpx", "bcrypt"}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = "zfsapi." + ".".join(path.relative_to(SRC).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] + ".__init__"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: -node.level]
                out.append(".".join(base + ([node.module] if node.module else [])))
            else:
                out.append(node.module or "")
    return out


def _layer(path: Path) -> str:
    parts = path.relative_to(SRC).parts
    if parts[0] == "adapters" and len(parts) > 2:
        return f"adapters.{parts[1]}"
    return parts[0] if len(parts) > 1 else "root"


FORBIDDEN = {
    "domain": ("zfsapi.application", "zfsapi.adapters", "zfsapi.bootstrap"),
    "application": ("zfsapi.adapters", "zfsapi.bootstrap"),
    "adapters.inbound": ("zfsapi.adapters.outbound", "zfsapi.bootstrap"),
    "adapters.outbound": ("zfsapi.adapters.inbound", "zfsapi.bootstrap"),
    "adapters": ("zfsapi.bootstrap",),
}


def test_imports_point_inward():
    violations = []
    files = list(SRC.rglob("*.py"))
    assert len(files) > 20
    for path in files:
        layer = _layer(path)
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN.get(layer, ())):
                violations.append(f"{path.relative_to(SRC)} imports {name}")
            if layer in ("domain", "application") and name.split(".")[0] in FRAMEWORKS:
                violations.append(f"{path.relative_to(SRC)} imports the framework/driver {name}")
            if layer == "domain" and name.startswith("zfsapi.") and not name.startswith("zfsapi.domain"):
                violations.append(f"{path.relative_to(SRC)} imports {name}")
    assert violations == []


def test_the_checker_sees_a_violation(tmp_path):
    bad = SRC / "domain" / "_probe_violation.py"
    bad.write_text("from zfsapi.adapters.outbound.zfs import gateway\nimport litestar\n")
    try:
        assert "zfsapi.adapters.outbound.zfs" in _imports(bad)
        assert _layer(bad) == "domain"
    finally:
        bad.unlink()
