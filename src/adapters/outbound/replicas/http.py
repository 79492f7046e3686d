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
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

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
    InvalidArgument,
    NotFound,
    PermissionDenied,
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

T = TypeVar("T")
# the wire's error codes (api-contract "Errors")
INVALID_PARAMS, AUTH_REQUIRED, INVALID_TOKEN, INVALID_CREDENTIALS = -32602, -32001, -32002, -32003
PERMISSION_DENIED, NOT_FOUND, ALREADY_EXISTS, BUSY = -32004, -32010, -32011, -32012
ZFS_FAILED, ZFS_UNAVAILABLE, CONFLICT = -32013, -32014, -32015
QUEUE_CHUNKS = 4  # chunks written but not yet sent: the backpressure between our writes and the socket
STREAM_TIMEOUT = 600.0  # seconds the remote may take to accept the next bytes, or to answer at the end
_STREAM_ID = re.compile(r"[0-9a-f]{32}")
_ENCODING = {Compression.GZIP: "gzip", Compression.ZSTD: "zstd"}
MAX_TEXT = 300  # characters of a remote's text (a reason, a name) kept in our errors
MAX_STDERR = 1000  # ... of the stderr of its zfs
MAX_DATA = 8  # fields of a remote's conflict data kept
MAX_ANSWER = 64 << 20  # bytes of a JSON-RPC answer read (a snapshot list of ~300,000 snapshots)


def _short(value: Any, most: int = MAX_TEXT) -> str:
    text = str(value)
    return text if len(text) <= most else text[:most] + "..."


def _scalar(value: Any, nested: bool = False) -> Any:
    """A remote's conflict datum as we keep it: a short string, a number, a bool, None, or a short list of those."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, list) and not nested:
        return [_scalar(v, True) for v in value[:MAX_DATA]]
    return _short(value)


class _Detail(msgspec.Struct):
    name: str
    guid: int
    createtxg: int


class _SnapshotList(msgspec.Struct):
    details: list[_Detail]


class _Properties(msgspec.Struct):
    properties: dict[str, Any]


class _StreamInit(msgspec.Struct):
    stream_id: str


class _Login(msgspec.Struct):
    token: str


class _Error(msgspec.Struct):
    code: int
    message: str = ""
    data: dict[str, Any] = {}


def remote_error(error: _Error, where: str) -> ZfsApiError:
    """The domain error a remote zfsapi's JSON-RPC error stands for (the inverse of its error table)."""
    d = error.data

    def text(key: str, default: str = "", most: int = MAX_TEXT) -> str:
        return _short(d.get(key, default), most)

    if error.code == NOT_FOUND:
        return NotFound(text("kind", "dataset"), text("name"))
    if error.code == ALREADY_EXISTS:
        return AlreadyExists(text("kind", "dataset"), text("name"))
    if error.code == BUSY:
        dependents = [_short(x) for x in (d.get("dependents") or [])[:MAX_DATA]]
        if dependents:
            return HasDependents(text("name"), text("reason"), dependents)
        return Busy(text("name"), text("reason"))
    if error.code == ZFS_FAILED:
        command = [_short(x, 256) for x in (d.get("command") or [])[:24]] or ["zfs"]
        code = d.get("exit_code")
        return ZfsCommandFailed(command, code if isinstance(code, int) else -1,
                                text("stderr", error.message, MAX_STDERR))
    if error.code == CONFLICT:
        extra = {_short(k, 40): _scalar(v) for k, v in list(d.items())[:MAX_DATA] if k != "reason"}
        return StateConflict(text("reason", error.message), **extra)
    if error.code == INVALID_PARAMS:
        return InvalidArgument(text("param", "params"), f"{where}: {text('reason', error.message)}")
    if error.code == PERMISSION_DENIED:
        dataset = d.get("dataset")
        return PermissionDenied(text("method"), _short(dataset) if dataset else None, f"{where}: {text('reason')}")
    if error.code == ZFS_UNAVAILABLE:
        return ZfsUnavailable(f"{where}: {text('reason', error.message)}")
    if error.code in (AUTH_REQUIRED, INVALID_TOKEN, INVALID_CREDENTIALS):
        return ZfsUnavailable(f"{where}: {_short(error.message)} (see replication.remotes in the config)")
    return ZfsUnavailable(f"{where}: {_short(error.message)} ({error.code})")


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
        self._username, self._password, self._token, self._mint = username, password, token, mint
        self._stream_timeout = stream_timeout
        self._login_lock = asyncio.Lock()
        self.where = f"zfsapi at {remote.url}"

    # ---- JSON-RPC ----
    async def _post(self, method: str, params: dict[str, Any], bearer: str | None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        request = {"jsonrpc": "2.0", "method": method, "params": params, "id": 1}
        try:
            async with self._client.stream("POST", self._remote.url + "/", headers=headers, json=request) as r:
                if r.status_code != 200:  # (a redirect is never followed)
                    raise ZfsUnavailable(f"{self.where}: HTTP {r.status_code} to {method}")
                content = await self._bounded(r, method)
        except httpx.HTTPError as exc:
            raise self.unreachable(exc) from None
        try:
            body = msgspec.json.decode(content)
        except msgspec.DecodeError:
            body = None
        if not isinstance(body, dict) or ("result" not in body and "error" not in body):
            raise ZfsUnavailable(f"{self.where}: not a JSON-RPC answer to {method}")
        return body

    async def _bounded(self, r: httpx.Response, method: str) -> bytes:
        """The answer's body, read no further than MAX_ANSWER bytes."""
        chunks, size = [], 0
        async for chunk in r.aiter_bytes():
            size += len(chunk)
            if size > MAX_ANSWER:
                raise ZfsUnavailable(f"{self.where}: its answer to {method} is over {MAX_ANSWER} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

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
                body = await self._post("auth_login", {"username": self._username, "password": self._password}, None)
                if "error" in body:
                    error = self._decode(body["error"], _Error, "auth_login")
                    if error.code == INVALID_CREDENTIALS:
                        raise ZfsUnavailable(f"{self.where}: it refused the configured username and password")
                    raise remote_error(error, self.where)
                self._token = self._decode(body["result"], _Login, "auth_login").token
            return self._token

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        """The result of `method`; its error as a domain error. A login token the remote no longer takes
        (expired, revoked) is replaced once."""
        bearer = await self._bearer()
        body = await self._post(method, params, bearer)
        if "error" in body and (self._password is not None or self._mint is not None):
            if self._decode(body["error"], _Error, method).code == INVALID_TOKEN:
                async with self._login_lock:
                    if self._token == bearer:
                        self._token = None
                body = await self._post(method, params, await self._bearer())
        if "error" in body:
            raise remote_error(self._decode(body["error"], _Error, method), self.where)
        return body["result"]

    # ---- the ReplicaSide port ----
    async def snapshots(self, dataset: DatasetName) -> list[Snapshot] | None:
        try:
            result = await self.call("snapshot_list", {"dataset": dataset.value, "recursive": False})
        except NotFound:
            return None
        listed = self._decode(result, _SnapshotList, "snapshot_list")
        return [Snapshot(d.name, d.guid, d.createtxg) for d in listed.details]

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
        failure = remote_error(self._side._decode(error, _Error, "POST /stream"), self._side.where)
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
                stderr = _short(s.get("error") or "failed", MAX_STDERR)
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

