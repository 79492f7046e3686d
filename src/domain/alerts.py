"""Health alerts: what a finding is, the rules that turn observations into findings (pure functions), and the
book that turns each round of findings into the current alerts and the changes worth delivering.

A rule never reads a clock or ZFS: it is given what was observed and `now`. An alert is identified by
`kind:subject`; it keeps its `since` while its condition holds, and is gone (cleared) when a round that checked
its kind no longer finds it. Webhooks deliver changes (raised, cleared, changed), never a round as such.

Capacity hysteresis: a pool's level (warning at `warning`%, critical at `critical`%, critical "nearly full" at
`full`%) is entered at its threshold and left only once the capacity falls `HYSTERESIS` points below it, so a
pool hovering around 80 % does not raise and clear an alert on every check.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Literal, Sequence

from .authz import Principal
from .errors import InvalidArgument

Severity = Literal["warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("warning", "critical")
KINDS = ("pool_health", "pool_capacity", "scrub_age", "snapshot_freshness", "replication_lag", "job_failed")
HYSTERESIS = 5  # capacity points below a level's threshold before the level is left
_RANK = {"warning": 1, "critical": 2}

# zpool health states that are not ONLINE: DEGRADED still serves every block (a redundancy was lost); the others
# mean data is out of reach or the pool is stopped
_HEALTH_SEVERITY: dict[str, Severity] = {"DEGRADED": "warning"}


def severity_at_least(severity: str, minimum: str) -> bool:
    """Whether `severity` is `minimum` or graver."""
    return _RANK.get(severity, 0) >= _RANK.get(minimum, 0)


def check_severity(value: object, param: str = "min_severity") -> Severity:
    if value == "warning" or value == "critical":
        return value
    raise InvalidArgument(param, "must be warning or critical")


def check_kind(value: object, param: str = "kinds") -> str:
    if isinstance(value, str) and value in KINDS:
        return value
    raise InvalidArgument(param, f"{value!r} is not an alert kind ({', '.join(KINDS)})")


@dataclass(frozen=True, slots=True)
class Finding:
    """One condition found by a round of checks. `grade` orders a kind's levels (capacity 1, 2, 3; otherwise the
    severity's rank): a change of grade is delivered, a changed message alone is not. `pools` and `datasets` are
    the names a caller must see to see it (none: only unrestricted callers)."""

    kind: str
    subject: str
    severity: Severity
    message: str
    grade: int = 0
    pools: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.subject}"


@dataclass(frozen=True, slots=True)
class Alert:
    """A finding that holds, since `since` (epoch seconds: the round that first found it)."""

    finding: Finding
    since: float

    @property
    def id(self) -> str:
        return self.finding.id


ChangeKind = Literal["raised", "cleared", "changed"]


@dataclass(frozen=True, slots=True)
class AlertChange:
    """What a webhook delivers: an alert raised, cleared, or changed in grade (`previous` its severity before)."""

    change: ChangeKind
    alert: Alert
    at: float
    previous: Severity | None = None


def _grade(f: Finding) -> int:
    return f.grade or _RANK[f.severity]


class AlertBook:
    """The alerts holding now, updated by each round of checks."""

    def __init__(self, alerts: Iterable[Alert] = ()) -> None:
        self._alerts = {a.id: a for a in alerts}

    @property
    def alerts(self) -> list[Alert]:
        """The current alerts, by id."""
        return [self._alerts[k] for k in sorted(self._alerts)]

    def grade(self, alert_id: str) -> int:
        """The grade of the alert holding under `alert_id` (0: none holds): what hysteresis starts from."""
        alert = self._alerts.get(alert_id)
        return 0 if alert is None else _grade(alert.finding)

    def update(self, findings: Sequence[Finding], checked: Iterable[str], now: float) -> list[AlertChange]:
        """Apply a round: `findings` of the kinds in `checked` (the checks that ran; an alert of a kind that
        could not be checked this round is kept as it was). Returns the changes, in id order."""
        kinds = set(checked)
        found = {f.id: f for f in findings if f.kind in kinds}
        changes: list[AlertChange] = []
        for key in sorted(set(found) | {k for k, a in self._alerts.items() if a.finding.kind in kinds}):
            old, new = self._alerts.get(key), found.get(key)
            if new is None and old is not None:
                del self._alerts[key]
                changes.append(AlertChange("cleared", old, now))
            elif new is not None and old is None:
                self._alerts[key] = Alert(new, now)
                changes.append(AlertChange("raised", self._alerts[key], now))
            elif new is not None and old is not None:
                self._alerts[key] = replace(old, finding=new)
                if _grade(new) != _grade(old.finding):
                    changes.append(AlertChange("changed", self._alerts[key], now, old.finding.severity))
        return changes


# ---- the rules ---------------------------------------------------------------------------------------------------


def pool_health(pool: str, health: str) -> Finding | None:
    """A pool that is not ONLINE: DEGRADED is a warning; FAULTED, UNAVAIL, SUSPENDED, REMOVED, OFFLINE (or
    anything else zpool reports) critical."""
    state = health.strip().upper()
    if state == "ONLINE":
        return None
    severity = _HEALTH_SEVERITY.get(state, "critical")
    return Finding("pool_health", pool, severity, f"pool {pool} is {state or 'in an unknown state'}",
                   pools=(pool,))


@dataclass(frozen=True, slots=True)
class CapacityLevels:
    """Percent thresholds: warning, critical, and critical "nearly full"; each above the one before."""

    warning: int = 80
    critical: int = 90
    full: int = 95

    def __post_init__(self) -> None:
        if not 0 < self.warning < self.critical < self.full <= 100:
            raise InvalidArgument("health.capacity", "needs 0 < warning < critical < full <= 100")


def capacity_grade(capacity: int, previous: int, levels: CapacityLevels = CapacityLevels()) -> int:
    """0 (none), 1 (warning), 2 (critical), 3 (nearly full): the highest level whose threshold `capacity` reaches,
    or a level held before (`previous` >= it) while the capacity stays within HYSTERESIS points below it."""
    grade = 0
    for level, threshold in enumerate((levels.warning, levels.critical, levels.full), start=1):
        if capacity >= threshold or (previous >= level and capacity >= threshold - HYSTERESIS):
            grade = level
    return grade


def pool_capacity(pool: str, capacity: int, previous: int, levels: CapacityLevels = CapacityLevels()) -> Finding | None:
    """The capacity alert of a pool (`previous`: its grade in the last round, 0 when none)."""
    grade = capacity_grade(capacity, previous, levels)
    if grade == 0:
        return None
    what = ("is nearly full" if grade == 3 else "is filling up") + f" ({capacity}% used)"
    return Finding("pool_capacity", pool, "warning" if grade == 1 else "critical", f"pool {pool} {what}",
                   grade=grade, pools=(pool,))


def scrub_age(pool: str, last_scrub_end: float | None, now: float, max_age_days: float) -> Finding | None:
    """A pool whose last finished scrub ended more than `max_age_days` ago, or that has none on record (a warning;
    zpool status keeps only the last scan, so a resilver since hides the scrub before it)."""
    if last_scrub_end is None:
        return Finding("scrub_age", pool, "warning", f"pool {pool} has no finished scrub on record", pools=(pool,))
    days = (now - last_scrub_end) / 86400
    if days <= max_age_days:
        return None
    return Finding("scrub_age", pool, "warning",
                   f"pool {pool} was last scrubbed {days:.0f} days ago (more than {max_age_days:g})", pools=(pool,))


def overdue(last: float, now: float, slots_after_last: Sequence[float], limit: float | None) -> float | None:
    """How long past due something done at `last` is, or None when it is not: with `limit` (seconds), once
    `now - last` exceeds it; without, once two scheduled slots have passed since `last` and `now - last` is
    more than twice the interval between those slots (`slots_after_last`: the next two slots after `last`)."""
    age = now - last
    if limit is not None:
        return age - limit if age > limit else None
    if len(slots_after_last) < 2:
        return None
    interval = slots_after_last[1] - slots_after_last[0]
    return age - 2 * interval if now > slots_after_last[1] and age > 2 * interval else None


def _ago(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 60:.0f} minutes"


def snapshot_freshness(policy: str, newest: float | None, now: float, slots_after_newest: Sequence[float],
                       datasets: tuple[str, ...]) -> Finding | None:
    """A policy whose newest owned snapshot is older than twice its snapshot schedule's interval (critical past
    four times). A policy with no owned snapshot yet is not judged here (its failing runs are failed jobs)."""
    if newest is None or overdue(newest, now, slots_after_newest, None) is None:
        return None
    interval = slots_after_newest[1] - slots_after_newest[0]
    critical = now - newest > 4 * interval
    return Finding("snapshot_freshness", policy, "critical" if critical else "warning",
                   f"policy {policy}: newest snapshot is {_ago(now - newest)} old "
                   f"(schedule every {_ago(interval)})", datasets=datasets)


def replication_lag(policy: str, target: str, last_success: float | None, now: float,
                    slots_after_success: Sequence[float], max_lag: float | None,
                    datasets: tuple[str, ...]) -> Finding | None:
    """A policy target whose last successful replication is older than its `max_lag` (seconds) or, without one,
    than twice its schedule's interval (critical past twice that). A target that never succeeded is not judged
    here (its failing runs are failed jobs)."""
    if last_success is None or overdue(last_success, now, slots_after_success, max_lag) is None:
        return None
    limit = max_lag if max_lag is not None else 2 * (slots_after_success[1] - slots_after_success[0])
    lag = now - last_success
    return Finding("replication_lag", f"{policy}:{target}", "critical" if lag > 2 * limit else "warning",
                   f"policy {policy} target {target}: last replicated {_ago(lag)} ago (limit {_ago(limit)})",
                   datasets=datasets)


@dataclass(frozen=True, slots=True)
class FailedJob:
    job_id: str
    kind: str
    finished_at: float
    datasets: tuple[str, ...]
    error: str


def failed_jobs(jobs: Iterable[FailedJob], now: float, window: float) -> list[Finding]:
    """One warning per job kind with jobs that failed in the last `window` seconds: how many, the newest one's
    id and error. Visible to a scoped caller only when every failed job's names are within its scope."""
    by_kind: dict[str, list[FailedJob]] = {}
    for job in jobs:
        if now - window <= job.finished_at <= now:
            by_kind.setdefault(job.kind, []).append(job)
    out = []
    for kind in sorted(by_kind):
        group = sorted(by_kind[kind], key=lambda j: j.finished_at)
        newest = group[-1]
        names = tuple(sorted({n for j in group for n in j.datasets}))
        if any(not j.datasets for j in group):
            names = ()
        out.append(Finding("job_failed", kind, "warning",
                           f"{len(group)} {kind} job(s) failed in the last {_ago(window)}; newest "
                           f"{newest.job_id}: {newest.error}", datasets=names))
    return out


def visible_to(alert: Alert, who: Principal) -> bool:
    """An unrestricted caller sees every alert; a scoped one those whose pools it sees and whose datasets it
    covers, and none that names neither (e.g. jobs that record no names)."""
    f = alert.finding
    if who.unrestricted:
        return True
    if not f.pools and not f.datasets:
        return False
    return all(who.sees_pool(p) for p in f.pools) and all(who.covers(d) for d in f.datasets)
