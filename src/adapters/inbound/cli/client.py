"""The client commands, each with `[--url URL] [--token T | --user U]`:

- `zfsapi call METHOD [key=value ... | JSON]`: one JSON-RPC call, its result printed as JSON.
- `zfsapi migrate SRC DST [...]`: migration_create, then the job followed with a progress display.
- `zfsapi jobs [list | get ID | cancel ID | watch ID]`.

Exit 0 on a result (a job that succeeded); 1 on a JSON-RPC error or a job that did not succeed (message and code
on stderr); 2 on bad usage; 3 when the server cannot be reached; 130 on Ctrl-C while following a job."""

from __future__ import annotations

import difflib
import json
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any, Callable

from zfsapi.domain.jobs import JobState
from zfsapi.protocol.blocking import BlockingClient
from zfsapi.protocol.client import NoAnswer
from zfsapi.protocol.codes import METHOD_NOT_FOUND
from zfsapi.protocol.envelope import RpcError

from .prompt import read_password

DEFAULT_URL = "http://127.0.0.1:8545"


def parse_params(args: list[str]) -> dict[str, Any] | list[Any]:
    """`["dataset=tank/a b", "recursive=true", "properties=[\\"used\\"]"]` -> named params (a value is JSON when
    it parses as JSON, else the string itself); one argument that is a JSON object or array is used as is.

    Raises:
        ValueError: an argument that is neither key=value nor (alone) a JSON object or array.
    """
    if len(args) == 1 and args[0].lstrip()[:1] in ("{", "["):
        try:
            params = json.loads(args[0])
        except ValueError as exc:
            raise ValueError(f"params are not valid JSON: {exc}") from None
        if not isinstance(params, (dict, list)):
            raise ValueError("params must be a JSON object or array")
        return params
    out: dict[str, Any] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ValueError(f"{arg!r} is not key=value")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class Session:
    """Where and as whom the client commands call: the server's URL and a token, or a user to log in as (the
    password from $ZFSAPI_PASSWORD, else asked without echo)."""

    url: str
    token: str | None = None
    user: str | None = None

    def run(self, work: Callable[[BlockingClient], int]) -> int:
        """`work`'s exit code with a client (logged in first with `user`); a JSON-RPC error is one line on stderr
        and exit 1, a server out of reach exit 3, Ctrl-C exit 130."""
        with BlockingClient(self.url, self.token) as client:
            try:
                if self.user is not None:
                    password = os.environ.get("ZFSAPI_PASSWORD") or read_password(confirm=False)
                    client.token = client.call("auth_login", {"username": self.user, "password": password})["token"]
                return work(client)
            except RpcError as exc:
                _error(exc.code, exc.message, exc.data)
                return 1
            except NoAnswer as exc:
                print(f"zfsapi: {exc}", file=sys.stderr)
                return 3
            except KeyboardInterrupt:  # Ctrl-C before a job was followed (a call, the password prompt)
                print("zfsapi: interrupted", file=sys.stderr)
                return 130


def _error(code: int, message: str, data: Any) -> None:
    print(f"zfsapi: {message} (code {code}){f': {json.dumps(data)}' if data else ''}", file=sys.stderr)


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    print()


def run_call(session: Session, method: str, args: list[str]) -> int:
    try:
        params = parse_params(args)
    except ValueError as exc:
        print(f"zfsapi: {exc}", file=sys.stderr)
        return 2

    def work(client: BlockingClient) -> int:
        try:
            _print_json(client.call(method, params))
        except RpcError as exc:
            if exc.code == METHOD_NOT_FOUND:
                _suggest(client, method)
            raise
        return 0

    return session.run(work)


def method_names(client: BlockingClient) -> list[str]:
    """The methods the server offers (its rpc.discover document)."""
    return [m["name"] for m in client.call("rpc.discover")["methods"]]


def _suggest(client: BlockingClient, method: str) -> None:
    """"did you mean" for a method the server does not have: the close names from its rpc.discover (asked only
    now, so the server's unknown-method path stays as cheap as it is)."""
    try:
        close = difflib.get_close_matches(method, method_names(client), n=3, cutoff=0.6)
    except (RpcError, NoAnswer):
        return
    if close:
        print(f"zfsapi: did you mean {' or '.join(close)}?", file=sys.stderr)


def follow(client: BlockingClient, job_id: str, label: str) -> dict[str, Any]:
    """The job's record once it has ended, its progress shown meanwhile (a bar on a terminal, else lines)."""
    from .progress import TransferProgress

    record: dict[str, Any] | None = None
    with TransferProgress(label) as bar:
        while record is None or not JobState(record["state"]).finished:  # a stream cut short is followed again
            for event, record in client.events(job_id):
                p = record["progress"]
                bar.update(p["bytes_done"] or 0, p["bytes_total"], p["rate_bytes_per_s"], p["eta_seconds"],
                           last=event == "end")
        error = record["error"]
        bar.finish("done" if record["state"] == "succeeded" else f"failed: {error['message']}" if error
                   else record["state"])
    return record


def follow_job(client: BlockingClient, job_id: str, label: str, *, cancel_on_interrupt: bool) -> int:
    """Follow the job to its end: its result on stdout and exit 0 when it succeeded, else its error (message,
    code) on stderr and exit 1. Ctrl-C cancels it (`cancel_on_interrupt`) or leaves it running and prints its
    id; exit 130 either way."""
    try:
        record = follow(client, job_id, label)
    except KeyboardInterrupt:
        if not cancel_on_interrupt:
            print(job_id)
            print(f"zfsapi: job {job_id} keeps running (zfsapi jobs watch {job_id})", file=sys.stderr)
            return 130
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cancel
        try:
            client.call("job_cancel", {"job_id": job_id})
        finally:
            signal.signal(signal.SIGINT, previous)
        print(f"zfsapi: job {job_id} cancelled", file=sys.stderr)
        return 130
    if record["state"] == "succeeded":
        _print_json(record["result"])
        return 0
    error = record["error"]
    if error:
        _error(error["code"], error["message"], error["data"])
    else:
        print(f"zfsapi: job {job_id} {record['state']}", file=sys.stderr)
    return 1


def run_migrate(session: Session, params: dict[str, Any], *, detach: bool) -> int:
    """migration_create, then its job followed; Ctrl-C cancels it unless `detach`."""

    def work(client: BlockingClient) -> int:
        started = client.call("migration_create", params)
        job_id = started["job_id"]
        print(f"zfsapi: migration {started['task_id']} is job {job_id}", file=sys.stderr)
        where = f"{params['remote']}:" if "remote" in params else ""
        label = f"{params['source']} -> {where}{params['destination']}"
        return follow_job(client, job_id, label, cancel_on_interrupt=not detach)

    return session.run(work)


def run_jobs(session: Session, action: str, job_id: str | None = None, *, state: str | None = None,
             kind: str | None = None, detach: bool = False, as_json: bool = False) -> int:
    """`jobs list` (a table), `jobs get` and `jobs cancel` (JSON), `jobs watch` (followed like a migration;
    Ctrl-C cancels it unless `detach`)."""

    def work(client: BlockingClient) -> int:
        if action == "list":
            params = {k: v for k, v in (("state", state), ("kind", kind)) if v is not None}
            listed = client.call("job_list", params)
            if as_json:  # the server's answer, for programs
                _print_json(listed)
                return 0
            print(job_table(listed["jobs"]))
            if listed["total"] > len(listed["jobs"]):
                print(f"zfsapi: the newest {len(listed['jobs'])} of {listed['total']} jobs", file=sys.stderr)
            return 0
        assert job_id is not None
        if action == "watch":
            record = client.call("job_get", {"job_id": job_id})
            return follow_job(client, job_id, f"{record['kind']} {job_id}", cancel_on_interrupt=not detach)
        _print_json(client.call("job_get" if action == "get" else "job_cancel", {"job_id": job_id}))
        return 0

    return session.run(work)


def job_table(jobs: list[dict[str, Any]]) -> str:
    """One line per job under a header: id, kind, state, owner, created, progress."""
    from .progress import human_bytes

    def moved(p: dict[str, Any]) -> str:
        if p["bytes_done"] is None:
            return "-"
        total = p["bytes_total"]
        return human_bytes(p["bytes_done"]) + (f" / {human_bytes(total)}" if total else "")

    rows = [("JOB ID", "KIND", "STATE", "OWNER", "CREATED", "PROGRESS")]
    rows += [(j["job_id"], j["kind"], j["state"], j["owner"], j["created_at"], moved(j["progress"])) for j in jobs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows)
