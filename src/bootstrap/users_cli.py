"""`zfsapi hash-password` and `zfsapi user add|list|remove|passwd|set-role`: Argon2id hashes, passwords read
without echo (or from stdin when it is not a terminal), the config file edited in place with its comments kept.
A running server applies the change on SIGHUP."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from zfsapi.adapters.inbound.cli.prompt import read_password
from zfsapi.adapters.outbound.auth.passwords import Argon2Passwords
from zfsapi.domain.errors import InvalidArgument
from zfsapi.domain.names import DatasetName

ROLES = ("admin", "operator", "readonly")


def hash_password(profile: str = "rfc9106-low-memory") -> str:
    hasher = Argon2Passwords(workers=1, profile=profile)
    try:
        return hasher.hash(read_password())
    finally:
        hasher.close()


def _checked_prefixes(datasets: list[str]) -> list[str]:
    for prefix in datasets:
        try:
            DatasetName.parse(prefix)
        except InvalidArgument as exc:
            raise SystemExit(f"zfsapi: --dataset {prefix!r}: {exc.reason}") from None
    return list(datasets)


def _load(config: Path, create: bool = False) -> tuple[YAML, Any]:
    """The config document (round-trip: comments, order and layout survive)."""
    yaml = YAML()
    try:
        doc = yaml.load(config.read_text())
    except FileNotFoundError:
        if not create:
            raise SystemExit(f"zfsapi: {config}: no such file") from None
        doc = None
    except OSError as exc:
        raise SystemExit(f"zfsapi: {config}: {exc.strerror}") from None
    return yaml, {} if doc is None else doc


def _users(doc: Any) -> Any:
    auth = doc.setdefault("auth", {})
    if auth.get("users") is None:
        auth["users"] = {}
    return auth["users"]


def _existing(doc: Any, name: str, config: Path) -> Any:
    users = _users(doc)
    if name not in users:
        raise SystemExit(f"zfsapi: no user {name!r} in {config}")
    return users


def _save(config: Path, yaml: YAML, doc: Any) -> None:
    """Replace the file atomically, keeping its mode (a new file is 0600: it holds password hashes)."""
    fd, tmp = tempfile.mkstemp(dir=config.parent, prefix=f".{config.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            yaml.dump(doc, f)
        os.chmod(tmp, config.stat().st_mode & 0o7777 if config.exists() else 0o600)
        os.replace(tmp, config)
    except BaseException:
        os.unlink(tmp)
        raise


def add_user(config: Path, name: str, role: str, datasets: list[str], profile: str) -> None:
    if not name or any(c.isspace() for c in name) or len(name) > 256:
        raise SystemExit(f"zfsapi: {name!r} is not a usable user name")
    prefixes = _checked_prefixes(datasets)
    yaml, doc = _load(config, create=True)
    users = _users(doc)
    entry: dict[str, object] = {"password_hash": hash_password(profile), "role": role}
    if prefixes:
        entry["datasets"] = prefixes
    replaced = name in users
    users[name] = entry
    _save(config, yaml, doc)
    print(f"{'updated' if replaced else 'added'} user {name} ({role}) in {config}")


def _describe(entry: Any) -> tuple[str, list[str]]:
    """(role, dataset prefixes) of a user entry; the old form (name: hash) is an admin of everything."""
    if isinstance(entry, str):
        return "admin", []
    return str(entry.get("role", "readonly")), [str(d) for d in entry.get("datasets") or []]


def list_users(config: Path) -> None:
    _, doc = _load(config)
    users = _users(doc)
    if not users:
        print(f"no users in {config}")
        return
    print("NAME\tROLE\tDATASETS")
    for name, entry in users.items():
        role, prefixes = _describe(entry)
        print(f"{name}\t{role}\t{', '.join(prefixes) or '(all datasets)'}")


def remove_user(config: Path, name: str) -> None:
    yaml, doc = _load(config)
    del _existing(doc, name, config)[name]
    _save(config, yaml, doc)
    print(f"removed user {name} from {config}")


def set_password(config: Path, name: str, profile: str) -> None:
    yaml, doc = _load(config)
    users = _existing(doc, name, config)
    digest = hash_password(profile)
    if isinstance(users[name], str):  # the old form stays the old form
        users[name] = digest
    else:
        users[name]["password_hash"] = digest
    _save(config, yaml, doc)
    print(f"new password for user {name} in {config}")


def set_role(config: Path, name: str, role: str, datasets: list[str] | None) -> None:
    """Change the role, and the dataset prefixes when given (else they stay)."""
    prefixes = None if datasets is None else _checked_prefixes(datasets)
    yaml, doc = _load(config)
    users = _existing(doc, name, config)
    if isinstance(users[name], str):  # the old form (name: hash) becomes the full form
        users[name] = {"password_hash": users[name]}
    entry = users[name]
    entry["role"] = role
    if prefixes is not None:
        if prefixes:
            entry["datasets"] = prefixes
        else:
            entry.pop("datasets", None)
    _save(config, yaml, doc)
    print(f"user {name} is now {role} ({', '.join(_describe(entry)[1]) or 'all datasets'}) in {config}")
