"""The migration job kind (migration_create): its spec, a validated replication, and `Replicate` running it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Mapping

from zfsapi.domain.authz import AccessRequest, Action, Carries, access_request
from zfsapi.domain.jobs import ProgressMeter
from zfsapi.domain.replication import ReplicationSpec

from .job_kinds import JobContext, JobKind
from .replication import METHOD, Replicate


def replication_spec(params: Mapping[str, Any]) -> ReplicationSpec:
    """migration_create's params as the replication they ask for, every name and number validated (errors name
    the param). `lz4` (the old server's word) is served by zstd, one program on both sides."""
    compression = params.get("compression")
    return ReplicationSpec.parse(source=params["source"], destination=params["destination"],
                                 remote=params.get("remote"), limit=params.get("limit"),
                                 compression="zstd" if compression == "lz4" else compression,
                                 recursive=params.get("recursive", False), sync=params.get("sync", True))


def migration_kind(replicate: Replicate) -> JobKind[ReplicationSpec]:
    """Migrations: `Replicate` as the job's owner; a resumed run continues from the destination's resume token."""

    async def run(spec: ReplicationSpec, ctx: JobContext, meter: ProgressMeter) -> dict[str, Any]:
        done = await replicate.execute(who=ctx.who, spec=spec, progress=meter)
        return {**asdict(done), "mode": done.mode.value}

    def access(spec: ReplicationSpec) -> AccessRequest:  # as the dispatcher asks it of migration_create
        return access_request(METHOD, Action.CHANGE, [(Carries.DATASET, spec.source.value),
                                                         (Carries.DATASET, spec.destination.value)])

    return JobKind(METHOD, replication_spec, run, access, resumable=True)
