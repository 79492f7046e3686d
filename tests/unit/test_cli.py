"""The command line through its real entry point: --version everywhere, the user commands (comments kept),
`call`'s parameters and its refusal when no server answers, and the progress display."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from argon2 import PasswordHasher

from tests.conftest import free_port
from zfsapi import __version__
from zfsapi.adapters.inbound.cli.client import parse_params
from zfsapi.adapters.inbound.cli.progress import TransferProgress
from zfsapi.bootstrap.cli import build_parser, main
from zfsapi.bootstrap.settings import load_settings

FAST = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


def zfsapi(*args: str, stdin: str = "", cwd=None, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ZFSAPI_")}
    return subprocess.run([sys.executable, "-m", "zfsapi", *args], input=stdin, text=True, capture_output=True,
                          timeout=60, cwd=cwd, env=base | (env or {}))


def commands(parser=None, prefix=()):
    """Every command path, e.g. ("user", "set-role")."""
    parser = parser or build_parser()
    for action in parser._actions:
        if action.choices and hasattr(action, "add_parser"):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from commands(sub, (*prefix, name))


def test_version_everywhere(capsys):
    paths = list(commands())
    assert ("user", "set-role") in paths and ("jobs", "watch") in paths and ("login",) in paths and len(paths) == 24
    for path in [(), *paths]:
        with pytest.raises(SystemExit) as exc:
            main([*path, "--version"])
        assert exc.value.code == 0
        assert capsys.readouterr().out == f"zfsapi {__version__}\n", path
    r = zfsapi("user", "passwd", "--version")
    assert (r.returncode, r.stdout) == (0, f"zfsapi {__version__}\n")


def test_user_commands_edit_the_config_keeping_comments(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("# production box\nauth:\n  users:\n    # the old form\n"
                      f"    old: \"{FAST.hash('old-pw')}\"\n"
                      f"    ops: {{password_hash: \"{FAST.hash('ops-pw')}\", role: operator, datasets: [tank/a]}}\n")
    r = zfsapi("user", "list", "--config", str(config))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["NAME\tROLE\tDATASETS", "old\tadmin\t(all datasets)", "ops\toperator\ttank/a"]

    r = zfsapi("user", "set-role", "old", "readonly", "--dataset", "tank/b c", "--config", str(config))
    assert r.returncode == 0, r.stderr
    r = zfsapi("user", "set-role", "ops", "admin", "--all-datasets", "--config", str(config))
    assert r.returncode == 0, r.stderr
    r = zfsapi("user", "passwd", "ops", "--profile", "owasp-minimum", "--config", str(config), stdin="new-pw\n")
    assert (r.returncode, r.stderr) == (1, "zfsapi: a password needs at least 8 characters\n")
    r = zfsapi("user", "passwd", "ops", "--profile", "owasp-minimum", "--config", str(config), stdin="new-pw-8\n")
    assert r.returncode == 0, r.stderr
    users = load_settings(config, environ={}).auth.users
    assert (users["old"].role, users["old"].datasets) == ("readonly", ["tank/b c"])
    PasswordHasher().verify(users["old"].password_hash, "old-pw")
    assert (users["ops"].role, users["ops"].datasets) == ("admin", [])
    PasswordHasher().verify(users["ops"].password_hash, "new-pw-8")

    r = zfsapi("user", "remove", "old", "--config", str(config))
    assert r.returncode == 0, r.stderr
    assert list(load_settings(config, environ={}).auth.users) == ["ops"]
    assert "# production box" in config.read_text() and "new-pw-8" not in config.read_text()

    r = zfsapi("user", "remove", "old", "--config", str(config))
    assert (r.returncode, r.stderr) == (1, f"zfsapi: no user 'old' in {config}\n")
    r = zfsapi("user", "set-role", "ops", "root", "--config", str(config))
    assert r.returncode == 2 and "invalid choice: 'root'" in r.stderr


def test_user_commands_find_the_config_like_serve(tmp_path):
    (tmp_path / "config.yaml").write_text(f"auth:\n  users:\n    a: \"{FAST.hash('pw')}\"\n")
    r = zfsapi("user", "list", cwd=tmp_path)
    assert r.stdout == "NAME\tROLE\tDATASETS\na\tadmin\t(all datasets)\n"
    other = tmp_path / "other.yaml"
    other.write_text("auth: {users: {}}\n")
    r = zfsapi("user", "list", cwd=tmp_path, env={"ZFSAPI_CONFIG": str(other)})
    assert r.stdout == f"no users in {other}\n"


def test_params_from_key_value_or_json():
    assert parse_params(["dataset=tank/a b", "recursive=true", "limit=10", "properties=[\"used\"]", "tag=x=y",
                         "empty="]) == {"dataset": "tank/a b", "recursive": True, "limit": 10,
                                        "properties": ["used"], "tag": "x=y", "empty": ""}
    assert parse_params(['{"dataset": "tank"}']) == {"dataset": "tank"}
    assert parse_params(['["tank", true]']) == ["tank", True]
    assert parse_params([]) == {}
    with pytest.raises(ValueError, match="'recursive' is not key=value"):
        parse_params(["dataset=tank", "recursive"])
    with pytest.raises(ValueError, match="params are not valid JSON"):
        parse_params(["{oops"])


def test_call_without_a_server_is_one_line(tmp_path):
    port = free_port()
    r = zfsapi("call", "--url", f"http://127.0.0.1:{port}", "pool_list", cwd=tmp_path)
    assert r.returncode == 3
    assert r.stderr.startswith(f"zfsapi: cannot reach http://127.0.0.1:{port}/: ") and r.stderr.count("\n") == 1
    assert "Connection refused" in r.stderr and r.stdout == ""
    r = zfsapi("call", "pool_list", "recursive", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (2, "zfsapi: 'recursive' is not key=value\n")


def test_progress_plain_lines_are_throttled():
    out = io.StringIO()
    with TransferProgress("send tank/a@s", out, live=False, every=3600) as p:
        p.update(0, 4 << 20)
        p.update(1 << 20, 4 << 20, rate=1 << 20, eta=3)  # within the throttle: not printed
        p.update(4 << 20, 4 << 20, rate=2 << 20)
    assert out.getvalue().splitlines() == [
        "send tank/a@s: 0 B / 4.0 MiB (0%)",
        "send tank/a@s: 4.0 MiB / 4.0 MiB (100%) at 2.0 MiB/s, done",
    ]


def test_progress_bar_on_a_terminal():
    out = io.StringIO()
    with TransferProgress("receive tank/b", out, live=True) as p:
        p.update(3 << 20, 6 << 20)
        p.finish("failed: Conflict with current state")
    text = out.getvalue()
    assert "receive tank/b" in text and "3.0/6.0 MiB" in text
    assert text.splitlines()[-1] == "receive tank/b: failed: Conflict with current state"


def test_a_bad_url_is_bad_usage_not_an_unreachable_server(tmp_path):
    for url, why in (("nonsense", "must start with http:// or https://"), ("http://", "has no host"),
                     ("http://h:99999", "Port out of range 0-65535"), ("ftp://h", "must start with http://")):
        r = zfsapi("call", "--url", url, "pool_list", cwd=tmp_path)
        assert r.returncode == 2 and r.stderr.startswith(f"zfsapi: --url {url!r}: {why}"), (url, r.stderr)


def test_jobs_takes_the_server_options_before_or_after_its_subcommand(tmp_path):
    parser = build_parser()
    for argv in (["jobs", "--url", "http://a:1", "list"], ["jobs", "list", "--url", "http://a:1"],
                 ["jobs", "--url", "http://a:1"]):
        args = parser.parse_args(argv)
        assert (args.url, args.jobs_command) == ("http://a:1", "list"), argv
    args = parser.parse_args(["jobs", "--token", "T", "get", "abc"])
    assert (args.token, args.job_id, args.url) == ("T", "abc", None)
    port = free_port()  # the README's form reaches the client (nothing listens: exit 3, one line)
    r = zfsapi("jobs", "--url", f"http://127.0.0.1:{port}", "list", cwd=tmp_path)
    assert r.returncode == 3 and r.stderr.startswith(f"zfsapi: cannot reach http://127.0.0.1:{port}/"), r.stderr


def test_output_cut_short_by_the_reader_ends_quietly(tmp_path):
    read, write = os.pipe()
    os.close(read)  # the reader has gone (`| head -1` after its line): every write gets EPIPE
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZFSAPI_")}
    r = subprocess.run([sys.executable, "-m", "zfsapi", "hash-password", "--profile", "owasp-minimum"],
                       input="a password\n", stdout=write, stderr=subprocess.PIPE, text=True, timeout=60, env=env)
    os.close(write)
    assert r.returncode == 141 and "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr


def test_call_help_lists_every_method_and_params_are_optional(tmp_path):
    from zfsapi.bootstrap.cli import method_summaries

    r = zfsapi("call", "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    listed = r.stdout.split("methods:\n", 1)[1]
    for name, summary in method_summaries():
        assert f"  {name} " in listed and summary[:40] in listed, name
    assert "pool_list" in listed and "job_wait" in listed
    r = zfsapi("call", cwd=tmp_path)
    assert r.returncode == 2 and "required: method\n" in r.stderr, r.stderr  # params are optional


def test_an_unknown_method_gets_did_you_mean(tmp_path, capsys):
    from zfsapi.adapters.inbound.cli import client as c

    class Client:
        def call(self, method, params=None):
            if method == "rpc.discover":
                return {"methods": [{"name": "pool_list"}, {"name": "pool_status"}, {"name": "job_list"}]}
            raise c.RpcError(-32601, "Method not found", {"method": method})

    class Session(c.Session):
        def run(self, work):
            try:
                return work(Client())
            except c.RpcError:
                return 1

    assert c.run_call(Session("http://x"), "pool_lst", []) == 1
    assert capsys.readouterr().err == "zfsapi: did you mean pool_list or pool_status or job_list?\n"
    assert c.run_call(Session("http://x"), "zzzz", []) == 1
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("line, offered", [("zfsapi call pool_l", "pool_list"), ("zfsapi pol", "policy"),
                                           ("zfsapi jobs wa", "watch"), ("zfsapi call --ur", "--url")])
def test_bash_completion_offers_commands_options_and_method_names(tmp_path, line, offered):
    script = tmp_path / "zfsapi.bash"
    r = zfsapi("completion", "bash", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    script.write_text(r.stdout)
    words = line.split(" ")
    probe = (f"source {script}; COMP_WORDS=({' '.join(words)}); COMP_CWORD={len(words) - 1}; "
             f"COMP_LINE='{line}'; COMP_POINT={len(line)}; _shtab_zfsapi; echo \"${{COMPREPLY[@]}}\"")
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60)
    assert offered in out.stdout.split(), (out.stdout, out.stderr)
