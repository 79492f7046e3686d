"""send_estimate, send_to_file, receive_from_file, receive_abort, stream_init, stream_list, stream_cancel."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Annotated, Any, Literal

from msgspec import Meta

from zfsapi.application.transfers import AbortReceive, ReceiveFromFile, SendEstimate, SendToFile, TransferUseCases
from zfsapi.domain.authz import LOCALHOST, Action
from zfsapi.domain.errors import InvalidArgument
from zfsapi.domain.names import BookmarkName, DatasetName, SnapshotName, parse_snapshot_or_bookmark
from zfsapi.domain.transfer import Compression, Operation, SendSpec, StreamSession, size_human

from .methods import Name, iso, parse
from .registry import CallContext, NoParams, Params, Registry

_TOKEN = re.compile(r"[0-9a-f]+(-[0-9a-f]+){3}")
Token = Annotated[str, Meta(min_length=1, max_length=65536)]
Path = Annotated[str, Meta(min_length=1, max_length=4096)]


class SendEstimateParams(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name
    snapshot: Name
    from_snapshot: Name | None = None
    recursive: bool = False
    raw: bool = False
    native_compressed: bool = True


class SendToFileParams(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name
    snapshot: Name
    output_file: Path
    from_snapshot: Name | None = None
    recursive: bool = False
    compression: Literal["none", "gzip", "zstd"] = "none"
    compressed: bool = False  # legacy: true means gzip
    raw: bool = False
    native_compressed: bool = True


class ReceiveFromFileParams(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name
    input_file: Path
    force: bool = False
    resumable: bool = True
    compressed: bool | None = None  # legacy: true means gzip; null: by the file's suffix
    compression: Literal["none", "gzip", "zstd"] | None = None


class ReceiveAbortParams(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name


class StreamInitParams(Params, frozen=True, forbid_unknown_fields=True):
    operation: Literal["send", "receive"]
    dataset: Name | None = None
    snapshot: Name | None = None
    from_snapshot: Name | None = None
    target_dataset: Name | None = None
    force: bool = False
    resumable: bool = True
    resume_token: Token | None = None
    raw: bool = False
    native_compressed: bool = True
    recursive: bool = False
    ttl: Annotated[float, Meta(gt=0, le=10**9)] = 300  # finite: the service checks its own maximum


class StreamIdParams(Params, frozen=True, forbid_unknown_fields=True):
    stream_id: Annotated[str, Meta(min_length=1, max_length=128)]


def _snapshot(dataset: DatasetName, text: str, param: str = "snapshot") -> SnapshotName:
    if "@" in text:
        snap = parse(param, SnapshotName.parse, text)
        if snap.dataset != dataset:
            raise InvalidArgument(param, f"{text} is not a snapshot of {dataset.value}")
        return snap
    return parse(param, lambda s: SnapshotName.of(dataset, s), text)


def _origin(dataset: DatasetName, text: str | None) -> SnapshotName | BookmarkName | None:
    """from_snapshot: 'snap', '#bookmark', 'ds@snap' or 'ds#bookmark'."""
    if text is None:
        return None
    if text.startswith("#"):
        return parse("from_snapshot", BookmarkName.parse, dataset.value + text)
    if "@" in text or "#" in text:
        return parse("from_snapshot", parse_snapshot_or_bookmark, text)
    return parse("from_snapshot", lambda s: SnapshotName.of(dataset, s), text)


def _token(text: str) -> str:
    if not _TOKEN.fullmatch(text):
        raise InvalidArgument("resume_token", "not a zfs receive_resume_token")
    return text


def register_transfers(registry: Registry, uc: TransferUseCases) -> None:
    ds = lambda value, param="dataset": parse(param, DatasetName.parse, value)  # noqa: E731
    streams = uc.streams

    async def spec_of(p: Any) -> tuple[DatasetName, SendSpec]:
        name = ds(p.dataset)
        spec = SendSpec(_snapshot(name, p.snapshot), _origin(name, p.from_snapshot), recursive=p.recursive,
                        raw=p.raw, native_compressed=p.native_compressed)
        return name, await uc.plan_send.execute(spec=spec)

    async def send_estimate(p: SendEstimateParams, ctx: CallContext) -> dict[str, Any]:
        name, spec = await spec_of(p)
        size = await uc.send_estimate.execute(spec=spec)
        return {"dataset": name.value, "snapshot": spec.snapshot.short, "from_snapshot": p.from_snapshot,
                "size_bytes": size, "size_human": size_human(size), "raw": spec.raw}

    async def send_to_file(p: SendToFileParams, ctx: CallContext) -> dict[str, Any]:
        name, spec = await spec_of(p)
        compression = Compression(p.compression)
        if p.compressed and compression is Compression.NONE:
            compression = Compression.GZIP
        r = await uc.send_to_file.execute(spec=spec, output_file=p.output_file, compression=compression)
        return {"dataset": name.value, "snapshot": spec.snapshot.short, "from_snapshot": p.from_snapshot,
                "output_file": r.path, "compression": compression.value, "size_bytes": r.size_bytes,
                "sha256": r.sha256, "duration_seconds": round(r.duration, 3)}

    async def receive_from_file(p: ReceiveFromFileParams, ctx: CallContext) -> dict[str, Any]:
        name = ds(p.dataset)
        compression = Compression(p.compression) if p.compression else (
            Compression.GZIP if p.compressed else Compression.NONE if p.compressed is False else None)
        path, snapshot, took = await uc.receive_from_file.execute(target=name, input_file=p.input_file, force=p.force,
                                                       resumable=p.resumable, compression=compression)
        return {"dataset": name.value, "input_file": path, "snapshot": snapshot,
                "duration_seconds": round(took, 3)}

    async def receive_abort(p: ReceiveAbortParams, ctx: CallContext) -> dict[str, Any]:
        name = ds(p.dataset)
        await uc.receive_abort.execute(dataset=name)
        return {"dataset": name.value, "aborted": True}

    async def stream_init(p: StreamInitParams, ctx: CallContext) -> dict[str, Any]:
        op = Operation(p.operation)
        session = StreamSession(stream_id="", operation=op, username="", created=0, expires_at=0,
                                force=p.force, resumable=p.resumable, raw=p.raw,
                                native_compressed=p.native_compressed, recursive=p.recursive,
                                resume_token=_token(p.resume_token) if p.resume_token else None)
        if op is Operation.SEND:
            if p.resume_token is None:
                if p.dataset is None or p.snapshot is None:
                    raise InvalidArgument("snapshot" if p.dataset else "dataset",
                                          "a send needs dataset and snapshot (or resume_token)")
                name, spec = await spec_of(p)
                session = replace(session, dataset=name.value, snapshot=spec.snapshot.value, raw=spec.raw,
                                  from_snapshot=spec.from_.value if spec.from_ else None)
            elif p.dataset is not None:
                name = ds(p.dataset)
                session = replace(session, dataset=name.value,
                                  snapshot=_snapshot(name, p.snapshot).value if p.snapshot else None)
        else:
            if p.target_dataset is None:
                raise InvalidArgument("target_dataset", "a receive needs target_dataset")
            session = replace(session, target_dataset=ds(p.target_dataset, "target_dataset").value)
        created = await streams.init(ctx.principal or LOCALHOST, session, p.ttl)
        return {"stream_id": created.stream_id, "url": f"/stream/{created.stream_id}",
                "method": "GET" if op is Operation.SEND else "POST", "expires_at": iso(created.expires_at)}

    async def stream_list(p: NoParams, ctx: CallContext) -> dict[str, Any]:
        sessions = await streams.list(ctx.principal or LOCALHOST)
        return {"sessions": [{
            "stream_id": s.stream_id, "operation": s.operation.value, "dataset": s.dataset,
            "snapshot": s.snapshot, "target_dataset": s.target_dataset, "created": iso(s.created),
            "expires_at": iso(s.expires_at), "username": s.username, "state": s.state.value, "bytes": s.bytes,
            "error": s.error,
        } for s in sessions]}

    async def stream_cancel(p: StreamIdParams, ctx: CallContext) -> dict[str, Any]:
        await streams.cancel(ctx.principal or LOCALHOST, p.stream_id)
        return {"stream_id": p.stream_id, "cancelled": True}

    def add(name: str, params: type[Params], handler: Any, result: str, action: Action, doc: str) -> None:
        registry.add(name, params, handler, summary=" ".join(doc.split("\n\n")[0].split()),
                     result=tuple(result.split()), action=action)

    add("send_estimate", SendEstimateParams, send_estimate, "dataset snapshot from_snapshot size_bytes size_human",
        Action.READ, SendEstimate.__doc__ or "")
    add("send_to_file", SendToFileParams, send_to_file, "dataset snapshot from_snapshot output_file compression "
        "size_bytes sha256 duration_seconds", Action.CHANGE, SendToFile.__doc__ or "")
    add("receive_from_file", ReceiveFromFileParams, receive_from_file, "dataset input_file snapshot duration_seconds",
        Action.CHANGE, ReceiveFromFile.__doc__ or "")
    add("receive_abort", ReceiveAbortParams, receive_abort, "dataset aborted", Action.CHANGE,
        AbortReceive.__doc__ or "")
    add("stream_init", StreamInitParams, stream_init, "stream_id url method expires_at", Action.CHANGE,
        "Create a single-use stream session: GET /stream/{id} sends, POST /stream/{id} receives.")
    add("stream_list", NoParams, stream_list, "sessions", Action.LIST,
        "Stream sessions (your own; all for admins) with state and bytes moved so far.")
    add("stream_cancel", StreamIdParams, stream_cancel, "stream_id cancelled", Action.CHANGE,
        "Cancel a pending or active stream; an active transfer's zfs process is killed and reaped.")
