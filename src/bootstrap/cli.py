"""`zfsapi serve [--config PATH] [--host H] [--port P]`, `zfsapi check-config`, `zfsapi hash-password`,
`zfsapi user add NAME [--role R] [--dataset PREFIX ...] [--config PATH]`."""

from __future__ import annotations

import argparse
import os
import sys

import msgspec

from .settings import Settings, SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zfsapi", description="ZFS management server (JSON-RPC 2.0 over HTTP)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--config", help="config.yaml (default: $ZFSAPI_CONFIG, else built-in defaults)")
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
        settings = load_settings(args.config, overrides={"server": {"http": http}} if http else None)
    except SettingsError as exc:
        print(f"zfsapi: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print("configuration ok")
        return 0
    return serve_forever(settings)


def serve_forever(settings: Settings) -> int:
    import uvicorn

    from . import create_app_from_settings
    from .logs import configure_logging

    from zfsapi.adapters.outbound.auth.secret import SecretError

    configure_logging(settings.logging.level)
    workers = settings.server.http.workers
    try:
        app = create_app_from_settings(settings)  # also checks the signing key before any worker starts
    except SecretError as exc:
        print(f"zfsapi: {exc}", file=sys.stderr)
        return 2
    if workers > 1:
        # each worker process builds its own app from the same settings (passed through the environment)
        os.environ["ZFSAPI_SETTINGS_JSON"] = msgspec.json.encode(settings).decode()
    # The stdlib loop: uvloop spawns subprocesses several times slower and stalls the loop doing it.
    # proxy_headers off: the peer address is the socket's, never X-Forwarded-For.
    uvicorn.run(
        "zfsapi.bootstrap.asgi:create" if workers > 1 else app,
        factory=workers > 1,
        workers=workers if workers > 1 else None,
        host=settings.server.http.host,
        port=settings.server.http.port,
        loop="asyncio",
        http="httptools",  # the C parser: several times less CPU per streamed byte than h11
        proxy_headers=False,
        server_header=False,
        date_header=True,
        log_config=None,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
