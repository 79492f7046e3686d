"""JSON log lines on stderr (and appended to logging.file when set), each with the request id of the request
being served.

A line is logged for every request (the access line), so the per-line cost counts: the timestamp's text is made
once per second, a serving process's records skip what no line prints (caller frame, thread and process names),
and the lines logged on the event loop reach stderr in one write per loop turn rather than one each."""

from __future__ import annotations

import asyncio
import atexit
import logging
import logging.handlers
import os
import queue
import sys
import time
from datetime import datetime, timezone
from typing import Any

import msgspec

from zfsapi.adapters.inbound.http.admission import request_id_var

from .settings import LoggingSettings

# uvicorn adds `color_message` (the message again, with ANSI colour escapes) to its records: never a field
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}
_ENCODER = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    """`fields`: carried by every line (a simulated server's `"simulated": true`)."""

    def __init__(self, fields: dict[str, object] | None = None) -> None:
        super().__init__()
        self._fields = dict(fields or {})
        self._second: tuple[int, str] = (-1, "")  # one tuple: threads formatting at once see a matching pair

    def timestamp(self, created: float) -> str:
        """`created` as ISO 8601 UTC with milliseconds (what isoformat(timespec="milliseconds") gives)."""
        second = int(created)
        cached, prefix = self._second
        if second != cached:
            prefix = datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (second, prefix)
        return f"{prefix}.{int((created - second) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if record.exc_info:
            extra["exc"] = self.formatException(record.exc_info)
        return self.line(record.created, record.levelname, record.name, record.getMessage(), extra)

    def line(self, created: float, level: str, logger: str, msg: str, extra: dict[str, Any]) -> str:
        """The JSON line of a record with these attributes and `extra` fields (format's, and the direct path's)."""
        entry = {
            "ts": self.timestamp(created),
            "level": level,
            "logger": logger,
            "msg": msg,
            "request_id": extra.get("request_id") or request_id_var.get(),
        }
        entry.update(self._fields)
        entry.update(extra)
        return _ENCODER.encode(entry).decode("utf-8", "replace")


def configure_logging(config: LoggingSettings, *, simulated: bool = False) -> None:
    """`simulated`: every line says `"simulated": true` (`serve --simulate`)."""
    fields: dict[str, object] = {"simulated": True} if simulated else {}
    # what no line prints (JsonFormatter): the caller's frame (sys._getframe per record), thread and process names
    logging._srcfile = None  # the logging HOWTO's "Optimization" section
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = LoopBatchedStreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(fields))
    root = logging.getLogger()
    root.handlers[:] = [handler] + ([json_file_handler(config.file, fields)] if config.file else [])
    root.setLevel(config.level)
    audit = logging.getLogger("zfsapi.audit")
    audit.setLevel(logging.INFO)  # the trail is kept whatever the level of the other logs
    if config.audit_file is not None:
        audit.handlers[:] = [json_file_handler(config.audit_file, fields)]
        audit.propagate = False


class LoopBatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler whose lines emitted on a running event loop are written together at the end of the loop's
    turn (one write and flush for all the requests answered in it); lines from any other thread, and every line
    while none are pending, keep their order. flush() (logging.shutdown at exit) writes what is pending."""

    def __init__(self, stream: object = None) -> None:
        super().__init__(stream)
        self._pending: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:  # called with the handler's lock held
        try:
            self._add(self.format(record) + self.terminator)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def emit_fields(self, level: int, logger: str, msg: str, extra: dict[str, Any]) -> bool:
        """Write the line a record of `extra` fields would give, without making the record (the access log's
        path: a record costs a fifth of a cheap call). False, and nothing written, when this handler would not
        take it as it is (a filter, its level, a formatter other than JsonFormatter): the caller logs it."""
        formatter = self.formatter
        if self.filters or level < self.level or not isinstance(formatter, JsonFormatter):
            return False
        line = formatter.line(time.time(), logging.getLevelName(level), logger, msg, extra) + self.terminator
        with self.lock:  # type: ignore[union-attr]
            self._add(line)
        return True

    def _add(self, line: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            self._pending.append(line)
            self._write()
            return
        if not self._pending:
            loop.call_soon(self.flush)
        self._pending.append(line)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write()

    def _write(self) -> None:
        text, self._pending = "".join(self._pending), []
        try:
            if text:
                self.stream.write(text)
            if self.stream and hasattr(self.stream, "flush"):
                self.stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: the lines are lost, as StreamHandler loses them
            pass


def json_file_handler(path: str, fields: dict[str, object] | None = None) -> logging.Handler:
    """JSON lines appended to `path` (created 0600) by a background thread: the event loop only enqueues."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600))
    target = logging.FileHandler(path, encoding="utf-8")
    target.setFormatter(JsonFormatter(fields))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, target)
    listener.start()
    atexit.register(_stop, listener)  # flush what is queued on the way out
    handler = _ContextQueueHandler(records)
    handler.listener = listener
    return handler


def _stop(listener: logging.handlers.QueueListener) -> None:
    if listener._thread is not None:  # not stopped already
        listener.stop()


class _ContextQueueHandler(logging.handlers.QueueHandler):
    """Queues the record with the request id it was logged under (the writer thread has no request context)."""

    listener: logging.handlers.QueueListener

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.request_id = request_id_var.get()
        return record
