"""The cheap request's path (issue 21 item 1, bench/bench_request.py): POST / answered ahead of Litestar, a
response's head and body in one write, the access lines of a loop turn in one write, the timestamp made once per
second; each keeps what it replaced: refusals, order, nothing lost."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from datetime import datetime, timezone

import pytest

from tests.conftest import http_client
from zfsapi.adapters.inbound.http.peer import CORK_LIMIT, CorkedTransport
from zfsapi.adapters.inbound.jsonrpc.dispatcher import Dispatcher
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.bootstrap.logs import JsonFormatter, LoopBatchedStreamHandler

CALL = {"jsonrpc": "2.0", "method": "pool_list", "id": 1}


class Recording:
    """A transport that records its writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 4)}.get(name, default)


async def test_a_turns_small_writes_leave_as_one_write_at_its_end() -> None:
    real = Recording()
    corked = CorkedTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    corked.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    corked.write(b"{}")
    assert real.writes == []  # nothing yet: the turn is not over
    await asyncio.sleep(0)
    assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    assert corked.get_extra_info("peername") == ("127.0.0.1", 4)  # the rest is the transport's own


async def test_a_large_write_follows_what_is_pending_at_once() -> None:
    real = Recording()
    corked = CorkedTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    chunk = b"x" * CORK_LIMIT
    corked.write(b"head")
    corked.write(chunk)
    assert real.writes == [b"head", chunk]
    await asyncio.sleep(0)
    assert real.writes == [b"head", chunk]


async def test_asking_or_closing_sends_what_is_pending_and_abort_drops_it() -> None:
    loop = asyncio.get_running_loop()
    real = Recording()
    corked = CorkedTransport(real, loop)  # type: ignore[arg-type]
    corked.write(b"a")
    assert corked.get_write_buffer_size() == 0 and real.writes == [b"a"]  # a splice may start after this
    corked.write(b"b")
    corked.close()
    assert real.writes == [b"a", b"b"] and real.closed
    await asyncio.sleep(0)
    assert real.writes == [b"a", b"b"]  # the turn's end finds nothing more

    real = Recording()
    corked = CorkedTransport(real, loop)  # type: ignore[arg-type]
    corked.write(b"never")
    corked.abort()
    await asyncio.sleep(0)
    assert real.writes == [] and real.aborted


async def test_access_lines_of_a_turn_are_one_write_in_order_and_none_is_lost() -> None:
    writes: list[str] = []

    class Stream(io.StringIO):
        def write(self, s: str) -> int:
            writes.append(s)
            return len(s)

    handler = LoopBatchedStreamHandler(Stream())
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("zfsapi.test.batched")
    logger.handlers[:], logger.propagate, logger.level = [handler], False, logging.INFO
    for i in range(3):
        logger.info("line %d", i)
    assert writes == []
    await asyncio.sleep(0)
    assert writes == ["line 0\nline 1\nline 2\n"]

    logger.info("pending")  # on the loop: waits for the turn's end ...
    worker = threading.Thread(target=logger.info, args=("from a thread",))
    worker.start()
    worker.join()  # ... and a line from a thread writes it first, keeping the order
    assert "".join(writes[1:]) == "pending\nfrom a thread\n"
    logger.info("at exit")
    handler.flush()  # what logging.shutdown does at exit
    assert writes[-1] == "at exit\n"


@pytest.mark.parametrize("created", [0.0, 1765000000.0, 1765000000.999, 1765000000.0004, 1765000059.5,
                                     1765000060.25, 1765043199.123456])
def test_the_cached_timestamp_is_isoformats(created: float) -> None:
    formatter = JsonFormatter()
    formatter.timestamp(created - 1)  # another second cached first
    expected = datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds")
    assert formatter.timestamp(created) == expected


async def test_a_host_header_no_client_sends_is_400(container) -> None:
    async with http_client(http_app(container)) as c:
        r = await c.post("/", json=CALL, headers={"Host": "127.0.0.1:8545/x"})
    assert r.status_code == 400 and r.json()["error"]["data"]["reason"] == "invalid Host header"


async def test_a_bug_on_the_rpc_route_is_a_json_rpc_500_and_logged(container, monkeypatch, caplog) -> None:
    async def broken(self, body, ctx, charge=None):
        raise RuntimeError("a bug")

    monkeypatch.setattr(Dispatcher, "handle", broken)
    caplog.set_level(logging.INFO)
    async with http_client(http_app(container)) as c:
        r = await c.post("/", json=CALL)
        other = await c.get("/health")  # the other routes are Litestar's, unaffected
    assert r.status_code == 500 and r.json()["error"]["code"] == -32603
    assert "a bug" not in r.text
    assert any(rec.name == "zfsapi.http" and rec.exc_info for rec in caplog.records)
    access = [rec for rec in caplog.records if rec.name == "zfsapi.access"]
    assert access and access[-1].status == 500
    assert other.status_code in (200, 503) and json.loads(other.text)


async def test_the_access_line_written_directly_is_the_line_a_record_gives() -> None:
    """The server's stderr handler writes access lines without a LogRecord; the line is the one the record would
    give, and anything else listening (a filter, a second handler such as pytest's or a log file's) gets records."""
    from zfsapi.adapters.inbound.http.admission import Admission
    from zfsapi.adapters.inbound.http.rpc_route import _direct, access_line

    lines: list[str] = []

    class Stream(io.StringIO):
        def write(self, s: str) -> int:
            lines.extend(s.splitlines())
            return len(s)

    handler = LoopBatchedStreamHandler(Stream())
    handler.setFormatter(JsonFormatter({"simulated": True}))
    logger = logging.getLogger("zfsapi.access")
    saved = logger.handlers[:], logger.propagate, logger.level, logger.filters[:]
    a = Admission(None, None, "rid-1", {}, "127.0.0.1")
    try:
        logger.handlers[:], logger.propagate, logger.level = [handler], False, logging.INFO
        assert _direct(logger) is not None
        access_line(a, None, 421, 0.0)
        logger.addFilter(lambda record: True)  # a filter: records again
        assert _direct(logger) is None
        access_line(a, None, 421, 0.0)
        logger.filters.clear()
        logger.handlers.append(logging.NullHandler())  # two handlers: records again
        assert _direct(logger) is None
        await asyncio.sleep(0)
        handler.flush()
    finally:
        logger.handlers[:], logger.propagate, logger.level, logger.filters[:] = saved
    direct, recorded = (json.loads(line) for line in lines)
    for entry in (direct, recorded):
        assert entry.pop("ts") and entry.pop("duration_ms") is not None
    assert direct == recorded == {"level": "INFO", "logger": "zfsapi.access", "msg": "rpc", "request_id": "rid-1",
                                  "simulated": True, "method": [], "outcome": "refused", "code": None,
                                  "status": 421, "principal": None, "peer": "127.0.0.1"}
    assert list(direct) == list(recorded)  # the same order of keys
