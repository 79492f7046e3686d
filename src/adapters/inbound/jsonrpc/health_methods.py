"""health_status: the alerts this server's health monitor holds now, as the caller may see them."""

from __future__ import annotations

from typing import Literal

from zfsapi.application.health import HealthMonitor
from zfsapi.domain.alerts import visible_to
from zfsapi.domain.authz import Action

from .method_common import iso
from .registry import CallContext, NoParams, Result, Table

HEALTH = Table()


class AlertOut(Result, frozen=True, kw_only=True):
    id: str
    kind: str
    severity: Literal["warning", "critical"]
    subject: str
    message: str
    since: str


class HealthStatusResult(Result, frozen=True, kw_only=True):
    alerts: list[AlertOut]
    checked_at: str | None


@HEALTH.method(Action.READ)
async def health_status(uc: HealthMonitor, p: NoParams, ctx: CallContext) -> HealthStatusResult:
    """The alerts holding now (pool health, capacity, scrub age, snapshot freshness, replication lag, failed
    jobs), each with when it began; a scoped caller sees those about its pools and datasets. checked_at: when
    the last round of checks ended (null before the first)."""
    alerts, checked_at = uc.status()
    who = ctx.caller
    return HealthStatusResult(
        alerts=[AlertOut(id=a.id, kind=a.finding.kind, severity=a.finding.severity, subject=a.finding.subject,
                         message=a.finding.message, since=iso(a.since))
                for a in alerts if visible_to(a, who)],
        checked_at=None if checked_at is None else iso(checked_at))
