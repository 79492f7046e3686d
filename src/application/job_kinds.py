"""Job kinds: what each kind of job is and what runs it, one row per kind.

A row names the kind, decodes the spec its records hold (encoded once, when the job was submitted), runs it with
the job's context (its record, the owner with the rights they have when it starts) reporting to the job's meter,
says what it asks of its owner's rights and whether an interrupted run may be queued again. The job runner finds
every job's work in `JobKinds`; a new kind is one more row. The migration row is in `migrations`; the rows of the
methods that run as jobs with `background: true` are their own handlers, built where those are (the inbound
adapter)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import (
    Any,
    Awaitable,
    Callable,
    Generic,
    Iterable,
    Iterator,
    Mapping,
    TypeVar,
)

from zfsapi.domain.authz import AccessRequest, Action, Principal
from zfsapi.domain.jobs import Job, ProgressMeter

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class JobContext:
    """The job being run: its record as claimed, the owner with the role and scope they have now."""

    job: Job

    @property
    def who(self) -> Principal:
        return self.job.owner.principal()


@dataclass(frozen=True, slots=True)
class JobKind(Generic[S]):
    """One kind of job: `decode` its record's params into the spec `run` takes; `access`: what the spec asks of
    its owner's rights (None: a change of the names the job recorded); `resumable`: an interrupted run is queued
    again (the work picks up where the last one stopped)."""

    name: str
    decode: Callable[[Mapping[str, Any]], S]
    run: Callable[[S, JobContext, ProgressMeter], Awaitable[dict[str, Any]]]
    access: Callable[[S], AccessRequest] | None = None
    resumable: bool = False

    def request(self, job: Job) -> AccessRequest:
        """What the job asks of its owner's rights, from its spec."""
        recorded = AccessRequest(job.kind, Action.CHANGE, job.datasets)
        if self.access is None:
            return recorded
        try:
            spec = self.decode(job.params)
        except Exception:  # a spec this version no longer reads: the job fails on it as it runs
            return recorded
        return self.access(spec)

    async def start(self, job: Job, meter: ProgressMeter) -> dict[str, Any]:
        """Run the job (its spec decoded here: a spec that does not decode is the job's failure)."""
        return await self.run(self.decode(job.params), JobContext(job), meter)


class JobKinds(Mapping[str, JobKind[Any]]):
    """Every kind this process runs, by name."""

    def __init__(self, *groups: Iterable[JobKind[Any]]) -> None:
        self._rows: dict[str, JobKind[Any]] = {}
        for row in (row for group in groups for row in group):
            if row.name in self._rows:
                raise ValueError(f"two rows for the job kind {row.name}")
            self._rows[row.name] = row

    def __getitem__(self, name: str) -> JobKind[Any]:
        return self._rows[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def resumable(self) -> frozenset[str]:
        return frozenset(name for name, row in self._rows.items() if row.resumable)
