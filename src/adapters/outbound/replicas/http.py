"""The replica side on another zfsapi (`remote: "http(s)://host[:port]"`): its JSON-RPC methods, and its
`stream_init` + POST /stream/{id} for the stream itself.

Every call carries credentials, never relying on the remote's passwordless loopback access: a user and
password from the config (a token is fetched with auth_login, kept, and fetched again when the remote answers
-32002), a fixed token from the config, or, for a remote on this host listed without credentials, a
short-lived token of the job's owner signed with this server's own key (`mint`, made again when refused): this
server then runs the calls with the owner's own rights, and any other server refuses them. Neither a password
nor a token is ever logged or put into an error. The remote's JSON-RPC errors become the same domain errors its
own server raised (the codes are stable API), so a caller here sees NotFound, StateConflict... as if the
datasets were local; a remote that cannot be reached or refuses our credentials is ZfsUnavailable naming it.
What a remote answers reaches a job's error only as the fields of a zfsapi error, each cut short; a body that
is not a zfsapi answer is never reflected.
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping, Sequence, TypeVar

import httpx
import msgspec

from zfsapi.adapters.outbound.zfs import parsers
from zfsapi.adapters.outbound.zfs.executor import Completed, ZfsExecutor, make_pipe
from zfsapi.adapters.outbound.zfs.pipelines import COMPRESSORS, ZfsReceivePipe, ZfsSendPipe
from zfsapi.application.ports import ReceivePipe, ReplicaSide
from zfsapi.domain.errors import (
    AlreadyExists,
    Busy,
    HasDependents,
    NotFound,
    ReceiveFailed,
    StateConflict,
    ZfsApiError,
    ZfsCommandFailed,
    ZfsUnavailable,
)
from zfsapi.domain.models import Snapshot
from zfsapi.domain.names import DatasetName, HoldTag, SnapshotName
from zfsapi.domain.replication import Remote, RemoteKind
from zfsapi.domain.transfer import Compression, ReceiveSpec, ResumeToken
from zfsapi.protocol.client import NoAnswer, RpcClient, Why
from zfsapi.protocol.codec import MAX_STDERR, decode, short
from zfsapi.protocol.codes import AUTH_CODES, INVALID_CREDENTIALS, INVALID_TOKEN
from zfsapi.protocol.envelope import ErrorObject, RpcError

T = TypeVar("T")
QUEUE_CHUNKS = 4  # chunks written but not yet sent: the backpressure between our writes and the socket
STREAM_TIMEOUT = 600.0  # seconds the remote may take to accept the next bytes, or to answer at the end
_STREAM_ID = re.compile(r"[0-9a-f]{32}")
_ENCODING = {Compression.GZIP: "gzip", Compression.ZSTD: "zstd"}
MAX_ANSWER = 64 << 20  # bytes of a JSON-RPC answer read (a snapshot list of ~300,000 snapshots)
_Error = ErrorObject  # its former name here, still imported by tests


class _Detail(msgspec.Struct):
    name: str
    guid: int
    createtxg: int
    creation: int | None = None  # with details (the remote's default)
    userrefs: int | None = None


class _SnapshotList(msgspec.Struct):
    details: list[_Detail]


class _Properties(msgspec.Struct):
    properties: dict[str, Any]


class _StreamInit(msgspec.Struct):
    stream_id: str


class _Login(msgspec.Struct):
    token: str


def remote_error(error: ErrorObject, where: str) -> ZfsApiError:
    """The domain error a remote zfsapi's JSON-RPC error stands for (zfsapi.protocol.codec.decode); one that
    refuses our credentials points at the config that holds them."""
    if error.code in AUTH_CODES:
        return ZfsUnavailable(f"{where}: {short(error.message)} (see replication.remotes in the config)")
    return decode(error, where)


class HttpReplica(ReplicaSide):
    """Datasets on another zfsapi at `remote` (an HTTP Remote), called through `client` (shared, closed by its
    owner). Credentials: `username` and `password`, or `token`, or `mint` (a token of the job's owner, made
    here; made again when refused); exactly one. `executor` runs the gzip/zstd child that compresses the stream
    when the wire is compressed."""

    def __init__(self, remote: Remote, client: httpx.AsyncClient, executor: ZfsExecutor, *,
                 username: str | None = None, password: str | None = None, token: str | None = None,
                 mint: Callable[[], str] | None = None, stream_timeout: float = STREAM_TIMEOUT) -> None:
        if remote.kind is not RemoteKind.HTTP:
            raise ValueError(f"not an HTTP remote: {remote}")
        if (username is None) != (password is None) \
                or sum((username is not None, token is not None, mint is not None)) != 1:
            raise ValueError("a remote takes a username and password, or a token, or a token minter")
        self._remote, self._client, self._exec = remote, client, executor
        self._rpc = RpcClient(client, remote.url, max_answer=MAX_ANSWER, only_ok=True)
        self._username, self._password, self._token, self._mint = username, password, token, mint
        self._stream_timeout = stream_timeout
        self._login_lock = asyncio.Lock()
        self.where = f"zfsapi at {remote.url}"

    # ---- JSON-RPC ----
    async def _post(self, method: str, params: dict[str, Any], bearer: str | None) -> Any:
        """The result; the remote's error raised as RpcError, no answer as ZfsUnavailable."""
        try:
            return await self._rpc.call(method, params, bearer=bearer)
        except NoAnswer as exc:
            raise self._no_answer(exc, method) from None

    def _no_answer(self, exc: NoAnswer, method: str) -> ZfsUnavailable:
        """Why `method` got no answer, in our words: a body that is not a zfsapi answer is never reflected."""
        if exc.why is Why.UNREACHABLE and exc.cause is not None:
            return self.unreachable(exc.cause)
        if exc.why is Why.STATUS:  # (a redirect is never followed)
            return ZfsUnavailable(f"{self.where}: HTTP {exc.status} to {method}")
        if exc.why is Why.TOO_LARGE:
            return ZfsUnavailable(f"{self.where}: its answer to {method} is over {exc.detail} bytes")
        if exc.why is Why.MALFORMED:
            return ZfsUnavailable(f"{self.where}: unexpected answer to {method}: {exc.detail}")
        return ZfsUnavailable(f"{self.where}: not a JSON-RPC answer to {method}")

    def unreachable(self, exc: httpx.HTTPError) -> ZfsUnavailable:
        return ZfsUnavailable(f"{self.where}: {type(exc).__name__}: {str(exc)[:300] or 'no answer'}")

    def _decode(self, value: Any, kind: type[T], method: str) -> T:
        try:
            return msgspec.convert(value, kind)
        except msgspec.ValidationError as exc:
            raise ZfsUnavailable(f"{self.where}: unexpected answer to {method}: {exc}") from None

    async def _bearer(self) -> str | None:
        """The token to send: the fixed one, the one logged in with (logging in when there is none), or the
        owner's (minted when there is none)."""
        if self._password is None and self._mint is None:
            return self._token
        async with self._login_lock:
            if self._token is None and self._mint is not None:
                self._token = self._mint()
            if self._token is None:
                self._token = await self._login()
            return self._token

    async def _login(self) -> str:
        try:
            result = await self._post("auth_login", {"username": self._username, "password": self._password}, None)
        except RpcError as exc:
            if exc.code == INVALID_CREDENTIALS:
                raise ZfsUnavailable(f"{self.where}: it refused the configured username and password") from None
            raise remote_error(exc.to_object(), self.where) from None
        return self._decode(result, _Login, "auth_login").token

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        """The result of `method`; its error as a domain error. A login token the remote no longer takes
        (expired, revoked) is replaced once."""
        bearer = await self._bearer()
        try:
            return await self._post(method, params, bearer)
        except RpcError as exc:
            if exc.code != INVALID_TOKEN or (self._password is None and self._mint is None):
                raise remote_error(exc.to_object(), self.where) from None
        async with self._login_lock:
            if self._token == bearer:
                self._token = None
        try:
            return await self._post(method, params, await self._bearer())
        except RpcError as exc:
            raise remote_error(exc.to_object(), self.where) from None

    # ---- the ReplicaSide port ----
    async def snapshots(self, dataset: DatasetName, *, details: bool = False) -> list[Snapshot] | None:
        try:
            result = await self.call("snapshot_list", {"dataset": dataset.value, "recursive": False})
        except NotFound:
            return None
        listed = self._decode(result, _SnapshotList, "snapshot_list")
        if not details:
            return [Snapshot(d.name, d.guid, d.createtxg) for d in listed.details]
        return [Snapshot(d.name, d.guid, d.createtxg, d.creation, userrefs=d.userrefs) for d in listed.details]

    async def resume_token(self, dataset: DatasetName) -> ResumeToken | None:
        try:
            result = await self.call("dataset_get_properties",
                                     {"dataset": dataset.value, "property": "receive_resume_token"})
        except NotFound:
            return None
        value = self._decode(result, _Properties, "dataset_get_properties").properties.get("receive_resume_token")
        return None if value in (None, "", "-") else ResumeToken.parse(str(value))

    async def abort_receive(self, dataset: DatasetName) -> None:
        await self.call("receive_abort", {"dataset": dataset.value})

    async def hold(self, snapshot: SnapshotName, tag: HoldTag) -> None:
        try:
            await self.call("snapshot_hold", self._hold_params(snapshot, tag))
        except AlreadyExists:
            pass

    async def release(self, snapshot: SnapshotName, tag: HoldTag) -> None:
        try:
            await self.call("snapshot_release", self._hold_params(snapshot, tag))
        except NotFound:
            pass

    async def destroy_snapshots(self, dataset: DatasetName, shorts: Sequence[str]) -> Mapping[str, str]:
        """The remote's snapshot_destroy, one call per snapshot (it has no batch method)."""
        refused: dict[str, str] = {}
        for name in shorts:
            snapshot = dataset.snapshot(name)  # checked as a name here before the remote sees it
            try:
                await self.call("snapshot_destroy", {"dataset": dataset.value, "snapshot": snapshot.short,
                                                     "recursive": False})
            except NotFound:
                continue
            except (HasDependents, Busy, StateConflict, ZfsCommandFailed) as exc:
                refused[name] = exc.message
        return refused

    @staticmethod
    def _hold_params(snapshot: SnapshotName, tag: HoldTag) -> dict[str, Any]:
        return {"dataset": snapshot.dataset.value, "snapshot": snapshot.short, "tag": tag.value}

    async def open_receive(self, spec: ReceiveSpec, compression: Compression) -> HttpReceivePipe:
        params: dict[str, Any] = {"operation": "receive", "target_dataset": spec.target.value, "force": spec.force,
                                  "resumable": spec.resumable}
        if spec.resume_token is not None:
            params["resume_token"] = spec.resume_token.value
        stream_id = self._decode(await self.call("stream_init", params), _StreamInit, "stream_init").stream_id
        if not _STREAM_ID.fullmatch(stream_id):
            raise ZfsUnavailable(f"{self.where}: stream_init answered an invalid stream id")
        return await HttpReceivePipe.start(self, stream_id, spec, compression)


class HttpReceivePipe(ReceivePipe):
    """A POST /stream/{id} whose body is what we write: a bounded queue feeds the request body (through a
    gzip/zstd child when the wire is compressed, announced as Content-Encoding). The remote's answer at the end
    is the result; if it answers (or the connection fails) early, the next write or `finish` raises that."""

    def __init__(self, side: HttpReplica, stream_id: str, spec: ReceiveSpec) -> None:
        self._side, self._stream_id, self._spec = side, stream_id, spec
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_CHUNKS)
        self._encoder: ZfsReceivePipe | None = None  # our writes into the compressor
        self._compressed: ZfsSendPipe | None = None  # the compressor's output
        self._pump: asyncio.Task[None] | None = None  # ... moved into the queue
        self._request: asyncio.Task[httpx.Response] | None = None
        self._killed = False

    @classmethod
    async def start(cls, side: HttpReplica, stream_id: str, spec: ReceiveSpec,
                    compression: Compression) -> HttpReceivePipe:
        pipe = cls(side, stream_id, spec)
        headers = {"Content-Type": "application/octet-stream"}
        if compression is not Compression.NONE:
            headers["Content-Encoding"] = _ENCODING[compression]
            await pipe._start_compressor(side._exec, compression)
        t = side._stream_timeout
        request = side._client.build_request("POST", f"{side._remote.url}/stream/{stream_id}", headers=headers,
                                             content=pipe._body(), timeout=httpx.Timeout(t, connect=30.0, pool=30.0))
        pipe._request = asyncio.create_task(side._client.send(request))
        return pipe

    async def _start_compressor(self, executor: ZfsExecutor, compression: Compression) -> None:
        pipeline = await executor.pipeline()
        r, w = make_pipe()
        try:
            out = await pipeline.offload(pipeline.spawn_into_pipe, COMPRESSORS[compression][0], r)
        except BaseException:
            os.close(w)
            await pipeline.close()
            raise
        finally:
            os.close(r)
        child = pipeline.children[0]
        self._encoder = ZfsReceivePipe(pipeline, child, w, self._spec.target.value,
                                       lambda done: ZfsCommandFailed(done.argv, done.exit_code, done.stderr))
        self._compressed = ZfsSendPipe(pipeline, child, out, "compressor")
        self._pump = asyncio.create_task(self._forward(self._compressed))

    async def _forward(self, compressed: ZfsSendPipe) -> None:
        while chunk := await compressed.read():
            await self._queue.put(chunk)
        await self._queue.put(None)

    async def _body(self) -> AsyncIterator[bytes]:
        while (chunk := await self._queue.get()) is not None:
            yield chunk

    async def _racing(self, step: Awaitable[T]) -> T:
        """`step`, unless the request ends first (the remote answered or the connection failed): then its error."""
        assert self._request is not None
        work = asyncio.ensure_future(step)
        try:
            await asyncio.wait({work, self._request}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            raise
        if work.done():
            return work.result()
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        await self._outcome()
        raise ZfsCommandFailed(["zfs", "receive"], -1, f"{self._side.where} ended the stream before its end")

    async def write(self, data: bytes) -> None:
        if self._killed:
            raise ZfsCommandFailed(["zfs", "receive"], -9, "killed")
        if self._encoder is not None:
            await self._racing(self._encoder.write(data))
        elif self._queue.full() or (self._request is not None and self._request.done()):
            await self._racing(self._queue.put(data))
        else:
            self._queue.put_nowait(data)

    async def finish(self) -> str | None:
        if self._encoder is not None:
            await self._racing(self._encoder.finish())  # end of input: the compressor flushes and exits
            assert self._pump is not None
            await self._racing(self._pump)
        else:
            await self._racing(self._queue.put(None))
        return await self._outcome()

    async def _outcome(self) -> str | None:
        """The remote's answer to the POST: the snapshot received, or its error raised."""
        assert self._request is not None
        try:
            r = await self._request
        except httpx.HTTPError as exc:
            raise await self._lost(exc) from None
        try:
            body = msgspec.json.decode(r.content)
        except msgspec.DecodeError:
            body = None
        if not isinstance(body, dict):
            raise ZfsUnavailable(f"{self._side.where}: HTTP {r.status_code} to POST /stream, not JSON")
        if body.get("success") is True:
            snapshot = body.get("snapshot")
            return str(snapshot) if snapshot is not None else None
        error = body.get("error")
        if not isinstance(error, dict):
            raise ZfsUnavailable(f"{self._side.where}: HTTP {r.status_code} to POST /stream, not a zfsapi answer")
        failure = remote_error(self._side._decode(error, ErrorObject, "POST /stream"), self._side.where)
        token = body.get("receive_resume_token")
        if isinstance(failure, ZfsCommandFailed) and isinstance(token, str):
            raise ReceiveFailed(failure.command, failure.exit_code, failure.stderr, token)
        raise failure

    async def _lost(self, exc: httpx.HTTPError) -> ZfsApiError:
        """The connection failed: when the remote had already failed the stream (its answer can be lost when it
        closes a connection we are still writing to), the error it recorded; else the connection's failure."""
        try:
            sessions = await self._side.call("stream_list", {})
        except ZfsApiError:
            return self._side.unreachable(exc)
        for s in sessions.get("sessions", []) if isinstance(sessions, dict) else []:
            if isinstance(s, dict) and s.get("stream_id") == self._stream_id and s.get("state") == "failed":
                stderr = short(s.get("error") or "failed", MAX_STDERR)
                return parsers.classify(Completed(["zfs", "receive"], 1, b"", stderr), name=self._spec.target.value)
        return self._side.unreachable(exc)

    async def kill(self) -> None:
        """Abort the request (the remote kills its zfs receive) and reap the compressor. Idempotent."""
        self._killed = True
        for task in (self._request, self._pump):
            if task is not None and not task.done():
                task.cancel()
        await asyncio.gather(*(t for t in (self._request, self._pump) if t is not None), return_exceptions=True)
        for pipe in (self._encoder, self._compressed):
            if pipe is not None:
                await pipe.kill()

