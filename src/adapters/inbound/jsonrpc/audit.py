"""The audit trail: one structured line for every call that changes something (whether it ran, was refused or
failed) and for every login and logout. Who (the principal, or the username a login tried), how they were
authenticated, from where, what method on which names, and the outcome with its JSON-RPC code. Parameters other
than names are never written: no password, token or property value reaches the trail."""

from __future__ import annotations

import logging
from typing import Any

from zfsapi.domain.authz import Action, Carries
from zfsapi.protocol.codes import refused

from .registry import CallContext, Method

log = logging.getLogger("zfsapi.audit")
_AUDITED = (Action.CHANGE, Action.DESTROY)
_NAMES = (Carries.DATASET, Carries.SNAPSHOT, Carries.POOL)
_MAX = 1024  # a name longer than any ZFS name is cut: the trail records, it does not amplify


def audited(method: Method) -> bool:
    return method.action in _AUDITED or method.name.startswith("auth_")


def _text(value: object) -> str | None:
    return value[:_MAX] if isinstance(value, str) else None


def record(method: Method, params: Any, raw: object, ctx: CallContext, code: int | None) -> None:
    """Write the line. `params` is the converted Struct, or None when the params were refused (then the names
    are read from the raw request params, as sent)."""
    def value(field: str) -> object:
        if params is not None:
            return getattr(params, field, None)
        return raw.get(field) if isinstance(raw, dict) else None

    targets = [t for field, kind in method.carries if kind in _NAMES and (t := _text(value(field))) is not None]
    entry: dict[str, Any] = {
        "audit": True,
        "method": method.name,
        "principal": ctx.principal.name if ctx.principal is not None else None,
        "auth": ctx.via,
        "peer": ctx.peer,
        "targets": targets,
        "outcome": "ok" if code is None else "refused" if refused(code) else "failed",
        "code": code,
    }
    if method.name == "auth_login":
        entry["username"] = _text(value("username"))
    log.info(method.name, extra=entry)
