"""`zfsapi call [--url URL] [--token T | --user U] METHOD [key=value ... | JSON]`: one JSON-RPC call, its result
printed as JSON. Exit 0 on a result; 1 on a JSON-RPC error (message and code on stderr); 2 on bad usage; 3 when
the server cannot be reached."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Mapping

import httpx

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
    """A JSON-RPC 2.0 client over HTTP (one connection kept alive)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 330.0) -> None:
        self.url = url.rstrip("/") + "/"
        self.token = token
        self._http = httpx.Client(timeout=timeout)
        self._ids = 0

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def call(self, method: str, params: Mapping[str, Any] | list[Any] | None = None) -> Any:
        """The method's result. Raises CallFailed (a JSON-RPC error) or Unreachable."""
        self._ids += 1
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        request = {"jsonrpc": "2.0", "method": method, "params": params if params is not None else {}, "id": self._ids}
        try:
            response = self._http.post(self.url, json=request, headers=headers)
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach {self.url}: {exc}") from None
        try:
            answer = response.json()
        except ValueError:
            raise Unreachable(f"{self.url} answered HTTP {response.status_code}, not JSON-RPC") from None
        if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
            error = answer["error"]
            raise CallFailed(int(error.get("code", 0)), str(error.get("message", "")), error.get("data"))
        if not isinstance(answer, dict) or "result" not in answer:
            raise Unreachable(f"{self.url} answered HTTP {response.status_code} without a JSON-RPC result")
        return answer["result"]

    def login(self, username: str, password: str) -> None:
        self.token = self.call("auth_login", {"username": username, "password": password})["token"]


def run_call(url: str, token: str | None, user: str | None, method: str, args: list[str]) -> int:
    try:
        params = parse_params(args)
    except ValueError as exc:
        print(f"zfsapi: {exc}", file=sys.stderr)
        return 2
    with Client(url, token) as client:
        try:
            if user is not None:
                from .users_cli import read_password

                client.login(user, os.environ.get("ZFSAPI_PASSWORD") or read_password(confirm=False))
            result = client.call(method, params)
        except CallFailed as exc:
            data = f": {json.dumps(exc.data)}" if exc.data else ""
            print(f"zfsapi: {exc.message} (code {exc.code}){data}", file=sys.stderr)
            return 1
        except Unreachable as exc:
            print(f"zfsapi: {exc}", file=sys.stderr)
            return 3
    json.dump(result, sys.stdout, indent=2, ensure_ascii=False)
    print()
    return 0
