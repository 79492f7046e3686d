"""What a send will be, as this host will run it."""

from __future__ import annotations

from zfsapi.domain.transfer import SendSpec

from .ports import Transfers


async def plan_send(transfers: Transfers, spec: SendSpec) -> SendSpec:
    """The send as it will run: raw (-w) for encrypted datasets, so their data leaves as stored, never decrypted."""
    if not spec.raw and await transfers.is_encrypted(spec.snapshot.dataset):
        return spec.with_raw(True)
    return spec
