"""Imports point inward: domain imports nothing of ours; application only domain; protocol (the JSON-RPC wire,
shared by the server, the replica on another zfsapi and the command-line client) only domain; adapters
application, protocol and domain (inbound never outbound, outbound never inbound); only bootstrap (and `python -m
zfsapi`) imports bootstrap. domain and application import the standard library only (no framework, no driver,
no subprocess; the domain may also use croniter, pure date arithmetic).
Every import counts: relative ones, `from zfsapi import x`, and those inside functions or TYPE_CHECKING blocks."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "zfsapi"

# the layers of ours that each layer may import ("root": the package itself, e.g. zfsapi.__version__)
ALLOWED = {
    "root": set(),
    "domain": {"domain"},
    "application": {"domain", "application"},
    "protocol": {"domain", "protocol", "root"},
    "adapters": {"domain", "application", "protocol", "adapters", "root"},
    "adapters.inbound": {"domain", "application", "protocol", "adapters", "adapters.inbound", "root"},
    "adapters.outbound": {"domain", "application", "protocol", "adapters", "adapters.outbound", "root"},
    "bootstrap": {"domain", "application", "protocol", "adapters", "adapters.inbound", "adapters.outbound",
                  "bootstrap", "root"},
}
PURE = {"domain", "application"}  # standard library only
# ...and these pure-computation libraries (no I/O, no framework): croniter reads cron expressions for
# domain/schedules.py (issue 19: a maintained cron library rather than our own parser)
PURE_LIBRARIES = {"domain": {"croniter"}}


def layer(module: str) -> str:
    parts = module.split(".")[1:]
    if parts[:1] == ["__main__"]:  # `python -m zfsapi`: an entry point, like the CLI
        return "bootstrap"
    if parts[:1] == ["adapters"] and parts[1:2] in (["inbound"], ["outbound"]):
        return "adapters." + parts[1]
    if parts[:1] and parts[0] in ALLOWED:
        return parts[0]
    return "root"


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def imported(root: Path, path: Path) -> Iterator[str]:
    """Every module (or module.name) the file imports, anywhere in it, relative imports resolved."""
    module = module_name(root, path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            yield from (base if alias.name == "*" else f"{base}.{alias.name}" for alias in node.names)


def violations(root: Path) -> list[str]:
    """The imports under `root` (the source of the package zfsapi) that break the rules above."""
    out = []
    for path in sorted(root.rglob("*.py")):
        source = layer(module_name(root, path))
        for name in imported(root, path):
            top = name.partition(".")[0]
            if top == PACKAGE:
                bad = layer(name) not in ALLOWED[source]
            else:
                bad = source in PURE and (top not in sys.stdlib_module_names or top == "subprocess") \
                    and top not in PURE_LIBRARIES.get(source, set())
            if bad:
                out.append(f"{path.relative_to(root)}: {source} imports {name}")
    return out


def test_imports_point_inward() -> None:
    assert {layer(module_name(SRC, path)) for path in SRC.rglob("*.py")} == set(ALLOWED)
    assert violations(SRC) == []


def test_every_kind_of_violation_is_reported(tmp_path: Path) -> None:
    files = {
        "__init__.py": "",
        "__main__.py": "from zfsapi.bootstrap.cli import main\n",
        "domain/__init__.py": "",
        "domain/names.py": "import re\nfrom zfsapi import __version__\n",
        "domain/lazy.py": "def f():\n    from ..application.ports import Clock\n",
        "application/__init__.py": "from . import ports\nfrom ..domain import names\n",
        "application/ports.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from zfsapi.adapters.outbound import clock\n"
        ),
        "application/driver.py": "import msgspec\nimport subprocess\nimport os.path\n",
        "adapters/__init__.py": "",
        "adapters/metrics.py": "import prometheus_client\nfrom zfsapi.application.ports import Clock\n",
        "adapters/inbound/__init__.py": "",
        "adapters/inbound/app.py": (
            "import litestar\nfrom zfsapi import __version__\nfrom .. import metrics\n"
            "from ...application import ports\nfrom ..outbound import clock\n"
        ),
        "adapters/inbound/star.py": "from zfsapi.adapters.outbound.clock import *\n",
        "adapters/outbound/__init__.py": "",
        "adapters/outbound/clock.py": "import zfsapi.adapters.inbound.app\n",
        "adapters/outbound/late.py": "def build():\n    from zfsapi import bootstrap\n",
        "bootstrap/__init__.py": "from ..adapters.inbound import app\nfrom ..adapters.outbound import clock\n",
        "bootstrap/cli.py": "from . import containers\nimport zfsapi\n",
        "protocol/__init__.py": "",
        "protocol/codec.py": "from zfsapi.domain.errors import NotFound\nfrom . import codes\nimport msgspec\n",
        "protocol/client.py": "from zfsapi.application.ports import Clock\n",
        "protocol/replica.py": "from ..adapters.outbound import clock\n",
        "protocol/server.py": "def f():\n    from zfsapi.adapters.inbound import app\n",
        "domain/wire.py": "from zfsapi.protocol import codec\n",
        "application/wire.py": "from ..protocol.codes import NOT_FOUND\n",
        "adapters/outbound/remote.py": "from zfsapi.protocol.client import RpcClient\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert violations(tmp_path) == [
        "adapters/inbound/app.py: adapters.inbound imports zfsapi.adapters.outbound.clock",
        "adapters/inbound/star.py: adapters.inbound imports zfsapi.adapters.outbound.clock",
        "adapters/outbound/clock.py: adapters.outbound imports zfsapi.adapters.inbound.app",
        "adapters/outbound/late.py: adapters.outbound imports zfsapi.bootstrap",
        "application/driver.py: application imports msgspec",
        "application/driver.py: application imports subprocess",
        "application/ports.py: application imports zfsapi.adapters.outbound.clock",
        "application/wire.py: application imports zfsapi.protocol.codes.NOT_FOUND",
        "domain/lazy.py: domain imports zfsapi.application.ports.Clock",
        "domain/names.py: domain imports zfsapi.__version__",
        "domain/wire.py: domain imports zfsapi.protocol.codec",
        "protocol/client.py: protocol imports zfsapi.application.ports.Clock",
        "protocol/replica.py: protocol imports zfsapi.adapters.outbound.clock",
        "protocol/server.py: protocol imports zfsapi.adapters.inbound.app",
    ]


def test_protocol_imports_the_domain_only_and_only_outer_layers_import_it() -> None:
    """zfsapi.protocol is neutral ground: no adapter or application module in it, and neither the domain nor
    the application knows the wire."""
    protocol = SRC / "protocol"
    assert layer("zfsapi.protocol.codec") == "protocol" and (protocol / "__init__.py").is_file()
    ours = {name for path in protocol.rglob("*.py") for name in imported(SRC, path)
            if name.partition(".")[0] == PACKAGE}
    assert ours and {layer(name) for name in ours} <= {"domain", "protocol"}
    for source, allowed in ALLOWED.items():
        assert ("protocol" in allowed) == (source in ("protocol", "adapters", "adapters.inbound",
                                                       "adapters.outbound", "bootstrap")), source
    users = {layer(module_name(SRC, path)) for path in SRC.rglob("*.py")
             if any(layer(name) == "protocol" for name in imported(SRC, path))} - {"protocol"}
    assert users and users <= {"adapters.inbound", "adapters.outbound", "bootstrap"}
