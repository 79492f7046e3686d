"""send_estimate, send_to_file, receive_from_file, receive_abort, stream_init, stream_list, stream_cancel."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta

from zfsapi.application.transfers import AbortReceive, ReceiveFromFile, SendEstimate, SendToFile, TransferUseCases
from zfsapi.domain.authz import LOCALHOST, Action
from zfsapi.domain.errors import InvalidArgument
from zfsapi.domain.names import BookmarkName, DatasetName, SnapshotName, parse_snapshot_or_bookmark
from zfsapi.domain.transfer import (
    MAX_RESUME_TOKEN,
    Compression,
    ReceiveSpec,
    ResumeSend,
    ResumeToken,
    SendSpec,
    StreamSession,
    StreamTransfer,
    size_human,
)

from .methods import Name, iso, parse
from .registry import CallContext, NoParams, Params, Registry

Token = Annotated[str, Meta(min_length=1, max_length=MAX_RESUME_TOKEN)]
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


def _dataset(text: str, param: str = "dataset") -> DatasetName:
    return parse(param, DatasetName.parse, text)


def _snapshot(dataset: DatasetName | None, text: str) -> SnapshotName:
    """snapshot: 'snap' (of `dataset`) or 'dataset@snap'."""
    if "@" in text:
        snap = parse("snapshot", SnapshotName.parse, text)
        if dataset is not None and snap.dataset != dataset:
            raise InvalidArgument("snapshot", f"{text} is not a snapshot of {dataset.value}")
        return snap
    if dataset is None:
        raise InvalidArgument("dataset", "a short snapshot name needs its dataset")
    return parse("snapshot", lambda s: SnapshotName.of(dataset, s), text)


def _origin(dataset: DatasetName, text: str | None) -> SnapshotName | BookmarkName | None:
    """from_snapshot: 'snap', '#bookmark', 'ds@snap' or 'ds#bookmark'."""
    if text is None:
        return None
    if text.startswith("#"):
        return parse("from_snapshot", BookmarkName.parse, dataset.value + text)
    if "@" in text or "#" in text:
        return parse("from_snapshot", parse_snapshot_or_bookmark, text)
    return parse("from_snapshot", lambda s: SnapshotName.of(dataset, s), text)


def _send_spec(p: SendEstimateParams | SendToFileParams | StreamInitParams, dataset: str, snapshot: str) -> SendSpec:
    name = _dataset(dataset)
    return SendSpec(_snapshot(name, snapshot), _origin(name, p.from_snapshot), recursive=p.recursive, raw=p.raw,
                    native_compressed=p.native_compressed)


def _stream_transfer(p: StreamInitParams) -> StreamTransfer:
    """What stream_init asks for, every name parsed (a missing one named); the ZFS checks are the use case's."""
    token = parse("resume_token", ResumeToken.parse, p.resume_token) if p.resume_token is not None else None
    if p.operation == "receive":
        if p.target_dataset is None:
            raise InvalidArgument("target_dataset", "a receive needs target_dataset")
        return ReceiveSpec(_dataset(p.target_dataset, "target_dataset"), force=p.force, resumable=p.resumable,
                           resume_token=token)
    if token is not None:
        dataset = _dataset(p.dataset) if p.dataset is not None else None
        return ResumeSend(token, dataset, _snapshot(dataset, p.snapshot) if p.snapshot is not None else None,
                          raw=p.raw, native_compressed=p.native_compressed)
    if p.dataset is None or p.snapshot is None:
        raise InvalidArgument("snapshot" if p.dataset else "dataset", "a send needs dataset and snapshot (or resume_token)")
    return _send_spec(p, p.dataset, p.snapshot)


def _listed(s: StreamSession) -> dict[str, Any]:
    """A session as stream_list shows it: the source dataset and snapshot (full name) of a send, the target
    of a receive."""
    t = s.transfer
    snapshot = t.snapshot if not isinstance(t, ReceiveSpec) else None
    dataset = snapshot.dataset if snapshot is not None else t.dataset if isinstance(t, ResumeSend) else None
    return {"stream_id": s.stream_id, "operation": s.operation.value, "dataset": dataset.value if dataset else None,
            "snapshot": snapshot.value if snapshot else None,
            "target_dataset": t.target.value if isinstance(t, ReceiveSpec) else None, "created": iso(s.created),
            "expires_at": iso(s.expires_at), "username": s.username, "state": s.state.value, "bytes": s.bytes,
            "error": s.error}


def register_transfers(registry: Registry, uc: TransferUseCases) -> None:
    streams = uc.streams

    async def send_estimate(p: SendEstimateParams, ctx: CallContext) -> dict[str, Any]:
        est = await uc.send_estimate.execute(spec=_send_spec(p, p.dataset, p.snapshot))
        return {"dataset": est.spec.snapshot.dataset.value, "snapshot": est.spec.snapshot.short,
                "from_snapshot": p.from_snapshot, "size_bytes": est.size_bytes,
                "size_human": size_human(est.size_bytes), "raw": est.spec.raw}

    async def send_to_file(p: SendToFileParams, ctx: CallContext) -> dict[str, Any]:
        spec = _send_spec(p, p.dataset, p.snapshot)
        compression = Compression(p.compression)
        if p.compressed and compression is Compression.NONE:
            compression = Compression.GZIP
        r = await uc.send_to_file.execute(spec=spec, output_file=p.output_file, compression=compression)
        return {"dataset": spec.snapshot.dataset.value, "snapshot": spec.snapshot.short,
                "from_snapshot": p.from_snapshot, "output_file": r.path, "compression": compression.value,
                "size_bytes": r.size_bytes, "sha256": r.sha256, "duration_seconds": round(r.duration, 3)}

    async def receive_from_file(p: ReceiveFromFileParams, ctx: CallContext) -> dict[str, Any]:
        spec = ReceiveSpec(_dataset(p.dataset), force=p.force, resumable=p.resumable)
        compression = Compression(p.compression) if p.compression else (
            Compression.GZIP if p.compressed else Compression.NONE if p.compressed is False else None)
        path, snapshot, took = await uc.receive_from_file.execute(spec=spec, input_file=p.input_file,
                                                                  compression=compression)
        return {"dataset": spec.target.value, "input_file": path, "snapshot": snapshot,
                "duration_seconds": round(took, 3)}

    async def receive_abort(p: ReceiveAbortParams, ctx: CallContext) -> dict[str, Any]:
        name = _dataset(p.dataset)
        await uc.receive_abort.execute(dataset=name)
        return {"dataset": name.value, "aborted": True}

    async def stream_init(p: StreamInitParams, ctx: CallContext) -> dict[str, Any]:
        created = await streams.init(ctx.principal or LOCALHOST, _stream_transfer(p), p.ttl)
        return {"stream_id": created.stream_id, "url": f"/stream/{created.stream_id}",
                "method": "GET" if p.operation == "send" else "POST", "expires_at": iso(created.expires_at)}

    async def stream_list(p: NoParams, ctx: CallContext) -> dict[str, Any]:
        return {"sessions": [_listed(s) for s in await streams.list(ctx.principal or LOCALHOST)]}

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
