"""zfsapi.protocol: every error code through the codec in both directions (a domain error to the wire and back,
a code from the wire to a domain error and back), the statuses of the plain routes, the envelope, and the one
client (async against an in-process server, its blocking face against a server on a loopback socket)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import httpx
import msgspec
import pytest

from tests.conftest import free_port, http_client
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.domain.errors import (
    AlreadyExists,
    Busy,
    FileFailed,
    HasDependents,
    InvalidArgument,
    InvalidCredentials,
    InvalidToken,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    StateConflict,
    TooManyJobs,
    ZfsCommandFailed,
    ZfsUnavailable,
)
from zfsapi.protocol import codec, codes
from zfsapi.protocol.blocking import BlockingClient
from zfsapi.protocol.client import NoAnswer, RpcClient, Why
from zfsapi.protocol.envelope import ErrorObject, Request, RequestBatch, Response, ResponseBatch, RpcError
from zfsapi.protocol.status import Route, http_status

WHERE = "zfsapi at http://10.0.0.7:8545"

# one error of every type the server's table knows: (the error, its code, what a client of another zfsapi
# reads it as, the status of GET|POST /stream, the status of GET /jobs/{id}/events refused)
SAMPLES: list[tuple[Exception, int, Exception, int, int]] = [
    (InvalidArgument("dataset", "too long"), -32602,
     InvalidArgument("dataset", f"{WHERE}: too long"), 400, 400),
    (PermissionDenied("dataset_destroy", "tank/a", "outside your scope"), -32004,
     PermissionDenied("dataset_destroy", "tank/a", f"{WHERE}: outside your scope"), 403, 400),
    (NotFound("snapshot", "tank/a@s"), -32010, NotFound("snapshot", "tank/a@s"), 404, 404),
    (AlreadyExists("dataset", "tank/a"), -32011, AlreadyExists("dataset", "tank/a"), 500, 400),
    (HasDependents("tank/a", "has children", ["tank/a/b"]), -32012,
     HasDependents("tank/a", "has children", ["tank/a/b"]), 500, 400),
    (Busy("tank/a", "mounted and in use"), -32012, Busy("tank/a", "mounted and in use"), 500, 400),
    (ZfsCommandFailed(["zfs", "destroy", "tank/a"], 1, "cannot destroy 'tank/a': dataset is busy"), -32013,
     ZfsCommandFailed(["zfs", "destroy", "tank/a"], 1, "cannot destroy 'tank/a': dataset is busy"), 500, 400),
    (FileFailed("output_file", "/srv/out", "write", "No space left on device", "ENOSPC"), -32013,
     ZfsCommandFailed(["zfs"], -1, "Cannot write /srv/out: No space left on device"), 500, 400),
    (ZfsUnavailable("module not loaded"), -32014, ZfsUnavailable(f"{WHERE}: module not loaded"), 503, 400),
    (StateConflict("diverged", newer=["tank/a@x"]), -32015, StateConflict("diverged", newer=["tank/a@x"]), 409, 400),
    (InvalidCredentials(), -32003, ZfsUnavailable(f"{WHERE}: Invalid credentials (-32003)"), 500, 400),
    (InvalidToken("expired"), -32002, ZfsUnavailable(f"{WHERE}: Invalid token (-32002)"), 500, 401),
    (RateLimited(1.5), -32000, ZfsUnavailable(f"{WHERE}: Rate limit exceeded (-32000)"), 500, 429),
    (ServiceUnavailable("session store", "no answer"), -32603,
     ZfsUnavailable(f"{WHERE}: session store unavailable: no answer (-32603)"), 500, 503),
    (TooManyJobs("op", 2, 2), -32000, ZfsUnavailable(f"{WHERE}: Too many jobs (-32000)"), 500, 429),
]
# the codes a client reads back as the same domain error; the others say the remote cannot be used
KEPT = {-32602, -32004, -32010, -32011, -32012, -32013, -32014, -32015}


def test_every_type_of_the_table_has_a_sample() -> None:
    assert {type(e) for e, *_ in SAMPLES} == set(codec._TABLE)


@pytest.mark.parametrize("error, code, read_as, stream_status, events_status", SAMPLES,
                         ids=[type(s[0]).__name__ for s in SAMPLES])
def test_a_domain_error_goes_to_the_wire_and_back(error, code, read_as, stream_status, events_status) -> None:
    wire = codec.encode(error)
    assert wire is not None and wire.code == code == codec.code_of(type(error))
    sent = msgspec.json.encode(Response(id=1, error=wire.to_object()))
    received = msgspec.json.decode(sent, type=Response).error
    assert isinstance(received, ErrorObject) and received == wire.to_object()
    back = codec.decode(received, WHERE)
    assert type(back) is type(read_as) and vars(back) == vars(read_as)
    assert codec.code_of(type(back)) == (code if code in KEPT else codes.ZFS_UNAVAILABLE)
    assert http_status(Route.STREAM, code, wire.data) == stream_status
    assert http_status(Route.EVENTS, code, wire.data) == events_status


@pytest.mark.parametrize("code", sorted(codes.MEANINGS))
def test_every_code_from_the_wire_is_a_domain_error_and_back(code: int) -> None:
    error = codec.decode(ErrorObject(code, codes.MEANINGS[code], {"reason": "r", "name": "n", "kind": "pool"}), WHERE)
    wire = codec.encode(error)
    assert wire is not None
    if code in KEPT:
        assert wire.code == code
    else:  # protocol errors, auth, rate limits and internal errors: the remote cannot be used, naming the code
        assert wire.code == codes.ZFS_UNAVAILABLE and isinstance(error, ZfsUnavailable)
        assert error.reason == f"{WHERE}: {codes.MEANINGS[code]} ({code})"


def test_an_unknown_type_is_not_encoded_and_is_an_internal_error() -> None:
    assert codec.encode(KeyError("x")) is None and codec.code_of(KeyError) == codes.INTERNAL_ERROR
    already = RpcError(codes.METHOD_NOT_FOUND, "Method not found", {"method": "x"})
    assert codec.encode(already) is already


def test_an_internal_error_of_the_events_route_is_503_only_when_it_names_a_service() -> None:
    assert http_status(Route.EVENTS, codes.INTERNAL_ERROR, {}) == 400
    assert http_status(Route.EVENTS, codes.INTERNAL_ERROR, None) == 400
    assert http_status(Route.STREAM, codes.INTERNAL_ERROR, {"service": "redis"}) == 500


@pytest.mark.parametrize("code", sorted(codes.MEANINGS))
def test_refused_versus_failed(code: int) -> None:
    failed = code == -32603 or -32099 <= code <= -32010
    assert codes.refused(code) is not failed


def test_the_envelope_on_the_wire() -> None:
    assert json.loads(msgspec.json.encode(Request(method="pool_list", params={}, id=7))) == {
        "jsonrpc": "2.0", "method": "pool_list", "params": {}, "id": 7}
    assert json.loads(msgspec.json.encode(Request(method="pool_list"))) == {"jsonrpc": "2.0", "method": "pool_list"}
    assert json.loads(msgspec.json.encode(Response(id="a", result=None))) == {
        "jsonrpc": "2.0", "result": None, "id": "a"}
    assert json.loads(msgspec.json.encode(ErrorObject(-32601, "Method not found"))) == {
        "code": -32601, "message": "Method not found"}
    batch = msgspec.json.decode(b'[{"jsonrpc": "2.0", "result": 1, "id": 1},'
                                b' {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"},'
                                b' "id": null}]', type=ResponseBatch)
    assert [(r.id, r.result, r.error) for r in batch] == [
        (1, 1, msgspec.UNSET), (None, msgspec.UNSET, ErrorObject(-32600, "Invalid Request"))]
    calls = msgspec.json.decode(b'[{"jsonrpc": "2.0", "method": "a", "id": "x"}, {"jsonrpc": "2.0", "method": "b",'
                                b' "params": [1]}]', type=RequestBatch)
    assert [(c.method, c.params, c.id) for c in calls] == [("a", msgspec.UNSET, "x"), ("b", [1], msgspec.UNSET)]


# ---- the async client against the real server in process ----

async def test_the_client_against_the_server(container) -> None:
    async with http_client(http_app(container)) as http:
        rpc = RpcClient(http, "http://127.0.0.1:8545")
        assert (await rpc.call("pool_list"))["pools"] == ["tank"]
        with pytest.raises(RpcError) as exc:
            await rpc.call("no_such_method", {})
        assert (exc.value.code, exc.value.data) == (-32601, {"method": "no_such_method"})
        with pytest.raises(RpcError) as exc:
            await rpc.call("dataset_create", {"dataset": 5})
        assert exc.value.code == -32602 and exc.value.data is not None and exc.value.data["param"] == "dataset"
        with pytest.raises(RpcError) as exc:  # refused before the stream starts: 404 and the error object
            async for _ in rpc.events("nope"):
                pass
        assert (exc.value.code, exc.value.data) == (-32010, {"kind": "job", "name": "nope"})


# ---- the async client against a canned server ----

class Canned:
    """An ASGI app answering with `answer` (bytes, with `status`), or a GET (of /jobs/{id}/events) answered 200
    with `events`; it records each request (method, raw path, headers, body)."""

    def __init__(self, answer: bytes = b"", status: int = 200, events: bytes = b"") -> None:
        self.answer, self.status, self.events = answer, status, events
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []

    async def __call__(self, scope, receive, send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.seen.append((scope["method"], scope["raw_path"].decode(), headers, body))
        if scope["method"] == "GET" and self.status == 200:
            content, kind = self.events, b"text/event-stream"
        else:
            content, kind = self.answer, b"application/json"
        await send({"type": "http.response.start", "status": self.status, "headers": [(b"content-type", kind)]})
        await send({"type": "http.response.body", "body": content})


def canned_client(app: Canned, **options: Any) -> RpcClient:
    return RpcClient(httpx.AsyncClient(transport=httpx.ASGITransport(app=app)), "http://remote:8545/", **options)


async def test_a_call_sends_the_envelope_and_the_bearer() -> None:
    app = Canned(b'{"jsonrpc": "2.0", "result": {"ok": true}, "id": 1}')
    rpc = canned_client(app)
    assert await rpc.call("pool_list") == {"ok": True}
    assert await rpc.call("dataset_list", {"type": "all"}, bearer="t0k") == {"ok": True}
    (m1, p1, h1, b1), (_, _, h2, b2) = app.seen
    assert (m1, p1, h1["content-type"]) == ("POST", "/", "application/json") and "authorization" not in h1
    assert json.loads(b1) == {"jsonrpc": "2.0", "method": "pool_list", "params": {}, "id": 1}
    assert json.loads(b2) == {"jsonrpc": "2.0", "method": "dataset_list", "params": {"type": "all"}, "id": 2}
    assert h2["authorization"] == "Bearer t0k"


async def test_an_error_answer_is_raised_with_its_code_message_and_data() -> None:
    rpc = canned_client(Canned(b'{"jsonrpc": "2.0", "error": {"code": -32010, "message": "Dataset not found: t/a",'
                               b' "data": {"kind": "dataset", "name": "t/a"}}, "id": 1}'))
    with pytest.raises(RpcError) as exc:
        await rpc.call("dataset_get_properties", {"dataset": "t/a"})
    assert (exc.value.code, exc.value.message, exc.value.data) == (
        -32010, "Dataset not found: t/a", {"kind": "dataset", "name": "t/a"})


@pytest.mark.parametrize("body, status, why, text", [
    (b"<html>hi</html>", 200, Why.NOT_JSON, "http://remote:8545/ answered HTTP 200, not JSON-RPC"),
    (b"[1, 2]", 200, Why.NOT_OBJECT, "http://remote:8545/ answered HTTP 200, not a JSON-RPC object"),
    (b'{"jsonrpc": "2.0", "id": 1}', 502, Why.NO_OUTCOME,
     "http://remote:8545/ answered HTTP 502 without a JSON-RPC result"),
    (b'{"error": "no", "success": false}', 200, Why.MALFORMED, None),
])
async def test_a_body_that_is_no_answer(body: bytes, status: int, why: Why, text: str | None) -> None:
    with pytest.raises(NoAnswer) as exc:
        await canned_client(Canned(body, status)).call("pool_list")
    assert exc.value.why is why and exc.value.status == status
    if text is not None:
        assert str(exc.value) == text


async def test_a_client_that_takes_only_200_and_a_bounded_answer() -> None:
    answer = b'{"jsonrpc": "2.0", "error": {"code": -32000, "message": "Rate limit exceeded"}, "id": 1}'
    with pytest.raises(RpcError):  # any status: the body is the answer
        await canned_client(Canned(answer, 429)).call("pool_list")
    with pytest.raises(NoAnswer) as exc:
        await canned_client(Canned(answer, 429), only_ok=True).call("pool_list")
    assert (exc.value.why, exc.value.status) == (Why.STATUS, 429)
    big = b'{"jsonrpc": "2.0", "result": "' + b"x" * 5000 + b'", "id": 1}'
    assert len(await canned_client(Canned(big), max_answer=6000).call("pool_list")) == 5000
    with pytest.raises(NoAnswer) as exc:
        await canned_client(Canned(big), max_answer=4096).call("pool_list")
    assert (exc.value.why, exc.value.detail) == (Why.TOO_LARGE, "4096")


async def test_a_server_out_of_reach() -> None:
    port = free_port()
    async with httpx.AsyncClient() as http:
        with pytest.raises(NoAnswer) as exc:
            await RpcClient(http, f"http://127.0.0.1:{port}").call("pool_list")
    assert exc.value.why is Why.UNREACHABLE and isinstance(exc.value.cause, httpx.ConnectError)
    assert str(exc.value) == f"cannot reach http://127.0.0.1:{port}/: [Errno 111] Connection refused"


EVENTS = (b'event: progress\ndata: {"state": "running",\ndata:  "n": 1}\n\n: a comment\n\n'
          b'event: end\ndata: {"state": "succeeded"}\n\n')


async def test_events_are_read_until_the_stream_ends() -> None:
    app = Canned(events=EVENTS)
    got = [e async for e in canned_client(app).events("j/1", bearer="t")]
    assert got == [("progress", {"state": "running", "n": 1}), ("end", {"state": "succeeded"})]
    method, path, headers, _ = app.seen[0]
    assert (method, path, headers["authorization"]) == ("GET", "/jobs/j%2F1/events", "Bearer t")


async def test_an_error_event_ends_the_stream_as_rpc_error() -> None:
    app = Canned(events=b'event: progress\ndata: {"state": "running"}\n\n'
                        b'event: error\ndata: {"code": -32002, "message": "Invalid token"}\n\n')
    seen = []
    with pytest.raises(RpcError) as exc:
        async for event in canned_client(app).events("j"):
            seen.append(event)
    assert seen == [("progress", {"state": "running"})] and exc.value.code == -32002


async def test_events_refused_without_a_json_rpc_error_are_no_answer() -> None:
    with pytest.raises(NoAnswer) as exc:
        async for _ in canned_client(Canned(b'{"jsonrpc": "2.0", "result": 1, "id": null}', 503)).events("j"):
            pass
    assert (exc.value.why, exc.value.status) == (Why.STATUS, 503)


# ---- the blocking face against a server on a loopback socket ----

@pytest.fixture
def loopback() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stdlib HTTP server in a thread: POST / answers the call's params as its result (`fail` in them: an
    error), GET /jobs/{id}/events two events."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"request": request, "authorization": self.headers.get("Authorization")})
            if "fail" in request["params"]:
                answer = {"jsonrpc": "2.0", "error": {"code": -32015, "message": "Conflict", "data": {"reason": "x"}},
                          "id": request["id"]}
            else:
                answer = {"jsonrpc": "2.0", "result": request["params"], "id": request["id"]}
            self._send(json.dumps(answer).encode(), "application/json")

        def do_GET(self) -> None:
            self._send(EVENTS, "text/event-stream")

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_blocking_client_calls_and_follows(loopback) -> None:
    url, seen = loopback
    with BlockingClient(url) as client:
        assert client.url == url + "/"
        assert client.call("echo", {"a": 1}) == {"a": 1}
        client.token = "tok"
        assert client.call("echo", [1, 2]) == [1, 2]
        with pytest.raises(RpcError) as exc:
            client.call("echo", {"fail": True})
        assert (exc.value.code, exc.value.data) == (-32015, {"reason": "x"})
        assert list(client.events("j")) == [("progress", {"state": "running", "n": 1}), ("end", {"state": "succeeded"})]
        events = client.events("j")
        assert next(events)[0] == "progress"
        events.close()  # left early: the stream is closed, the client goes on
        assert client.call("echo") == {}
    assert [s["request"]["id"] for s in seen] == [1, 2, 3, 4]
    assert [s["authorization"] for s in seen] == [None, "Bearer tok", "Bearer tok", "Bearer tok"]


def test_the_blocking_client_out_of_reach() -> None:
    port = free_port()
    with BlockingClient(f"http://127.0.0.1:{port}") as client, pytest.raises(NoAnswer) as exc:
        client.call("pool_list")
    assert str(exc.value) == f"cannot reach http://127.0.0.1:{port}/: [Errno 111] Connection refused"
