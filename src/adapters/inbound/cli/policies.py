"""`zfsapi policy ...`: the policies of a server, over the wire methods policy_list, policy_get, policy_preview
and policy_run.

- `policy list`: a table (name, source, enabled, datasets, next snapshot).
- `policy get NAME [--json]`: the policy and its status, readable (or the result as JSON).
- `policy preview NAME [--at ISO]`: what a prune would do then (dataset, snapshot, created, keep/destroy,
  reasons), destroying nothing.
- `policy run NAME --step snapshot|replicate|prune [--target T] [--wait [--detach]]`: the job's id, or with
  --wait the job followed with the progress display (Ctrl-C cancels it unless --detach), exit codes as
  `zfsapi jobs watch`."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from zfsapi.protocol.blocking import BlockingClient

from .client import Session, follow_job

STEPS = ("snapshot", "replicate", "prune")


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    """One `zfsapi policy` command as parsed: `action` is list, get, preview or run."""

    action: str
    name: str | None = None
    at: str | None = None
    step: str | None = None
    target: str | None = None
    wait: bool = False
    detach: bool = False
    as_json: bool = False


def run_policy(session: Session, request: PolicyRequest) -> int:
    """The command against the session's server (bad usage: exit 2 before any call)."""
    problem = check_request(request)
    if problem is not None:
        print(f"zfsapi: {problem}", file=sys.stderr)
        return 2
    return session.run(lambda client: policy_work(client, request))


def check_request(request: PolicyRequest) -> str | None:
    """What is wrong with the command line, naming the option; None when nothing is."""
    if request.action not in ("list", "get", "preview", "run"):
        return f"unknown policy command {request.action!r}"
    if request.action != "list" and not request.name:
        return "NAME: the policy's name is required"
    if request.at is not None:
        try:
            datetime.fromisoformat(request.at.replace("Z", "+00:00"))
        except ValueError:
            return f"--at: {request.at!r} is not an ISO 8601 time (e.g. 2026-06-01T10:00:00Z)"
    if request.action == "run" and request.step not in STEPS:
        return f"--step: one of {', '.join(STEPS)}"
    if request.target is not None and request.step != "replicate":
        return "--target: only with --step replicate"
    return None


def policy_work(client: BlockingClient, request: PolicyRequest) -> int:
    """Run the command with `client`; its exit code."""
    if request.action == "list":
        listed = client.call("policy_list", {})
        if request.as_json:
            _print_json(listed)
        else:
            print(policy_table(listed["policies"]))
        return 0
    assert request.name is not None
    if request.action == "get":
        record = client.call("policy_get", {"name": request.name})
        if request.as_json:
            _print_json(record)
        else:
            print(policy_text(record))
        return 0
    if request.action == "preview":
        params: dict[str, Any] = {"name": request.name}
        if request.at is not None:
            params["at"] = request.at
        preview = client.call("policy_preview", params)
        if request.as_json:
            _print_json(preview)
        else:
            print(preview_table(preview["datasets"]))
        return 0
    started = client.call("policy_run", {"name": request.name, "step": request.step, "target": request.target})
    job_id = started["job_id"]
    if not request.wait:
        _print_json(started)
        return 0
    print(f"zfsapi: policy {request.name} {request.step} is job {job_id}", file=sys.stderr)
    label = f"policy {request.name}: {request.step}" + (f" to {request.target}" if request.target else "")
    return follow_job(client, job_id, label, cancel_on_interrupt=not request.detach)


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    print()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value) or "-"
    return str(value)


def table(rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last column unpadded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1]).rstrip()
                     for row in rows)


def policy_table(policies: list[dict[str, Any]]) -> str:
    """One line per policy under a header: name, source, enabled, datasets, next snapshot."""
    rows = [("NAME", "SOURCE", "ENABLED", "DATASETS", "NEXT SNAPSHOT")]
    rows += [(p["name"], p["source"], _cell(p["enabled"]), _cell(p["datasets"]),
              _cell((p.get("next_runs") or {}).get("snapshot"))) for p in policies]
    return table(rows)


def preview_table(datasets: list[dict[str, Any]]) -> str:
    """One line per snapshot under a header: dataset, snapshot, created, keep/destroy, reasons."""
    rows = [("DATASET", "SNAPSHOT", "CREATED", "ACTION", "REASONS")]
    for entry in datasets:
        for snap in entry["snapshots"]:
            rows.append((entry["dataset"], snap["snapshot"], _cell(snap["created"]), snap["action"],
                         "; ".join(snap["reasons"]) or "-"))
    return table(rows)


def policy_text(record: dict[str, Any]) -> str:
    """policy_get's answer for reading: the definition, then its last runs and targets."""
    snapshot = record.get("snapshot") or {}
    out = [f"policy {record['name']} ({record.get('source', '-')}, "
           f"{'enabled' if record.get('enabled', True) else 'disabled'})",
           f"  datasets:  {_cell(record.get('datasets'))}",
           f"  snapshot:  {_cell(snapshot.get('schedule'))} ({snapshot.get('timezone', 'UTC')}), prefix "
           f"{_cell(snapshot.get('prefix'))}"]
    retention = record.get("retention")
    out.append("  retention: " + (", ".join(f"{k} {v}" for k, v in retention.items() if v) if retention
                                 else "none (never prunes)"))
    status_of = record.get("status") or {}  # policy_get: the policy, and its status {last, targets}
    for step, last in sorted((status_of.get("last") or {}).items()):
        out.append(f"  last {step}: {_cell(last.get('state'))} at {_cell(last.get('finished_at'))} "
                   f"(job {_cell(last.get('job_id'))})")
    targets = status_of.get("targets") or {}
    for name, target in (record.get("replicate") or {}).items():
        status = targets.get(name) or {}
        out.append(f"  target {name}: {target.get('remote')}:{target.get('destination')}, schedule "
                   f"{_cell(target.get('schedule'))}; last success {_cell(status.get('last_success'))}, lag "
                   f"{_cell(status.get('lag_seconds'))} s, base {_cell(status.get('base_snapshot'))}")
    return "\n".join(out)
