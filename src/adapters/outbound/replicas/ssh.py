"""The replica side on an SSH host (`remote: "user@host"`): `zfs` run there by the OpenSSH client.

The client runs in BatchMode (keys only, never a prompt), started through the ZfsExecutor like every child
(argv list, no local shell). What runs remotely is one command string that the remote user's shell parses:
it is built with shlex quoting from names the domain validated, so a name is always one word there and can
never be read as an option. The destination follows `--`, and a validated Remote never starts with `-`.
"""

from __future__ import annotations

import re
import shlex
from typing import Mapping, Sequence

from zfsapi.adapters.outbound.zfs import commands, parsers
from zfsapi.adapters.outbound.zfs.executor import Completed, ZfsExecutor
from zfsapi.adapters.outbound.zfs.pipelines import COMPRESSORS, ZfsReceivePipe, start_receive
from zfsapi.adapters.outbound.zfs.policy_ops import destroy_batched
from zfsapi.application.ports import ReplicaSide
from zfsapi.domain.errors import AlreadyExists, NotFound, StateConflict, ZfsApiError, ZfsUnavailable
from zfsapi.domain.models import Snapshot
from zfsapi.domain.names import DatasetName, HoldTag, SnapshotName
from zfsapi.domain.replication import Remote, RemoteKind
from zfsapi.domain.transfer import Compression, ReceiveSpec, ResumeToken

# ssh takes the first value given for an option: BatchMode comes before the configured options (it cannot be
# turned off), these defaults after them (they can be changed).
FORCED = ["-o", "BatchMode=yes"]
DEFAULTS = ["-o", "ConnectTimeout=30", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
            "-o", "LogLevel=ERROR"]
SSH_FAILED = 255  # ssh's own exit status: no connection, authentication refused, host key mismatch
# the remote shell's word for a missing binary: sh (dash) "sh: 1: zstd: not found", bash "bash: line 1: zfs:
# command not found", zsh "zsh:1: command not found: zfs"
_MISSING = re.compile(r"^.*(?:: (?:zfs|zstd|gzip): (?:command )?not found|command not found: (?:zfs|zstd|gzip))$", re.M)
_MAX_REASON = 300


class SshReplica(ReplicaSide):
    """Datasets on `remote` (an SSH Remote), reached as `ssh [options] -- user@host 'zfs ...'`.

    `options` are extra `-o` values from the config (e.g. "StrictHostKeyChecking=accept-new"); the executor
    knows the ssh binary (`ZfsExecutor(ssh=...)`).
    """

    def __init__(self, remote: Remote, executor: ZfsExecutor, *, options: Sequence[str] = ()) -> None:
        if remote.kind is not RemoteKind.SSH:
            raise ValueError(f"not an SSH remote: {remote}")
        self._remote, self._exec = remote, executor
        self._prefix = ["ssh", "-T", "-x", "-a", *FORCED, *(a for o in options for a in ("-o", o)), *DEFAULTS,
                        "--", remote.ssh_destination]

    def argv(self, *commands_: list[str]) -> list[str]:
        """The ssh argv running `commands_` piped into each other there (each argv quoted word by word)."""
        return [*self._prefix, " | ".join(shlex.join(c) for c in commands_)]

    def failure(self, done: Completed, *, name: str, kind: str = "dataset") -> ZfsApiError:
        """The error of a failed remote command. `done.argv` is the remote zfs argv (its stderr is zfs's, and
        ssh's own on exit 255)."""
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        if done.exit_code == SSH_FAILED:
            reason = lines[-1] if lines else "exit 255"
            return ZfsUnavailable(f"ssh to {self._remote}: {reason[:_MAX_REASON]}")
        if m := _MISSING.search(done.stderr):
            return ZfsUnavailable(f"{self._remote}: {m.group(0).strip()[:_MAX_REASON]}")
        return parsers.classify(done, name=name, kind=kind)

    async def _run(self, argv: list[str]) -> Completed:
        done = await self._exec.run(self.argv(argv))
        return Completed(argv, done.exit_code, done.stdout, done.stderr)

    async def _ok(self, argv: list[str], *, name: str, kind: str = "dataset") -> Completed:
        done = await self._run(argv)
        if not done.ok:
            raise self.failure(done, name=name, kind=kind)
        return done

    async def snapshots(self, dataset: DatasetName, *, details: bool = False) -> list[Snapshot] | None:
        try:
            done = await self._ok(commands.list_snapshots(dataset, False, details=details), name=dataset.value)
        except NotFound:
            return None
        return parsers.snapshots(done, details=details)

    async def resume_token(self, dataset: DatasetName) -> ResumeToken | None:
        try:
            done = await self._ok(commands.get_value(dataset, "receive_resume_token"), name=dataset.value)
        except NotFound:
            return None
        value = done.stdout.decode().strip()
        return None if value in ("", "-") else ResumeToken.parse(value)

    async def abort_receive(self, dataset: DatasetName) -> None:
        done = await self._run(commands.receive_abort(dataset))
        if not done.ok:
            if "does not have any resumable receive state" in done.stderr:
                raise StateConflict("no partial receive to abort", dataset=dataset.value)
            raise self.failure(done, name=dataset.value)

    async def hold(self, snapshot: SnapshotName, tag: HoldTag) -> None:
        try:
            await self._ok(commands.hold(snapshot, tag, False), name=snapshot.value, kind="snapshot")
        except AlreadyExists:
            pass

    async def release(self, snapshot: SnapshotName, tag: HoldTag) -> None:
        try:
            await self._ok(commands.release(snapshot, tag, False), name=snapshot.value, kind="snapshot")
        except NotFound:
            pass

    async def destroy_snapshots(self, dataset: DatasetName, shorts: Sequence[str]) -> Mapping[str, str]:
        """`zfs destroy ds@a,b,c` there, batched and retried without the refused ones as on this host."""
        return await destroy_batched(self._run, dataset, shorts, lambda done: self.failure(done, name=dataset.value))

    async def open_receive(self, spec: ReceiveSpec, compression: Compression) -> ZfsReceivePipe:
        """Our writes -> [compressor ->] ssh -> there: [decompressor |] zfs receive."""
        receive = commands.receive(spec)
        remote = [COMPRESSORS[compression][1], receive] if compression is not Compression.NONE else [receive]
        target = spec.target.value

        def failed(done: Completed) -> ZfsApiError:
            return self.failure(Completed(receive, done.exit_code, done.stdout, done.stderr), name=target)

        return await start_receive(self._exec, self.argv(*remote), target, compression, decompress=False,
                                   failed=failed)
