"""Typed errors of the domain. The root is never raised; adapters map each type to a wire code."""

from __future__ import annotations


class ZfsApiError(Exception):
    """Root of every error this package raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ZfsApiError):
    """A value broke a rule (a ZFS name, a property, a size). `param` names the offending parameter."""

    def __init__(self, param: str, reason: str) -> None:
        super().__init__(f"Invalid value for {param}: {reason}")
        self.param = param
        self.reason = reason

    def for_param(self, param: str) -> InvalidArgument:
        """The same error, attributed to the named request parameter."""
        return InvalidArgument(param, self.reason)


class NotFound(ZfsApiError):
    """A pool, dataset, snapshot, bookmark, hold, stream or file does not exist."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind.capitalize()} not found: {name}")
        self.kind = kind
        self.name = name


class AlreadyExists(ZfsApiError):
    """The object to create exists already."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind.capitalize()} already exists: {name}")
        self.kind = kind
        self.name = name


class HasDependents(ZfsApiError):
    """The object has dependents (children, clones, holds) that the operation would have to remove."""

    def __init__(self, name: str, reason: str, dependents: list[str] | None = None) -> None:
        super().__init__(f"{name} has dependents: {reason}")
        self.name = name
        self.reason = reason
        self.dependents = list(dependents or [])


class Busy(ZfsApiError):
    """The object is in use right now (mounted and open, a scrub running, a receive under way): retry later."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name} is busy: {reason}")
        self.name = name
        self.reason = reason


class StateConflict(ZfsApiError):
    """The request conflicts with the current state (e.g. a rollback would destroy newer snapshots)."""

    def __init__(self, reason: str, **details: object) -> None:
        super().__init__(f"Conflict with current state: {reason}")
        self.reason = reason
        self.details = details


class ZfsCommandFailed(ZfsApiError):
    """ZFS refused or failed in a way not classified more precisely."""

    def __init__(self, command: list[str], exit_code: int, stderr: str) -> None:
        verb = " ".join(command[:2])
        super().__init__(f"ZFS command failed: {verb}: {stderr.splitlines()[0] if stderr else f'exit {exit_code}'}")
        self.command = list(command)
        self.exit_code = exit_code
        self.stderr = stderr


class FileFailed(ZfsApiError):
    """The filesystem refused a send file (disk full, read-only, not permitted, I/O error). `param` names the
    request parameter, `path` the file as the caller named it, `reason` the operating system's words."""

    def __init__(self, param: str, path: str, operation: str, reason: str, errno_name: str | None = None) -> None:
        super().__init__(f"Cannot {operation} {path}: {reason}")
        self.param, self.path, self.operation = param, path, operation
        self.reason, self.errno_name = reason, errno_name

    def named(self, path: str) -> FileFailed:
        """The same failure, with the path as the caller named it."""
        return FileFailed(self.param, path, self.operation, self.reason, self.errno_name)


class ZfsUnavailable(ZfsApiError):
    """ZFS cannot be used here (no binary, module not loaded, not permitted, timed out)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"ZFS unavailable: {reason}")
        self.reason = reason


class PermissionDenied(ZfsApiError):
    """The caller's role or dataset scope does not allow the method on that dataset."""

    def __init__(self, method: str, dataset: str | None = None, reason: str = "not allowed") -> None:
        super().__init__(f"Permission denied: {method}" + (f" on {dataset}" if dataset else "") + f": {reason}")
        self.method = method
        self.dataset = dataset
        self.reason = reason


class InvalidCredentials(ZfsApiError):
    """Unknown user or wrong password (deliberately not saying which)."""

    def __init__(self) -> None:
        super().__init__("Invalid credentials")


class InvalidToken(ZfsApiError):
    """A bearer token that is malformed, forged, expired, revoked or names a user that no longer exists."""

    def __init__(self, reason: str) -> None:
        super().__init__("Invalid token")
        self.reason = reason  # for logs only: the client is told "Invalid token" and nothing more


class RateLimited(ZfsApiError):
    """Too many requests for this principal (or peer) in the window."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("Rate limit exceeded")
        self.retry_after = retry_after  # seconds; inf when the request can never fit the quota


class TooManyJobs(ZfsApiError):
    """The owner already has `limit` jobs queued or running (`count`): a new one waits until some end."""

    def __init__(self, owner: str, limit: int, count: int) -> None:
        super().__init__(f"Too many jobs: {owner} has {count} queued or running (at most {limit})")
        self.owner = owner
        self.limit = limit
        self.count = count


class ServiceUnavailable(ZfsApiError):
    """A backing service other than ZFS (the session store) cannot be reached."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service} unavailable: {reason}")
        self.service = service
        self.reason = reason


class ReceiveFailed(ZfsCommandFailed):
    """A zfs receive that failed or was cut off; with -s the target keeps a token to resume from."""

    def __init__(self, command: list[str], exit_code: int, stderr: str, resume_token: str | None) -> None:
        super().__init__(command, exit_code, stderr)
        self.resume_token = resume_token
