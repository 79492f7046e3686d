"""The method registry: name -> (params Struct, handler, docs). Feeds the dispatcher and rpc.discover."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Generic, TypeVar

import msgspec

from zfsapi.domain.authz import Action, Principal

P = TypeVar("P", bound=msgspec.Struct)


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who is calling and how: filled by the HTTP adapter, read by handlers and policy checks."""

    request_id: str
    peer: str
    principal: Principal | None  # None: unauthenticated
    passwordless: bool = False
    credentials_presented: bool = False  # an Authorization header came with the request
    auth_error: BaseException | None = None  # why the presented credentials were not accepted

    def visible(self, names: list[str]) -> list[str]:
        """The names (datasets, snapshots, bookmarks) the caller may see."""
        return names if self.principal is None else self.principal.visible(names)


@dataclass(frozen=True, slots=True)
class Method(Generic[P]):
    name: str
    params: type[P]
    handler: Callable[[P, CallContext], Awaitable[Any]]
    summary: str
    result: tuple[str, ...]  # the result's keys, for rpc.discover
    action: Action  # what it does, for permission checks
    public: bool = False  # callable without authentication (auth_login, rpc.discover)
    fields: tuple[str, ...] = ()  # declared param order, for positional params


class Registry:
    def __init__(self) -> None:
        self._methods: dict[str, Method[Any]] = {}

    def add(
        self,
        name: str,
        params: type[P],
        handler: Callable[[P, CallContext], Awaitable[Any]],
        *,
        summary: str,
        result: tuple[str, ...],
        action: Action,
        public: bool = False,
    ) -> None:
        if name in self._methods:
            raise ValueError(f"method {name} registered twice")
        self._methods[name] = Method(name, params, handler, summary, result, action, public,
                                     params.__struct_fields__)

    def get(self, name: str) -> Method[Any] | None:
        return self._methods.get(name)

    def __iter__(self):
        return iter(self._methods.values())

    def __contains__(self, name: object) -> bool:
        return name in self._methods


class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Base of every method's params: frozen, unknown fields refused."""


class NoParams(Params, frozen=True, forbid_unknown_fields=True):
    pass
