"""Policies created over the API and their ledger in Redis, shared by every worker and server using it, so that
each (policy, slot) runs once across them.

Keys: `zfsapi:policy:<name>` a hash of the codec's JSON (`record`) and the revision (`revision`, decimal);
`zfsapi:policies` the names (a sorted set, every score 0: name order); `zfsapi:policy-slots:<policy>` a hash of
slot key -> last slot (the keys "<policy>:..." of one policy together, so forgetting a policy needs no SCAN);
`zfsapi:policy-notes:<policy>` a hash of field -> JSON. Every change that reads first is one Lua script, so it
is atomic across servers; no script decodes or re-encodes a record (Lua's cjson would round floats)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import redis.asyncio as aioredis
from zfsapi.application.policy_state import PolicyLedger, PolicyStore, StoredPolicy
from zfsapi.domain.errors import AlreadyExists

from ..policy_codec import decode_note, decode_policy, encode_note, encode_policy
from .client import PREFIX, guarded

SERVICE = "policy store"
NAMES = PREFIX + "policies"

# KEYS: the policy, the names; ARGV: record, revision, name. 1: added, 0: the name is taken.
_ADD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'record', ARGV[1], 'revision', ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[3])
return 1
"""
# KEYS: the policy; ARGV: record, the revision expected, the new revision. 1: replaced, 0: gone or moved on.
_REPLACE = """
if redis.call('HGET', KEYS[1], 'revision') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'record', ARGV[1], 'revision', ARGV[3])
return 1
"""
# KEYS: the policy's slots; ARGV: slot key, slot. 1: claimed. Compared byte by byte, as Python and SQLite
# compare these strings: Lua's own < follows the server's locale (strcoll).
_CLAIM = """
local last = redis.call('HGET', KEYS[1], ARGV[1])
if last then
  local slot = ARGV[2]
  local later = #slot > #last
  for i = 1, math.min(#slot, #last) do
    local a, b = string.byte(slot, i), string.byte(last, i)
    if a ~= b then later = a > b; break end
  end
  if not later then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


def _key(name: str) -> str:
    return PREFIX + "policy:" + name


def _slots(policy: str) -> str:
    return PREFIX + "policy-slots:" + policy


def _notes(policy: str) -> str:
    return PREFIX + "policy-notes:" + policy


def slot_policy(key: str) -> str:
    """The policy a slot key belongs to: the part before the first ':' (a policy name has none)."""
    return key.partition(":")[0]


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class RedisPolicyStore(PolicyStore, PolicyLedger):
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._add = client.register_script(_ADD)
        self._replace = client.register_script(_REPLACE)
        self._claim = client.register_script(_CLAIM)

    # ---- policies ----
    async def all(self) -> list[StoredPolicy]:
        async def read() -> list[Any]:
            names = [_text(n) for n in await self._client.zrange(NAMES, 0, -1)]
            if not names:
                return []
            pipe = self._client.pipeline(transaction=False)
            for name in names:
                pipe.hget(_key(name), "record")
            return list(await pipe.execute())
        return [decode_policy(raw) for raw in await guarded(read(), SERVICE) if raw is not None]

    async def get(self, name: str) -> StoredPolicy | None:
        raw = await guarded(self._client.hget(_key(name), "record"), SERVICE)
        return None if raw is None else decode_policy(raw)

    async def add(self, stored: StoredPolicy) -> None:
        added = await guarded(self._add(keys=[_key(stored.name), NAMES],
                                        args=[encode_policy(stored), str(stored.revision), stored.name]), SERVICE)
        if not added:
            raise AlreadyExists("policy", stored.name)

    async def replace(self, stored: StoredPolicy, *, revision: int) -> StoredPolicy | None:
        raw = encode_policy(replace(stored, revision=revision + 1))
        replaced = await guarded(self._replace(keys=[_key(stored.name)],
                                               args=[raw, str(revision), str(revision + 1)]), SERVICE)
        return decode_policy(raw) if replaced else None

    async def remove(self, name: str) -> bool:
        async def remove() -> Any:
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(_key(name))
            pipe.zrem(NAMES, name)
            return await pipe.execute()
        deleted, _ = await guarded(remove(), SERVICE)
        return bool(deleted)

    # ---- ledger ----
    async def claim_slot(self, key: str, slot: str) -> bool:
        return bool(await guarded(self._claim(keys=[_slots(slot_policy(key))], args=[key, slot]), SERVICE))

    async def last_slot(self, key: str) -> str | None:
        raw = await guarded(self._client.hget(_slots(slot_policy(key)), key), SERVICE)
        return None if raw is None else _text(raw)

    async def note(self, policy: str, field: str, value: Mapping[str, Any]) -> None:
        await guarded(self._client.hset(_notes(policy), field, encode_note(value)), SERVICE)

    async def notes(self, policy: str) -> dict[str, dict[str, Any]]:
        raw = await guarded(self._client.hgetall(_notes(policy)), SERVICE)
        return {_text(field): decode_note(value) for field, value in sorted(raw.items())}

    async def forget(self, policy: str) -> None:
        await guarded(self._client.delete(_notes(policy), _slots(policy)), SERVICE)
