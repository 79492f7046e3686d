"""send_estimate, send_to_file, receive_from_file, receive_abort, stream_init, stream_list, stream_cancel: one
row each, like the core's (their results are the same keys as before rows: `from_snapshot` as given)."""

from __future__ import annotations

from typing import Annotated, Any, Callable, Literal

from msgspec import Meta

from zfsapi.application.transfers import AbortReceive, ReceiveFromFile, SendEstimate, SendToFile, StreamService
from zfsapi.domain.authz import Action, Carries, Principal
from zfsapi.domain.errors import (
    AlreadyExists,
    FileFailed,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StateConflict,
    ZfsCommandFailed,
    ZfsUnavailable,
)
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

from .method_common import Dataset, Name, dataset_name, iso, parse
from .registry import Background, CallContext, NoParams, Params, Registry, Result, Table

TRANSFERS = Table()
# what every method that runs zfs can also return: a refusal no other error names, or zfs missing
ZFS = (ZfsCommandFailed, ZfsUnavailable)
DATASET, SNAPSHOT = Carries.DATASET, Carries.SNAPSHOT

Token = Annotated[str, Meta(min_length=1, max_length=MAX_RESUME_TOKEN)]
Path = Annotated[str, Meta(min_length=1, max_length=4096)]
CompressionName = Literal["none", "gzip", "zstd"]

Snap = Annotated[Name, Meta(description="The snapshot to send: its short name, or its full name dataset@name.")]
Origin = Annotated[Name | None, Meta(description=(
    "Send incrementally from this snapshot or bookmark: 'snap', '#bookmark', 'ds@snap' or 'ds#bookmark'; "
    "null: a full send."))]
SendRecursive = Annotated[bool, Meta(description="Also every descendant and its snapshots (-R).")]
Raw = Annotated[bool, Meta(description="Send the blocks as stored, encrypted ones undecrypted (-w); always "
                                       "on for encrypted datasets.")]
NativeCompressed = Annotated[bool, Meta(description="Send compressed blocks as they are on disk (-c).")]
Force = Annotated[bool, Meta(description="Roll the target back to its latest snapshot first (-F); admins only.")]
Resumable = Annotated[bool, Meta(description="Keep a resume token when the receive is cut (-s).")]
LegacyGzip = Annotated[bool, Meta(description="Legacy: true means gzip.")]


class SendEstimateParams(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Dataset
    snapshot: Snap
    from_snapshot: Origin = None
    recursive: SendRecursive = False
    raw: Raw = False
    native_compressed: NativeCompressed = True


class SendToFileParams(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Dataset
    snapshot: Snap
    output_file: Annotated[Path, Meta(description=(
        "The new file: relative to the first transfer directory (your own subdirectory of it unless you are "
        "an admin without a dataset scope), or an absolute path inside it. The compression's suffix is "
        "appended when missing."))]
    from_snapshot: Origin = None
    recursive: SendRecursive = False
    compression: Annotated[CompressionName, Meta(description="Compress the file with this program.")] = "none"
    compressed: LegacyGzip = False
    raw: Raw = False
    native_compressed: NativeCompressed = True
    background: Background = False


class ReceiveFromFileParams(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Annotated[Name, Meta(description="The dataset to receive into (full name).")]
    input_file: Annotated[Path, Meta(description=(
        "The send file, by the same rule as send_to_file's output_file."))]
    force: Force = False
    resumable: Resumable = True
    compressed: Annotated[bool | None, Meta(description=(
        "Legacy: true means gzip, false none; null: by the file's suffix."))] = None
    compression: Annotated[CompressionName | None, Meta(description=(
        "The file's compression; null: by its suffix (.gz, .zst).")) ] = None
    background: Background = False


class ReceiveAbortParams(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Annotated[Name, Meta(description="The dataset holding the partial receive (full name).")]


class StreamInitParams(Params, frozen=True, forbid_unknown_fields=True):
    operation: Annotated[Literal["send", "receive"], Meta(description=(
        "send: GET /stream/{id} streams the send; receive: POST /stream/{id} pipes the body into zfs receive."))]
    dataset: Annotated[Name | None, Meta(description="send: the dataset to send.")] = None
    snapshot: Annotated[Name | None, Meta(description=(
        "send: its snapshot, short or full name.")) ] = None
    from_snapshot: Origin = None
    target_dataset: Annotated[Name | None, Meta(description="receive: the dataset to receive into.")] = None
    force: Force = False
    resumable: Resumable = True
    resume_token: Annotated[Token | None, Meta(description=(
        "send: continue this interrupted receive (zfs send -t); receive: the target's token the stream "
        "continues."))] = None
    raw: Raw = False
    native_compressed: NativeCompressed = True
    recursive: SendRecursive = False
    # finite: the service checks its own maximum
    ttl: Annotated[float, Meta(gt=0, le=10**9, description="Seconds the stream id stays usable.")] = 300


class StreamIdParams(Params, frozen=True, forbid_unknown_fields=True):
    stream_id: Annotated[str, Meta(min_length=1, max_length=128, description="The id stream_init returned.")]


# ---- results -----------------------------------------------------------------------------------------------

class SendEstimateResult(Result, frozen=True, kw_only=True):
    dataset: str
    snapshot: str
    from_snapshot: str | None  # as given
    size_bytes: int
    size_human: str
    raw: bool  # as the send will run (true for encrypted datasets)


class SendToFileResult(Result, frozen=True, kw_only=True):
    dataset: str
    snapshot: str
    from_snapshot: str | None
    output_file: str
    compression: CompressionName
    size_bytes: int
    sha256: str
    duration_seconds: float


class ReceiveFromFileResult(Result, frozen=True, kw_only=True):
    dataset: str
    input_file: str
    snapshot: str | None  # as zfs receive -v names it
    duration_seconds: float


class ReceiveAbortResult(Result, frozen=True, kw_only=True):
    dataset: str
    aborted: Literal[True] = True


class StreamInitResult(Result, frozen=True, kw_only=True):
    stream_id: str
    url: str
    method: Literal["GET", "POST"]
    expires_at: str


class StreamListed(Result, frozen=True, kw_only=True):
    stream_id: str
    operation: Literal["send", "receive"]
    dataset: str | None
    snapshot: str | None
    target_dataset: str | None
    created: str
    expires_at: str
    username: str
    state: str
    bytes: int
    error: str | None


class StreamListResult(Result, frozen=True, kw_only=True):
    sessions: list[StreamListed]


class StreamCancelResult(Result, frozen=True, kw_only=True):
    stream_id: str
    cancelled: Literal[True] = True


# ---- helpers -----------------------------------------------------------------------------------------------

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
    name = dataset_name(dataset)
    return SendSpec(_snapshot(name, snapshot), _origin(name, p.from_snapshot), recursive=p.recursive, raw=p.raw,
                    native_compressed=p.native_compressed)


def _stream_transfer(p: StreamInitParams, who: Principal) -> StreamTransfer:
    """What stream_init asks for, every name parsed (a missing one named); the ZFS checks are the use case's.
    A receive applies the stream's mount properties only for an unrestricted admin (see ReceiveSpec.trusted)."""
    token = parse("resume_token", ResumeToken.parse, p.resume_token) if p.resume_token is not None else None
    if p.operation == "receive":
        if p.target_dataset is None:
            raise InvalidArgument("target_dataset", "a receive needs target_dataset")
        return ReceiveSpec(dataset_name(p.target_dataset, "target_dataset"), force=p.force, resumable=p.resumable,
                           resume_token=token, trusted=who.unrestricted_admin)
    if token is not None:
        dataset = dataset_name(p.dataset) if p.dataset is not None else None
        return ResumeSend(token, dataset, _snapshot(dataset, p.snapshot) if p.snapshot is not None else None,
                          raw=p.raw, native_compressed=p.native_compressed)
    if p.dataset is None or p.snapshot is None:
        raise InvalidArgument("snapshot" if p.dataset else "dataset", "a send needs dataset and snapshot (or resume_token)")
    return _send_spec(p, p.dataset, p.snapshot)


def _listed(s: StreamSession) -> StreamListed:
    """A session as stream_list shows it: the source dataset and snapshot (full name) of a send, the target
    of a receive."""
    t = s.transfer
    snapshot = t.snapshot if not isinstance(t, ReceiveSpec) else None
    dataset = snapshot.dataset if snapshot is not None else t.dataset if isinstance(t, ResumeSend) else None
    return StreamListed(stream_id=s.stream_id, operation=s.operation.value, dataset=dataset.value if dataset else None,
                        snapshot=snapshot.value if snapshot else None,
                        target_dataset=t.target.value if isinstance(t, ReceiveSpec) else None,
                        created=iso(s.created), expires_at=iso(s.expires_at), username=s.username,
                        state=s.state.value, bytes=s.bytes, error=s.error)


# ---- rows --------------------------------------------------------------------------------------------------

@TRANSFERS.method(Action.READ, carries={"dataset": DATASET, "snapshot": SNAPSHOT, "from_snapshot": SNAPSHOT},
                  errors=(NotFound, *ZFS))
async def send_estimate(uc: SendEstimate, p: SendEstimateParams, ctx: CallContext) -> SendEstimateResult:
    est = await uc.execute(spec=_send_spec(p, p.dataset, p.snapshot))
    return SendEstimateResult(dataset=est.spec.snapshot.dataset.value, snapshot=est.spec.snapshot.short,
                              from_snapshot=p.from_snapshot, size_bytes=est.size_bytes,
                              size_human=size_human(est.size_bytes), raw=est.spec.raw)


def _send_file(p: SendToFileParams) -> tuple[SendSpec, Compression]:
    compression = Compression(p.compression)
    if p.compressed and compression is Compression.NONE:
        compression = Compression.GZIP
    return _send_spec(p, p.dataset, p.snapshot), compression


async def _check_send_file(uc: SendToFile, p: SendToFileParams, ctx: CallContext) -> None:
    _, compression = _send_file(p)  # the names parsed too
    await uc.check(who=ctx.caller, output_file=p.output_file, compression=compression)


def _receive_file(p: ReceiveFromFileParams, who: Principal) -> tuple[ReceiveSpec, Compression | None]:
    spec = ReceiveSpec(dataset_name(p.dataset), force=p.force, resumable=p.resumable, trusted=who.unrestricted_admin)
    compression = Compression(p.compression) if p.compression else (
        Compression.GZIP if p.compressed else Compression.NONE if p.compressed is False else None)
    return spec, compression


async def _check_receive_file(uc: ReceiveFromFile, p: ReceiveFromFileParams, ctx: CallContext) -> None:
    _receive_file(p, ctx.caller)
    await uc.check(who=ctx.caller, input_file=p.input_file)


@TRANSFERS.method(Action.CHANGE, carries={"dataset": DATASET, "snapshot": SNAPSHOT, "from_snapshot": SNAPSHOT},
                  errors=(InvalidArgument, PermissionDenied, NotFound, AlreadyExists, FileFailed, *ZFS),
                  background=True, check=_check_send_file)
async def send_to_file(uc: SendToFile, p: SendToFileParams, ctx: CallContext) -> SendToFileResult:
    spec, compression = _send_file(p)
    r = await uc.execute(who=ctx.caller, spec=spec, output_file=p.output_file,
                         compression=compression, progress=ctx.progress, mark=ctx.job_id)
    return SendToFileResult(dataset=spec.snapshot.dataset.value, snapshot=spec.snapshot.short,
                            from_snapshot=p.from_snapshot, output_file=r.path, compression=compression.value,
                            size_bytes=r.size_bytes, sha256=r.sha256, duration_seconds=round(r.duration, 3))


@TRANSFERS.method(Action.CHANGE, carries={"dataset": DATASET, "force": Carries.FORCE},
                  errors=(InvalidArgument, PermissionDenied, NotFound, AlreadyExists, FileFailed, *ZFS),
                  background=True, check=_check_receive_file)
async def receive_from_file(uc: ReceiveFromFile, p: ReceiveFromFileParams, ctx: CallContext) -> ReceiveFromFileResult:
    who = ctx.caller
    spec, compression = _receive_file(p, who)
    path, snapshot, took = await uc.execute(who=who, spec=spec, input_file=p.input_file,
                                            compression=compression, progress=ctx.progress)
    return ReceiveFromFileResult(dataset=spec.target.value, input_file=path, snapshot=snapshot,
                                 duration_seconds=round(took, 3))


@TRANSFERS.method(Action.CHANGE, carries={"dataset": DATASET}, errors=(NotFound, StateConflict, *ZFS))
async def receive_abort(uc: AbortReceive, p: ReceiveAbortParams, ctx: CallContext) -> ReceiveAbortResult:
    name = dataset_name(p.dataset)
    await uc.execute(dataset=name)
    return ReceiveAbortResult(dataset=name.value)


@TRANSFERS.method(Action.CHANGE, carries={"dataset": DATASET, "snapshot": SNAPSHOT, "from_snapshot": SNAPSHOT,
                                          "target_dataset": DATASET, "force": Carries.FORCE},
                  errors=(InvalidArgument, PermissionDenied, StateConflict, NotFound, *ZFS))
async def stream_init(uc: StreamService, p: StreamInitParams, ctx: CallContext) -> StreamInitResult:
    """Create a single-use stream session: GET /stream/{id} sends, POST /stream/{id} receives.

    Raises:
        InvalidArgument: a ttl beyond the maximum.
        PermissionDenied: a resume token for a dataset outside the caller's scope.
        StateConflict: a resume token that does not match the request or this host.
        NotFound: no such snapshot or bookmark.
    """
    who = ctx.caller
    created = await uc.init(who, _stream_transfer(p, who), p.ttl)
    return StreamInitResult(stream_id=created.stream_id, url=f"/stream/{created.stream_id}",
                            method="GET" if p.operation == "send" else "POST", expires_at=iso(created.expires_at))


@TRANSFERS.method(Action.LIST)
async def stream_list(uc: StreamService, p: NoParams, ctx: CallContext) -> StreamListResult:
    """Stream sessions (your own; all for admins) with state and bytes moved so far."""
    return StreamListResult(sessions=[_listed(s) for s in await uc.list(ctx.caller)])


@TRANSFERS.method(Action.CHANGE, errors=(NotFound, StateConflict))
async def stream_cancel(uc: StreamService, p: StreamIdParams, ctx: CallContext) -> StreamCancelResult:
    """Cancel a pending or active stream; an active transfer's zfs process is killed and reaped.

    Raises:
        NotFound: no such stream of yours.
        StateConflict: it has already ended.
    """
    await uc.cancel(ctx.caller, p.stream_id)
    return StreamCancelResult(stream_id=p.stream_id)


def register_transfers(registry: Registry, use_case: Callable[[type[Any]], Any]) -> None:
    """Register every row of TRANSFERS, each bound to the instance `use_case(row.use_case)`."""
    registry.include(TRANSFERS, use_case)
