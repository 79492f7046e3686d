"""`zfsapi hash-password` and `zfsapi user add NAME`: Argon2id hashes, passwords read without echo (or from
stdin when it is not a terminal), the config file edited in place with its comments kept."""

from __future__ import annotations

import getpass
import os
import sys
import tempfile
from pathlib import Path

from ruamel.yaml import YAML

from zfsapi.adapters.outbound.auth.passwords import Argon2Passwords
from zfsapi.domain.errors import InvalidArgument
from zfsapi.domain.names import DatasetName


def read_password(confirm: bool = True) -> str:
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Again: ") != password:
            raise SystemExit("zfsapi: the passwords differ")
    if not password:
        raise SystemExit("zfsapi: empty password")
    return password


def hash_password(profile: str = "rfc9106-low-memory") -> str:
    hasher = Argon2Passwords(workers=1, profile=profile)
    try:
        return hasher.hash(read_password())
    finally:
        hasher.close()


def add_user(config: Path, name: str, role: str, datasets: list[str], profile: str) -> None:
    if not name or any(c.isspace() for c in name) or len(name) > 256:
        raise SystemExit(f"zfsapi: {name!r} is not a usable user name")
    for prefix in datasets:
        try:
            DatasetName.parse(prefix)
        except InvalidArgument as exc:
            raise SystemExit(f"zfsapi: --dataset {prefix!r}: {exc.reason}") from None
    yaml = YAML()  # round-trip: comments, order and layout survive
    doc = yaml.load(config.read_text()) if config.exists() else None
    if doc is None:
        doc = {}
    auth = doc.setdefault("auth", {})
    users = auth.get("users") or {}
    auth["users"] = users
    entry: dict[str, object] = {"password_hash": hash_password(profile), "role": role}
    if datasets:
        entry["datasets"] = list(datasets)
    replaced = name in users
    users[name] = entry
    fd, tmp = tempfile.mkstemp(dir=config.parent, prefix=f".{config.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            yaml.dump(doc, f)
        os.chmod(tmp, config.stat().st_mode & 0o7777 if config.exists() else 0o600)
        os.replace(tmp, config)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"{'updated' if replaced else 'added'} user {name} ({role}) in {config}")
