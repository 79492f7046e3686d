"""The client commands, each with `[--url URL] [--token T | --user U]`:

- `zfsapi call METHOD [key=value ... | JSON]`: one JSON-RPC call, its result printed as JSON.
- `zfsapi migrate SRC DST [...]`: migration_create, then the job followed with a progress display.
- `zfsapi jobs [list | get ID | cancel ID | watch ID]`.

Exit 0 on a result (a job that succeeded); 1 on a JSON-RPC error or a job that did not succeed (message and code
on stderr); 2 on bad usage; 3 when the server cannot be reached; 130 on Ctrl-C while following a job."""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import quote

import httpx

from zfsapi.domain.jobs import JobState

from .settings import Settings

DEFAULT_URL = "http://127.0.0.1:8545"


class CallFailed(Exception):
    """A JSON-RPC error object: `code`, `message`, `data`."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code, self.message, self.data = code, message, data


class Unreachable(Exception):
    """The server could not be reached, or did not answer JSON-RPC."""


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


def url_from(settings: Settings) -> str:
    """The server's own address from its config (a wildcard bind is reached over loopback)."""
    host = settings.server.http.host
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.server.http.port}"


class Client:
    """A JSON-RPC 2.0 client over HTTP (one connection kept alive), and the job events of GET /jobs/{id}/events."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 330.0) -> None:
        self.url = url.rstrip("/") + "/"
        self.token = token
        self._http = httpx.Client(timeout=timeout)
        self._ids = 0

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def call(self, method: str, params: Mapping[str, Any] | list[Any] | None = None) -> Any:
        """The method's result. Raises CallFailed (a JSON-RPC error) or Unreachable."""
        self._ids += 1
        request = {"jsonrpc": "2.0", "method": method, "params": params if params is not None else {}, "id": self._ids}
        try:
            response = self._http.post(self.url, json=request, headers=self._headers())
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach {self.url}: {exc}") from None
        answer = self._answer(response)
        if "result" not in answer:
            raise Unreachable(f"{self.url} answered HTTP {response.status_code} without a JSON-RPC result")
        return answer["result"]

    def _answer(self, response: httpx.Response) -> dict[str, Any]:
        """The JSON-RPC answer object; raises CallFailed when it carries an error."""
        try:
            answer = response.json()
        except ValueError:
            raise Unreachable(f"{self.url} answered HTTP {response.status_code}, not JSON-RPC") from None
        if not isinstance(answer, dict):
            raise Unreachable(f"{self.url} answered HTTP {response.status_code}, not a JSON-RPC object")
        if isinstance(answer.get("error"), dict):
            error = answer["error"]
            raise CallFailed(int(error.get("code", 0)), str(error.get("message", "")), error.get("data"))
        return answer

    def login(self, username: str, password: str) -> None:
        self.token = self.call("auth_login", {"username": username, "password": password})["token"]

    def events(self, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """GET /jobs/{job_id}/events: (event name, job record) as the server sends them (`progress` on every
        change, `end` last), until the stream ends. Raises CallFailed (no such job, not allowed, or the stream
        ended by an `error` event: the token revoked or expired) or Unreachable."""
        url = f"{self.url}jobs/{quote(job_id, safe='')}/events"
        try:
            # no read timeout: a queued job may wait long without a change to report
            with self._http.stream("GET", url, headers=self._headers(),
                                   timeout=httpx.Timeout(30.0, read=None)) as response:
                if response.status_code != 200:
                    response.read()
                    self._answer(response)
                    raise Unreachable(f"{url} answered HTTP {response.status_code}")
                name, data = "message", []
                for line in response.iter_lines():
                    if line:
                        field, _, value = line.partition(":")
                        if field == "event":
                            name = value.strip()
                        elif field == "data":
                            data.append(value.removeprefix(" "))
                    elif data:
                        payload = json.loads("\n".join(data))
                        if name == "error":  # the server ended the stream: this caller may no longer follow
                            raise CallFailed(int(payload.get("code", 0)), str(payload.get("message", "")),
                                             payload.get("data"))
                        yield name, payload
                        name, data = "message", []
        except httpx.HTTPError as exc:
            raise Unreachable(f"lost {url}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Session:
    """Where and as whom the client commands call: the server's URL and a token, or a user to log in as (the
    password from $ZFSAPI_PASSWORD, else asked without echo)."""

    url: str
    token: str | None = None
    user: str | None = None

    def run(self, work: Callable[[Client], int]) -> int:
        """`work`'s exit code with a client (logged in first with `user`); a JSON-RPC error is one line on stderr
        and exit 1, a server out of reach exit 3, Ctrl-C exit 130."""
        with Client(self.url, self.token) as client:
            try:
                if self.user is not None:
                    from .users_cli import read_password

                    client.login(self.user, os.environ.get("ZFSAPI_PASSWORD") or read_password(confirm=False))
                return work(client)
            except CallFailed as exc:
                _error(exc.code, exc.message, exc.data)
                return 1
            except Unreachable as exc:
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

    def work(client: Client) -> int:
        _print_json(client.call(method, params))
        return 0

    return session.run(work)


def follow(client: Client, job_id: str, label: str) -> dict[str, Any]:
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


def follow_job(client: Client, job_id: str, label: str, *, cancel_on_interrupt: bool) -> int:
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

    def work(client: Client) -> int:
        started = client.call("migration_create", params)
        job_id = started["job_id"]
        print(f"zfsapi: migration {started['task_id']} is job {job_id}", file=sys.stderr)
        where = f"{params['remote']}:" if "remote" in params else ""
        label = f"{params['source']} -> {where}{params['destination']}"
        return follow_job(client, job_id, label, cancel_on_interrupt=not detach)

    return session.run(work)


def run_jobs(session: Session, action: str, job_id: str | None = None, *, state: str | None = None,
             kind: str | None = None, detach: bool = False) -> int:
    """`jobs list` (a table), `jobs get` and `jobs cancel` (JSON), `jobs watch` (followed like a migration;
    Ctrl-C cancels it unless `detach`)."""

    def work(client: Client) -> int:
        if action == "list":
            params = {k: v for k, v in (("state", state), ("kind", kind)) if v is not None}
            listed = client.call("job_list", params)
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
