"""`zfsapi serve [--config PATH] [--host H] [--port P]`, `zfsapi check-config`, `zfsapi hash-password`,
`zfsapi user add NAME [--role R] [--dataset PREFIX ...] [--config PATH]`."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import stat
import sys
from typing import Mapping

import msgspec

from .settings import Settings, SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zfsapi", description="ZFS management server (JSON-RPC 2.0 over HTTP)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--config", help="config.yaml (default: $ZFSAPI_CONFIG, else ./config.yaml, else "
                                        "/etc/zfsapi/config.yaml, else built-in defaults)")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8545)")
    check = sub.add_parser("check-config", help="validate the configuration and exit")
    check.add_argument("--config")
    hp = sub.add_parser("hash-password", help="print an Argon2id hash of a password (read without echo or from stdin)")
    hp.add_argument("--profile", choices=["rfc9106-low-memory", "owasp-minimum"], default="rfc9106-low-memory")
    user = sub.add_parser("user", help="manage users in the config file")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="add or replace a user (password read without echo or from stdin)")
    add.add_argument("name")
    add.add_argument("--role", choices=["admin", "operator", "readonly"], default="readonly")
    add.add_argument("--dataset", action="append", default=[], help="a dataset prefix the user may touch (repeat)")
    add.add_argument("--config", help="config.yaml to edit (default: $ZFSAPI_CONFIG, else ./config.yaml)")
    add.add_argument("--profile", choices=["rfc9106-low-memory", "owasp-minimum"], default="rfc9106-low-memory")
    args = parser.parse_args(argv)

    if args.command == "hash-password":
        from .users_cli import hash_password

        print(hash_password(args.profile))
        return 0
    if args.command == "user":
        from pathlib import Path

        from .users_cli import add_user

        add_user(Path(args.config or os.environ.get("ZFSAPI_CONFIG") or "config.yaml"), args.name, args.role,
                 args.dataset, args.profile)
        return 0

    http = {k: v for k, v in (("host", getattr(args, "host", None)), ("port", getattr(args, "port", None))) if v}
    try:
        settings = load_settings(find_config(args.config, os.environ),
                                 overrides={"server": {"http": http}} if http else None)
    except SettingsError as exc:
        print(f"zfsapi: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        problem = state_dir_problem(settings)
        if problem is not None:
            print(f"zfsapi: config key state_dir: {problem}", file=sys.stderr)
            return 2
        print(f"configuration ok ({settings.source or 'built-in defaults'})")
        return 0
    return serve_forever(settings)


def state_dir_problem(settings: Settings) -> str | None:
    """Why the server could not keep its state (signing key, revocations) in state_dir, if it needs to; None
    when it can. Nothing is created: the nearest existing ancestor must be a writable directory."""
    from .security import tokens_outlive_the_process

    if not tokens_outlive_the_process(settings):
        return None  # nothing to keep: no users and no configured key
    path = os.path.abspath(settings.state_dir)
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        return f"{path} is not a directory"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{path} is not writable"
    return None


CONFIG_PLACES = ("config.yaml", "/etc/zfsapi/config.yaml")


def find_config(given: str | None, environ: Mapping[str, str]) -> str | None:
    """The config file to read: --config, else $ZFSAPI_CONFIG, else the first of ./config.yaml and
    /etc/zfsapi/config.yaml that exists (where `zfsapi user add` writes), else none (built-in defaults)."""
    if given:
        return given
    if environ.get("ZFSAPI_CONFIG"):
        return environ["ZFSAPI_CONFIG"]
    return next((place for place in CONFIG_PLACES if os.path.isfile(place)), None)


def serve_forever(settings: Settings) -> int:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from . import create_app_from_settings
    from .logs import configure_logging
    from .security import socket_group

    from zfsapi.adapters.inbound.http.peer import PeerAwareHttpTools
    from zfsapi.adapters.outbound.auth.secret import SecretError

    configure_logging(settings.logging.level, settings.logging.audit_file)
    logging.getLogger("zfsapi").info("configuration", extra={"config": settings.source or "built-in defaults"})
    workers = settings.server.http.workers
    try:
        app = create_app_from_settings(settings)  # also checks the signing key before any worker starts
        gid = socket_group(settings)
    except (SecretError, SettingsError) as exc:
        print(f"zfsapi: {exc}", file=sys.stderr)
        return 2
    if workers > 1:
        # each worker process builds its own app from the same settings (passed through the environment)
        os.environ["ZFSAPI_SETTINGS_JSON"] = msgspec.json.encode(settings).decode()
    # The stdlib loop: uvloop spawns subprocesses several times slower and stalls the loop doing it.
    # proxy_headers off: the peer address is the socket's, never X-Forwarded-For.
    config = uvicorn.Config(
        "zfsapi.bootstrap.asgi:create" if workers > 1 else app,
        factory=workers > 1,
        workers=workers,
        host=settings.server.http.host,
        port=settings.server.http.port,
        loop="asyncio",
        # the C parser (several times less CPU per streamed byte than h11), plus the caller's uid from the kernel
        http=PeerAwareHttpTools,
        proxy_headers=False,
        server_header=False,
        date_header=True,
        log_config=None,
        access_log=False,
    )
    unix = settings.server.unix
    try:
        sockets = [config.bind_socket()]
        if unix.path:
            sockets.append(bind_unix_socket(unix.path, unix.mode, gid))
    except OSError as exc:
        print(f"zfsapi: cannot listen: {exc}", file=sys.stderr)
        return 2
    host, port = sockets[0].getsockname()[:2]  # the port chosen, with --port 0
    logging.getLogger("zfsapi").info("listening", extra={"url": f"http://{host}:{port}", "unix": unix.path})
    try:
        if workers > 1:
            Multiprocess(config, sockets=sockets).run()
        else:
            # uvicorn re-raises SIGTERM after its graceful shutdown; as an exception it lets `finally` tidy up
            signal.signal(signal.SIGTERM, _exit_on_signal)
            uvicorn.Server(config).run(sockets=sockets)
    finally:
        if unix.path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(unix.path)
    return 0


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def bind_unix_socket(path: str, mode: int, gid: int | None) -> socket.socket:
    """A listening Unix socket at `path` with `mode` and group `gid`; a stale socket there is replaced, any other
    file is not. The socket is never reachable wider than `mode`: it is made under a umask that shuts out all."""
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise OSError(f"{path} exists and is not a socket")
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    if gid is not None:
        os.chown(path, -1, gid)
    os.chmod(path, mode)
    sock.set_inheritable(True)
    return sock


if __name__ == "__main__":
    raise SystemExit(main())
