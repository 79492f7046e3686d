"""`zfsapi serve [--config PATH] [--host H] [--port P]`."""

from __future__ import annotations

import argparse
import sys

from .settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zfsapi", description="ZFS management server (JSON-RPC 2.0 over HTTP)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--config", help="config.yaml (default: $ZFSAPI_CONFIG, else built-in defaults)")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8545)")
    check = sub.add_parser("check-config", help="validate the configuration and exit")
    check.add_argument("--config")
    args = parser.parse_args(argv)

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


def serve_forever(settings) -> int:
    import uvicorn

    from . import create_app_from_settings
    from .logs import configure_logging

    configure_logging(settings.logging.level)
    app = create_app_from_settings(settings)
    # The stdlib loop: uvloop spawns subprocesses several times slower and stalls the loop doing it.
    # proxy_headers off: the peer address is the socket's, never X-Forwarded-For.
    uvicorn.run(
        app,
        host=settings.server.http.host,
        port=settings.server.http.port,
        loop="asyncio",
        proxy_headers=False,
        server_header=False,
        date_header=True,
        log_config=None,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
