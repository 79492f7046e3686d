"""The HTTP status of a JSON-RPC error answered on a route other than POST / (which answers every call's error
with 200, a request refused as a whole for its rate with 429). Each route keeps the statuses it has always
answered: the two tables differ, and clients rely on both."""

from __future__ import annotations

import enum
from typing import Any, Mapping

from .codes import (
    AUTH_REQUIRED,
    CONFLICT,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_TOKEN,
    NOT_FOUND,
    PERMISSION_DENIED,
    RATE_LIMITED,
    ZFS_UNAVAILABLE,
)


class Route(enum.Enum):
    STREAM = "stream"  # GET or POST /stream/{id}: the stream was not served, or the receive failed
    EVENTS = "events"  # GET /jobs/{id}/events refused before its first event


# route -> (code -> status, the status of any other code)
_STATUSES: dict[Route, tuple[dict[int, int], int]] = {
    Route.STREAM: ({NOT_FOUND: 404, CONFLICT: 409, INVALID_PARAMS: 400, PERMISSION_DENIED: 403,
                    ZFS_UNAVAILABLE: 503}, 500),
    Route.EVENTS: ({NOT_FOUND: 404, AUTH_REQUIRED: 401, INVALID_TOKEN: 401, RATE_LIMITED: 429}, 400),
}


def http_status(route: Route, code: int, data: Mapping[str, Any] | None = None) -> int:
    """The status of the error `code` (with its `data`) on `route`. On EVENTS an internal error naming the
    `service` that did not answer (the job store) is 503."""
    statuses, otherwise = _STATUSES[route]
    if code in statuses:
        return statuses[code]
    if route is Route.EVENTS and code == INTERNAL_ERROR and data and "service" in data:
        return 503
    return otherwise
