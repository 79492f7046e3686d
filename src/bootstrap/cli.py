"""The `zfsapi` command: serve, check-config, call (a JSON-RPC client), migrate, jobs list|get|cancel|watch,
policy list|get|preview|run, login, logout, hash-password, user add|list|remove|passwd|set-role. Every command
answers --version."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import stat
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

import msgspec

from zfsapi import __version__
from zfsapi.adapters.inbound.cli.client import DEFAULT_URL
from zfsapi.domain.jobs import JobState

from .settings import Settings, SettingsError, load_settings
from .users_cli import ROLES

if TYPE_CHECKING:
    import uvicorn

    from .service import Reloader

PROFILES = ["rfc9106-low-memory", "owasp-minimum"]
DETACH_HELP = "Ctrl-C leaves the job running and prints its id"
CONFIG_HELP = "config.yaml (default: $ZFSAPI_CONFIG, else ./config.yaml, else /etc/zfsapi/config.yaml)"


def _command(sub: Any, name: str, help: str, **options: Any) -> argparse.ArgumentParser:
    """A subcommand that also answers --version (`options`: more of argparse's parser options)."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help, **options)
    parser.add_argument("--version", action="version", version=f"zfsapi {__version__}")
    return parser


class _ServeVersion(argparse._VersionAction):
    """serve's --version: after --simulate, it says the ZFS is simulated."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        simulated = " (simulated ZFS)" if getattr(namespace, "simulate", False) else ""
        print(f"zfsapi {__version__}{simulated}")
        parser.exit()


def _client_command(sub: Any, name: str, help: str, **options: Any) -> argparse.ArgumentParser:
    """A command that calls a server: --url, --config (for the default URL), --token or --user."""
    parser = _command(sub, name, help, **options)
    _client_options(parser)
    return parser


def _client_options(parser: argparse.ArgumentParser, *, inherited: bool = False) -> None:
    """--url, --config, --token, --user. `inherited`: on a subcommand of a command that takes them too (`zfsapi
    jobs --url U list` and `zfsapi jobs list --url U` both work): no defaults here, so the command's stay."""
    none: Any = argparse.SUPPRESS if inherited else None
    parser.add_argument("--url", default=none,
                        help=f"the server (default: from the config's server.http, else {DEFAULT_URL})")
    parser.add_argument("--config", default=none, help=CONFIG_HELP + " (read for the default URL)")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--token", default=none if inherited else os.environ.get("ZFSAPI_TOKEN"),
                     help="a bearer token (default $ZFSAPI_TOKEN)")
    who.add_argument("--user", default=none, help="log in as this user (password from $ZFSAPI_PASSWORD, else asked)")


def method_summaries() -> list[tuple[str, str]]:
    """(name, summary) of every method this version serves, from the same registry as the server's."""
    from .containers import build_container

    registry = build_container(load_settings(environ={})).registry()
    return sorted((m.name, m.summary) for m in registry)


class _MethodsHelp(argparse.Action):
    """`zfsapi call --help`: the usage, then the methods (built only when asked: it loads the whole registry)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        rows = method_summaries()
        width = max(len(name) for name, _ in rows)
        parser.epilog = "methods:\n" + "\n".join(f"  {name.ljust(width)}  {summary}" for name, summary in rows)
        parser.print_help()
        parser.exit()


def completion_script(shell: str) -> str:
    """The completion script of `shell` for this parser (shtab), `zfsapi call <TAB>` offering the method names."""
    import shtab

    parser = build_parser()
    names = " ".join(name for name, _ in method_summaries())
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    method = next(a for a in subcommands.choices["call"]._actions if a.dest == "method")
    setattr(method, "complete", {"bash": "_zfsapi_methods", "zsh": f"({names})"})  # shtab reads it
    preamble: Any = {"bash": f'_zfsapi_methods() {{ compgen -W "{names}" -- "$1"; }}'}  # typed str, takes a dict
    return str(shtab.complete(parser, shell, preamble=preamble))


def _serve_command(sub: Any) -> None:
    """`zfsapi serve`, whose --version says when the ZFS is simulated."""
    serve_help = "run the HTTP server (SIGHUP reloads users, roles, scopes and limits)"
    serve = sub.add_parser("serve", help=serve_help, description=serve_help)
    serve.add_argument("--version", action=_ServeVersion, version=f"zfsapi {__version__}")
    serve.add_argument("--config", help=CONFIG_HELP + ", else built-in defaults")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8545; 0: any free port, logged)")
    serve.add_argument("--simulate", action="store_true", help="serve a simulated ZFS in memory (pools tank and "
                       "backup, lost at exit; state in a temporary directory), for trying zfsapi without ZFS")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zfsapi", description="ZFS management server (JSON-RPC 2.0 over HTTP)")
    parser.add_argument("--version", action="version", version=f"zfsapi {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_command(sub)
    _command(sub, "check-config", "validate the configuration and exit").add_argument("--config", help=CONFIG_HELP)
    hp = _command(sub, "hash-password", "print an Argon2id hash of a password (read without echo or from stdin)")
    hp.add_argument("--profile", choices=PROFILES, default=PROFILES[0])
    call = _client_command(sub, "call", "call one JSON-RPC method and print its result as JSON", add_help=False,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    # its own -h: the usage and every method with its summary
    call.add_argument("-h", "--help", action=_MethodsHelp, nargs=0, help="show this help and the methods")
    call.add_argument("method", help="the method (see the list below)")
    call.add_argument("params", nargs="*", default=[], help="optional: key=value (values read as JSON when they parse), or "
                                                "one JSON object or array")
    migrate = _client_command(sub, "migrate", "replicate a snapshot or dataset (migration_create) and follow the "
                                              "job with a progress display; Ctrl-C cancels it")
    migrate.add_argument("source", help="pool/ds@snap, or a dataset (a snapshot is taken now)")
    migrate.add_argument("destination", help="the dataset to receive into")
    migrate.add_argument("--remote", help="a remote of replication.remotes by name (or its url / user@host)")
    migrate.add_argument("--limit", type=float, metavar="MBPS", help="at most this many MB/s on the wire")
    migrate.add_argument("--compression", choices=["zstd", "gzip", "lz4"], help="on the wire to a remote")
    migrate.add_argument("--recursive", action="store_true", help="send the children too (zfs send -R)")
    migrate.add_argument("--no-sync", dest="sync", action="store_false",
                         help="no holds and bookmark for the next incremental")
    migrate.add_argument("--detach", action="store_true", help=DETACH_HELP)
    for name, help in (("login", "log in and save the token for the server (password asked, or one line of "
                                 "stdin); later commands use it until it expires"),
                       ("logout", "revoke the saved token on the server and forget it")):
        command = _command(sub, name, help)
        command.add_argument("--url", help=f"the server (default: from the config's server.http, else {DEFAULT_URL})")
        command.add_argument("--config", help=CONFIG_HELP + " (read for the default URL)")
    sub.choices["login"].add_argument("--user", required=True, help="the user to log in as")
    _jobs_parser(sub)
    _policy_parser(sub)
    completion = _command(sub, "completion", "print a shell completion script (commands, options and method "
                                             "names), e.g. `zfsapi completion bash > /etc/bash_completion.d/zfsapi`")
    completion.add_argument("shell", choices=["bash", "zsh"])
    _user_parser(sub)
    return parser


def _jobs_parser(sub: Any) -> None:
    """`zfsapi jobs [list | get ID | cancel ID | watch ID]`, the server options before or after the subcommand."""
    jobs = _client_command(sub, "jobs", "list, show, cancel or follow jobs")
    jobs_sub = jobs.add_subparsers(dest="jobs_command")
    # `zfsapi jobs` alone lists (a subcommand's own values replace these)
    jobs.set_defaults(jobs_command="list", state=None, kind=None, job_id=None, detach=False)
    listing = _command(jobs_sub, "list", "the jobs, newest first, as a table (the default)")
    listing.add_argument("--state", choices=[s.value for s in JobState])
    listing.add_argument("--kind", help="the method that started them, e.g. migration_create")
    _output_option(listing)
    _client_options(listing, inherited=True)
    for name, help in (("get", "one job's record as JSON"), ("cancel", "cancel a job"),
                       ("watch", "follow a job with a progress display until it ends; Ctrl-C cancels it")):
        command = _command(jobs_sub, name, help)
        command.add_argument("job_id")
        _client_options(command, inherited=True)
    jobs_sub.choices["watch"].add_argument("--detach", action="store_true", help=DETACH_HELP)


def _user_parser(sub: Any) -> None:
    """`zfsapi user add|list|remove|passwd|set-role`: the config file's users, edited in place."""
    user = _command(sub, "user", "manage users in the config file (a running server applies it on SIGHUP)")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = _command(user_sub, "add", "add or replace a user (password read without echo or from stdin)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="readonly")
    add.add_argument("--dataset", action="append", default=[], help="a dataset prefix the user may touch (repeat)")
    add.add_argument("--profile", choices=PROFILES, default=PROFILES[0])
    _command(user_sub, "list", "list the users, their roles and dataset prefixes")
    _command(user_sub, "remove", "remove a user").add_argument("name")
    passwd = _command(user_sub, "passwd", "set a user's password (read without echo or from stdin)")
    passwd.add_argument("name")
    passwd.add_argument("--profile", choices=PROFILES, default=PROFILES[0])
    role = _command(user_sub, "set-role", "change a user's role (and dataset prefixes when given)")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)
    scope = role.add_mutually_exclusive_group()
    scope.add_argument("--dataset", action="append", help="the dataset prefixes the user may touch (repeat)")
    scope.add_argument("--all-datasets", action="store_true", help="no dataset restriction")
    for command in (add, *user_sub.choices.values()):
        if not any(a.dest == "config" for a in command._actions):
            command.add_argument("--config", help=CONFIG_HELP + " (to edit)")


def _output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table",
                        help="a table for people (default) or the server's answer as JSON for programs")


def _policy_parser(sub: Any) -> None:
    """`zfsapi policy list|get|preview|run`."""
    policy = _command(sub, "policy", "list, show, preview or run the snapshot, retention and replication policies")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    listing = _client_command(policy_sub, "list", "the policies as a table: name, source, enabled, datasets, next "
                                                  "snapshot")
    get = _client_command(policy_sub, "get", "one policy with its last runs and its targets' status")
    get.add_argument("name")
    get.add_argument("--json", dest="as_json", action="store_true", help="the result as JSON (= --output json)")
    preview = _client_command(policy_sub, "preview", "what a prune would keep and destroy (nothing is destroyed)")
    preview.add_argument("name")
    preview.add_argument("--at", help="as of this ISO 8601 time (default: now)")
    for command in (listing, get, preview):
        _output_option(command)
    run = _client_command(policy_sub, "run", "run one step of a policy now, outside its schedule")
    run.add_argument("name")
    run.add_argument("--step", required=True, choices=["snapshot", "replicate", "prune"])
    run.add_argument("--target", help="with --step replicate: this target only (default: every target)")
    run.add_argument("--wait", action="store_true", help="follow the job with a progress display; Ctrl-C "
                                                         "cancels it")
    run.add_argument("--detach", action="store_true", help="with --wait: " + DETACH_HELP)


def main(argv: list[str] | None = None) -> int:
    """The command's exit code. Output cut short by the reader (`zfsapi call rpc.discover | head -1`) ends
    quietly with 141, as a program stopped by SIGPIPE does."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit, where a closed pipe would be "Exception ignored" and exit 120
        return code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)  # what is still buffered for stdout goes nowhere at exit
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "hash-password":
        from .users_cli import hash_password

        print(hash_password(args.profile))
        return 0
    if args.command == "user":
        return _user_command(args)
    if args.command == "completion":
        print(completion_script(args.shell))
        return 0
    if args.command in ("call", "migrate", "jobs", "policy", "login", "logout"):
        return _client(args)

    http = {k: v for k, v in (("host", getattr(args, "host", None)), ("port", getattr(args, "port", None)))
            if v is not None}
    overrides: dict[str, Any] | None = {"server": {"http": http}} if http else None
    from .simulate import simulated_overrides, with_starting_user

    simulated = getattr(args, "simulate", False)
    if simulated:  # only ever asked for (see simulate.py)
        overrides = simulated_overrides(overrides)

    def load(path: str | None) -> Settings:
        loaded = load_settings(path, overrides=overrides)
        return with_starting_user(loaded) if simulated else loaded

    path = find_config(args.config, os.environ)
    try:
        settings = load(path)
    except SettingsError as exc:
        print(f"zfsapi: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        for notice in settings.notices:
            print(f"zfsapi: {notice}", file=sys.stderr)
        problem = state_dir_problem(settings)
        if problem is not None:
            print(f"zfsapi: config key state_dir: {problem}", file=sys.stderr)
            return 2
        print(f"configuration ok ({settings.source or 'built-in defaults'})")
        return 0
    # a reload finds the config file as this start did (one may have been written since: `zfsapi user add`)
    return serve_forever(settings, lambda: load(find_config(args.config, os.environ)), simulated=simulated)


def _user_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import users_cli as u

    config = Path(find_config(args.config, os.environ) or "config.yaml")
    if args.user_command == "add":
        u.add_user(config, args.name, args.role, args.dataset, args.profile)
    elif args.user_command == "list":
        u.list_users(config)
    elif args.user_command == "remove":
        u.remove_user(config, args.name)
    elif args.user_command == "passwd":
        u.set_password(config, args.name, args.profile)
    else:
        u.set_role(config, args.name, args.role, [] if args.all_datasets else args.dataset)
    return 0


def url_from(settings: Settings) -> str:
    """The server's own address from its config (a wildcard bind is reached over loopback)."""
    host = settings.server.http.host
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.server.http.port}"


def _client(args: argparse.Namespace) -> int:
    """`call`, `migrate`, `jobs` and `policy`: the URL found here, the command run by
    zfsapi.adapters.inbound.cli."""
    from zfsapi.adapters.inbound.cli import client as c
    from zfsapi.adapters.inbound.cli.saved_tokens import SavedTokens

    url = args.url
    if url is None:
        path = find_config(args.config, os.environ)
        try:
            url = url_from(load_settings(path)) if path else DEFAULT_URL
        except SettingsError as exc:
            if args.config:  # asked for: its problem is the answer
                print(f"zfsapi: {exc}", file=sys.stderr)
                return 2
            url = DEFAULT_URL  # a config found by default but unreadable (e.g. /etc, not root): the default
    problem = url_problem(url)
    if problem is not None:  # bad usage (2), not a server out of reach (3)
        print(f"zfsapi: --url {url!r}: {problem}", file=sys.stderr)
        return 2
    if args.command in ("login", "logout"):
        from zfsapi.adapters.inbound.cli import login

        tokens = SavedTokens()
        return login.run_login(url, args.user, tokens) if args.command == "login" else login.run_logout(url, tokens)
    # the token: --token, else $ZFSAPI_TOKEN (its default), else the one `zfsapi login` saved for this server
    token = args.token
    if token is None and args.user is None:
        saved = SavedTokens().get(url)
        token = saved.token if saved else None
    session = c.Session(url, token, args.user)
    if args.command == "call":
        return c.run_call(session, args.method, args.params)
    if args.command == "policy":
        from zfsapi.adapters.inbound.cli.policies import PolicyRequest, run_policy

        return run_policy(session, PolicyRequest(
            args.policy_command, getattr(args, "name", None), at=getattr(args, "at", None),
            step=getattr(args, "step", None), target=getattr(args, "target", None),
            wait=getattr(args, "wait", False), detach=getattr(args, "detach", False),
            as_json=getattr(args, "as_json", False) or getattr(args, "output", "table") == "json"))
    if args.command == "jobs":
        return c.run_jobs(session, args.jobs_command, args.job_id, state=args.state, kind=args.kind,
                          detach=args.detach, as_json=getattr(args, "output", "table") == "json")
    params: dict[str, Any] = {"source": args.source, "destination": args.destination, "recursive": args.recursive,
              "sync": args.sync}
    if args.limit is not None:
        params["limit"] = int(args.limit) if args.limit.is_integer() else args.limit
    params |= {k: getattr(args, k) for k in ("remote", "compression") if getattr(args, k) is not None}
    return c.run_migrate(session, params, detach=args.detach)


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a zfsapi server's address (http or https, a host, a port if any in range); None when
    it can."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host"
    if port == 0:
        return "port 0 is not a server's port"
    return None


def state_dir_problem(settings: Settings) -> str | None:
    """Why the server could not keep its state (the job store and policies without Redis; the signing key and
    revocations when tokens outlive the process) in state_dir, if it needs to; None when it can. Nothing is
    created: the nearest existing ancestor must be a writable directory."""
    from .security import tokens_outlive_the_process

    if settings.redis.host and not tokens_outlive_the_process(settings):
        return None  # nothing to keep here: jobs in Redis, no users and no configured key
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


def serve_forever(settings: Settings, reload: Callable[[], Settings], *, simulated: bool = False) -> int:
    """Serve until SIGTERM/SIGINT; `reload` reads the configuration again (SIGHUP). `simulated`: over the
    simulated ZFS (simulate.py), said on every log line."""
    from .containers import build_container
    from .lifecycle import serving_app
    from .logs import configure_logging
    from .security import socket_group
    from .service import Reloader

    from zfsapi.adapters.outbound.auth.secret import SecretError

    from . import simulate

    configure_logging(settings.logging, simulated=simulated)
    log = logging.getLogger("zfsapi")
    log.info("configuration", extra={"config": settings.source or "built-in defaults"})
    if simulated:
        log.warning(simulate.warning(settings))
    elif missing := simulate.missing_binaries(settings):
        log.warning(f"no {' and no '.join(missing)} found: every ZFS call fails until installed; "
                    "`zfsapi serve --simulate` serves a simulated ZFS instead", extra={"missing": missing})
    for notice in settings.notices:
        log.warning(notice)
    problem = state_dir_problem(settings)
    if problem is not None:  # refused at once, rather than a job store failing on every tick
        print(f"zfsapi: config key state_dir: {problem}", file=sys.stderr)
        return 2
    workers = settings.server.http.workers
    try:
        container = build_container(settings)
        if simulated:
            simulate.simulate(container)
        app = serving_app(container, settings)  # also checks the signing key before any worker starts
        gid = socket_group(settings)
    except (SecretError, SettingsError) as exc:
        print(f"zfsapi: {exc}", file=sys.stderr)
        return 2
    if workers > 1:
        # each worker process builds its own app from the same settings (passed through the environment)
        os.environ["ZFSAPI_SETTINGS_JSON"] = msgspec.json.encode(settings).decode()
    config = _uvicorn_config(settings, app)
    unix = settings.server.unix
    try:
        sockets = [config.bind_socket()]
        if unix.path:
            sockets.append(bind_unix_socket(unix.path, unix.mode, gid))
        for sock in sockets:  # listening from here on: a client that comes before uvicorn serves waits, not refused
            sock.listen(config.backlog)
    except OSError as exc:
        print(f"zfsapi: cannot listen: {exc}", file=sys.stderr)
        return 2
    host, port = sockets[0].getsockname()[:2]  # the port chosen, with --port 0
    log.info("listening", extra={"url": f"http://{host}:{port}", "unix": unix.path})
    try:
        _run(config, sockets, Reloader(container, reload))
    finally:
        if unix.path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(unix.path)
    return 0


def _uvicorn_config(settings: Settings, app: Any) -> uvicorn.Config:
    """One process serving `app`, or (server.http.workers > 1) workers each building theirs (asgi.py)."""
    import uvicorn

    from zfsapi.adapters.inbound.http.peer import PeerAwareHttpTools

    workers = settings.server.http.workers
    # The stdlib loop: uvloop spawns subprocesses several times slower and stalls the loop doing it.
    # proxy_headers off: the peer address is the socket's, never X-Forwarded-For.
    return uvicorn.Config(
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


def _run(config: uvicorn.Config, sockets: list[socket.socket], reloader: Reloader) -> None:
    """Serve on the listening `sockets` until told to stop: workers under a supervisor (each reads the config
    file again on SIGHUP), or this process (`reloader` applies SIGHUP)."""
    from .lifecycle import Supervisor
    from .service import Server, notify, watchdog_interval

    if config.workers > 1:
        # the supervisor forwards SIGHUP to every worker, which reads the config file again (asgi.py)
        notify("READY=1")
        interval = watchdog_interval()
        if interval is not None:
            threading.Thread(target=_ping_forever, args=(interval,), daemon=True).start()
        Supervisor(config, sockets=sockets).run()
    else:
        # uvicorn re-raises SIGTERM after its graceful shutdown; as an exception it lets `finally` tidy up
        signal.signal(signal.SIGTERM, _exit_on_signal)
        # SIGHUP held (not lost, never fatal) until the server's startup installs the reload and unblocks it: one
        # sent while the app is still starting (its job runner, scheduler, health checks) is applied then
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
        Server(config, reloader).run(sockets=sockets)


def _ping_forever(interval: float) -> None:
    from .service import notify

    while notify("WATCHDOG=1"):
        time.sleep(interval)


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
