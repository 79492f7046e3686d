"""`zfsapi policy ...` through the real parser and dispatch (main), with the client stubbed: the list and
preview tables, get readable and as JSON, run with and without --wait (followed to success and to failure),
and bad usage refused before any call."""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from zfsapi.adapters.inbound.cli import client as cli_client
from zfsapi.bootstrap.cli import main

POLICY = {
    "name": "home", "source": "config", "enabled": True, "datasets": ["tank/home", "!tank/home/tmp"],
    "snapshot": {"schedule": "0 * * * *", "timezone": "Europe/Berlin", "prefix": "auto",
                 "recursive_atomic": True, "min_written": 0},
    "retention": {"keep_last": 3, "hourly": 24, "daily": 0, "weekly": 0, "monthly": 0, "yearly": 0},
    "replicate": {"nas2": {"remote": "nas2", "destination": "backup/home", "schedule": "after_snapshot",
                           "retention": "same_as_source", "limit": None, "compression": None}},
    "next_runs": {"snapshot": "2026-06-01T11:00:00Z", "replicate": {}},
}


def progress(done: int | None) -> dict[str, Any]:
    return {"bytes_done": done, "bytes_total": None, "rate_bytes_per_s": None, "eta_seconds": None}


class FakeClient:
    """Answers the policy methods with canned results; records every call."""

    def __init__(self, job_state: str = "succeeded") -> None:
        self.calls: list[tuple[str, Any]] = []
        self.job_state = job_state

    def call(self, method: str, params: Any = None) -> Any:
        self.calls.append((method, params))
        if method == "policy_list":
            return {"policies": [POLICY, {**POLICY, "name": "var", "source": "api", "enabled": False,
                                          "datasets": ["tank/var"], "next_runs": {"snapshot": None}}]}
        if method == "policy_get":
            return {**POLICY, "status": {  # as the server answers: the policy, and its status
                "last": {"snapshot": {"job_id": "j1", "state": "succeeded", "finished_at": "2026-06-01T10:00:04Z"}},
                "targets": {"nas2": {"last_success": "2026-06-01T10:00:09Z", "lag_seconds": 1191,
                                     "base_snapshot": "auto-20260601T100000Z"}}}}
        if method == "policy_preview":
            return {"datasets": [{"dataset": "tank/home", "snapshots": [
                {"snapshot": "auto-20260601T090000Z", "created": "2026-06-01T09:00:00Z", "action": "keep",
                 "reasons": ["hourly 2/24", "replication base for nas2"]},
                {"snapshot": "manual", "created": "2026-05-01T00:00:00Z", "action": "keep",
                 "reasons": ["not owned"]},
                {"snapshot": "auto-20260530T090000Z", "created": "2026-05-30T09:00:00Z", "action": "destroy",
                 "reasons": []}]}]}
        if method == "policy_run":
            return {"job_id": "job-7"}
        raise AssertionError(f"unexpected call {method}")

    def events(self, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        record = {"job_id": job_id, "state": "running", "progress": progress(1000), "error": None, "result": None}
        yield "progress", record
        failed = self.job_state == "failed"
        yield "end", record | {
            "state": self.job_state, "progress": progress(5000),
            "result": None if failed else {"snapshots": 3},
            "error": {"code": -32010, "message": "zfs failed", "data": None} if failed else None}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    client = FakeClient()
    monkeypatch.setattr(cli_client.Session, "run", lambda self, work: work(client))
    return client


def run(*args: str) -> int:
    return main(["policy", *args, "--url", "http://127.0.0.1:1"])


def test_list_is_a_table_with_a_header(fake: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "SOURCE", "ENABLED", "DATASETS", "NEXT", "SNAPSHOT"]
    assert lines[1].split() == ["home", "config", "yes", "tank/home,", "!tank/home/tmp", "2026-06-01T11:00:00Z"]
    assert lines[2].split() == ["var", "api", "no", "tank/var", "-"]
    assert lines[0].index("DATASETS") == lines[1].index("tank/home")  # aligned
    assert fake.calls == [("policy_list", {})]


def test_get_is_readable_or_json(fake: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("get", "home") == 0
    text = capsys.readouterr().out
    assert "policy home (config, enabled)" in text
    assert "retention: keep_last 3, hourly 24" in text
    assert "last snapshot: succeeded at 2026-06-01T10:00:04Z (job j1)" in text
    assert ("target nas2: nas2:backup/home, schedule after_snapshot; last success 2026-06-01T10:00:09Z, "
            "lag 1191 s, base auto-20260601T100000Z") in text
    assert run("get", "home", "--json") == 0
    assert json.loads(capsys.readouterr().out)["status"]["targets"]["nas2"]["lag_seconds"] == 1191
    assert run("get", "home", "--output", "json") == 0
    assert json.loads(capsys.readouterr().out)["status"]["targets"]["nas2"]["lag_seconds"] == 1191
    assert fake.calls == [("policy_get", {"name": "home"})] * 3


def test_list_and_preview_answer_json_for_programs(fake: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("list", "-o", "json") == 0
    assert [p["name"] for p in json.loads(capsys.readouterr().out)["policies"]] == ["home", "var"]
    assert run("preview", "home", "--output", "json") == 0
    assert json.loads(capsys.readouterr().out)["datasets"][0]["dataset"] == "tank/home"


def test_preview_is_a_table_of_every_snapshot(fake: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("preview", "home", "--at", "2026-06-01T10:00:00Z") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["DATASET", "SNAPSHOT", "CREATED", "ACTION", "REASONS"]
    assert lines[1].endswith("keep     hourly 2/24; replication base for nas2")
    assert lines[3].split() == ["tank/home", "auto-20260530T090000Z", "2026-05-30T09:00:00Z", "destroy", "-"]
    assert fake.calls == [("policy_preview", {"name": "home", "at": "2026-06-01T10:00:00Z"})]
    assert run("preview", "home") == 0
    assert fake.calls[-1] == ("policy_preview", {"name": "home"})


def test_run_prints_the_job_or_follows_it(fake: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("run", "home", "--step", "replicate", "--target", "nas2") == 0
    assert json.loads(capsys.readouterr().out) == {"job_id": "job-7"}
    assert fake.calls == [("policy_run", {"name": "home", "step": "replicate", "target": "nas2"})]
    assert run("run", "home", "--step", "snapshot", "--wait") == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"snapshots": 3}
    assert "policy home snapshot is job job-7" in err and "done" in err
    assert fake.calls[-1] == ("policy_run", {"name": "home", "step": "snapshot", "target": None})
    fake.job_state = "failed"
    assert run("run", "home", "--step", "prune", "--wait") == 1
    out, err = capsys.readouterr()
    assert out == "" and "zfs failed (code -32010)" in err


def test_bad_usage_is_refused_before_any_call(fake: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("preview", "home", "--at", "yesterday") == 2
    assert "--at" in capsys.readouterr().err
    assert run("run", "home", "--step", "snapshot", "--target", "nas2") == 2
    assert "--target: only with --step replicate" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run("run", "home", "--step", "destroy")
    assert exc.value.code == 2
    assert fake.calls == []
