"""Async runner for zfs/zpool: argv only, bounded concurrency, timeouts, the child killed on cancellation."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

from zfsapi.adapters.metrics import Metrics
from zfsapi.domain.errors import ZfsCommandFailed, ZfsUnavailable


@dataclass(frozen=True, slots=True)
class Completed:
    argv: list[str]
    exit_code: int
    stdout: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class ZfsExecutor:
    """Runs `zfs`/`zpool` argv lists (never a shell) with the C locale, so messages are stable to classify.

    Spawning uses the stdlib event loop (uvloop spawns several times slower and stalls the loop while doing so).
    """

    def __init__(
        self,
        *,
        zfs: str = "zfs",
        zpool: str = "zpool",
        timeout: float = 300.0,
        max_concurrency: int = 32,
        metrics: Metrics | None = None,
    ) -> None:
        self._binaries = {"zfs": zfs, "zpool": zpool}
        self._timeout = timeout
        self._slots = asyncio.Semaphore(max_concurrency)
        self._metrics = metrics
        self._env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LC_ALL": "C",
            "LANG": "C",
            "TZ": "UTC",
        }

    async def run(self, argv: list[str], *, timeout: float | None = None) -> Completed:
        """Run and collect. Raises ZfsUnavailable (binary missing or not executable), ZfsCommandFailed (timeout).

        A non-zero exit is returned, not raised: the caller classifies it with what it knows of the request.
        """
        binary, verb = argv[0], argv[1] if len(argv) > 1 else ""
        exe = [self._binaries[binary], *argv[1:]]
        limit = timeout if timeout is not None else self._timeout
        started = time.perf_counter()
        outcome = "error"
        async with self._slots:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *exe,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env=self._env,
                )
            except (FileNotFoundError, PermissionError) as exc:
                self._observe(binary, verb, "unavailable", started)
                raise ZfsUnavailable(f"cannot run {exe[0]}: {exc.strerror}") from None
            try:
                async with asyncio.timeout(limit):
                    out, err = await proc.communicate()
                outcome = "ok" if proc.returncode == 0 else "failed"
            except TimeoutError:
                await _kill(proc)
                outcome = "timeout"
                raise ZfsCommandFailed(argv, -9, f"timed out after {limit:g} s and was killed") from None
            finally:
                if proc.returncode is None:  # cancelled: never leave the child behind
                    await _kill(proc)
                    outcome = "cancelled"
                self._observe(binary, verb, outcome, started)
        assert proc.returncode is not None
        return Completed(argv, proc.returncode, out, err.decode("utf-8", "replace").strip())

    def _observe(self, binary: str, verb: str, outcome: str, started: float) -> None:
        if self._metrics is not None:
            self._metrics.zfs_commands.labels(binary, verb, outcome).inc()
            self._metrics.zfs_duration.labels(binary, verb).observe(time.perf_counter() - started)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    await asyncio.shield(proc.wait())
