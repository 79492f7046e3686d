"""The system clock (UTC)."""

from __future__ import annotations

from datetime import datetime, timezone

from zfsapi.application.ports import Clock


class SystemClock(Clock):
    def now(self) -> datetime:
        return datetime.now(timezone.utc)
