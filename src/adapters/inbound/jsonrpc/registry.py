"""The method registry. Every method is declared once, as a row: a decorated adapter function whose signature
gives the use case it calls, its params Struct and its result Struct, and whose decorator gives the action,
the parameters that carry names (and what each carries) and the errors it can return. Dispatch, the
permission policy, rpc.discover and the README's method table are all derived from the registered rows."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any, Awaitable, Callable, Iterator, Mapping, TypeVar, get_type_hints

import msgspec
from msgspec import Meta

from zfsapi.domain.authz import Action, Carries, Principal
from zfsapi.domain.errors import PermissionDenied
from zfsapi.domain.jobs import ProgressMeter

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

# A msgspec pattern is searched (re.search), and `$` also matches before a final newline: "abc\n" would pass
# `^[A-Za-z0-9_-]+$`. `$(?!\n)` ends only at the end of the text, in Python and in a JSON Schema (ECMA-262)
# validator alike (`\Z` is Python's only), so rpc.discover's schema says the same as the server checks.
ID_PATTERN = r"^[A-Za-z0-9_-]+$(?!\n)"
# Every integer param has an upper bound: msgspec takes any JSON integer (2**64 and beyond), which SQLite and
# Redis cannot bind. An offset past this is past every record there can be.
MAX_OFFSET = 10**9

# The `background` param of methods declared with `background=True`.
Background = Annotated[bool, Meta(description=(
    "Run as a job: answer at once with {job_id}; the work goes on when the client disconnects (follow it with "
    "job_get, job_wait or GET /jobs/{job_id}/events, stop it with job_cancel)."))]


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who is calling and how: filled by the HTTP adapter, read by handlers and policy checks."""

    request_id: str
    peer: str
    principal: Principal | None  # None: unauthenticated
    passwordless: bool = False
    credentials_presented: bool = False  # an Authorization header came with the request
    auth_error: BaseException | None = None  # why the presented credentials were not accepted
    via: str = "none"  # how the principal was established: "token", "tcp uid N", "unix uid N" (for the audit)
    progress: ProgressMeter | None = None  # set when the call runs as a job: where it reports its progress
    job_id: str | None = None  # set when the call runs as a job: its id
    calls: list[tuple[str, int | None]] = field(default_factory=list)  # (method, error code) as each finishes

    @property
    def caller(self) -> Principal:
        """The authenticated caller. The policy lets no unauthenticated call reach a row that is not public, so
        this never falls back to anyone: without a principal it refuses."""
        if self.principal is None:
            raise PermissionDenied("call", None, "not authenticated")
        return self.principal

    def visible(self, names: list[str]) -> list[str]:
        """The names (datasets, snapshots, bookmarks) the caller may see."""
        return names if self.principal is None else self.principal.visible(names)


class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Base of every method's params: frozen, unknown fields refused."""


class NoParams(Params, frozen=True, forbid_unknown_fields=True):
    pass


class Result(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every method's result. Keys go out in field order; a key that is only sometimes sent defaults
    to msgspec.UNSET (constant keys are `Literal[True] = True` and always sent)."""


class JobStarted(Result, frozen=True, kw_only=True):
    """The answer to a call with `background: true`: the job now running it."""

    job_id: str


@dataclass(frozen=True, slots=True)
class Row:
    """One method as declared: `handler(use_case, params, ctx) -> result`."""

    name: str
    use_case: type[Any]
    params: type[Params]
    result: type[msgspec.Struct]
    handler: Callable[[Any, Any, CallContext], Awaitable[Any]]
    action: Action
    carries: tuple[tuple[str, Carries], ...]
    errors: tuple[type[BaseException], ...]
    summary: str
    public: bool
    background: bool  # `background: true` runs it as a job (its params Struct has the field)
    # `check(use_case, params, ctx)`: what the handler would refuse before its work starts, run before the call is
    # queued as a job, so a bad path is the call's -32602 rather than the job's
    check: Callable[[Any, Any, CallContext], Awaitable[None]] | None = None


class Table:
    """A module's rows, declared by decorating each method's adapter function with `method(...)`.

    `errors` are the errors every method of the table can return (e.g. the zfs command's own failures).
    """

    def __init__(self, *, errors: tuple[type[BaseException], ...] = ()) -> None:
        self.rows: list[Row] = []
        self._errors = errors

    def method(self, action: Action, *, carries: Mapping[str, Carries] | None = None,
               errors: tuple[type[BaseException], ...] = (), public: bool = False,
               name: str | None = None, background: bool = False,
               check: Callable[[Any, Any, CallContext], Awaitable[None]] | None = None) -> Callable[[F], F]:
        """Declare the decorated `async def <method>(use_case: UC, p: ParamsStruct, ctx) -> ResultStruct`.

        The method is named after the function unless `name` is given; its summary is the first paragraph of
        the function's docstring, else of the use case's. A `background` method's params have a `background`
        field: true makes the call a job (answered at once with its id) that runs the same handler, reporting
        to `ctx.progress`; `check(use_case, params, ctx)`, when given, runs before such a job is queued.
        """

        def declare(handler: F) -> F:
            self.rows.append(_row(handler, name or handler.__name__, action, dict(carries or {}),
                                  tuple(dict.fromkeys((*errors, *self._errors))), public, background, check))
            return handler

        return declare

    @classmethod
    def joined(cls, *tables: Table) -> Table:
        """One table of the rows of `tables`, in their order (each row keeps the errors its own table added)."""
        table = cls()
        table.rows = [row for part in tables for row in part]
        return table

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)


def _summary(doc: str | None) -> str:
    """A docstring's first paragraph on one line."""
    return " ".join((doc or "").split("\n\n")[0].split())


def _row(handler: Callable[..., Awaitable[Any]], name: str, action: Action, carries: dict[str, Carries],
         errors: tuple[type[BaseException], ...], public: bool, background: bool,
         check: Callable[[Any, Any, CallContext], Awaitable[None]] | None = None) -> Row:
    hints = get_type_hints(handler)
    positional = list(inspect.signature(handler).parameters)
    if len(positional) != 3:
        raise TypeError(f"{name}: a row's handler takes (use_case, params, ctx)")
    use_case, params, result = hints.get(positional[0]), hints.get(positional[1]), hints.get("return")
    if not (isinstance(params, type) and issubclass(params, Params)):
        raise TypeError(f"{name}: params must be annotated with a Params Struct, not {params!r}")
    if not (isinstance(result, type) and issubclass(result, msgspec.Struct)):
        raise TypeError(f"{name}: the result must be annotated with a Struct, not {result!r}")
    if not isinstance(use_case, type):
        raise TypeError(f"{name}: the use case must be annotated with its class, not {use_case!r}")
    unknown = sorted(set(carries) - set(params.__struct_fields__))
    if unknown:
        raise ValueError(f"{name}: carries names params {params.__name__} lacks: {', '.join(unknown)}")
    if background and "background" not in params.__struct_fields__:
        raise ValueError(f"{name}: a background method's params need a `background` field")
    summary = _summary(handler.__doc__ or use_case.__doc__)
    if not summary:
        raise ValueError(f"{name}: no summary (a docstring on the handler or on {use_case.__name__})")
    return Row(name, use_case, params, result, handler, action, tuple(carries.items()), errors, summary, public,
               background, check)


@dataclass(frozen=True, slots=True)
class Method:
    """A registered method, its handler bound to its use case: what the dispatcher calls."""

    name: str
    params: type[Params]
    handler: Callable[[Any, CallContext], Awaitable[Any]]
    summary: str
    result: type[msgspec.Struct]
    action: Action  # what it does, for permission checks
    public: bool  # callable without authentication (auth_login, rpc.discover)
    fields: tuple[str, ...]  # declared param order, for positional params
    carries: tuple[tuple[str, Carries], ...]  # params read by the permission policy
    errors: tuple[type[BaseException], ...]  # the errors it can return besides the protocol's own
    background: bool = False  # `background: true` makes the call a job
    check: Callable[[Any, CallContext], Awaitable[None]] | None = None  # before such a job is queued (see Row)

class Registry:
    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}

    def include(self, table: Table, use_case: Callable[[type[Any]], Any]) -> None:
        """Register every row of `table`, each bound to the instance `use_case(row.use_case)`."""
        for row in table:
            bound = use_case(row.use_case)
            self._put(Method(row.name, row.params, partial(row.handler, bound), row.summary,
                             row.result, row.action, row.public, row.params.__struct_fields__, row.carries,
                             row.errors, row.background, None if row.check is None else partial(row.check, bound)))

    def _put(self, method: Method) -> None:
        if method.name in self._methods:
            raise ValueError(f"method {method.name} registered twice")
        self._methods[method.name] = method

    def get(self, name: str) -> Method | None:
        return self._methods.get(name)

    def __iter__(self) -> Iterator[Method]:
        return iter(self._methods.values())

    def __contains__(self, name: object) -> bool:
        return name in self._methods

