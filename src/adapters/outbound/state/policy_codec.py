"""Stored policies as JSON, the one stored form for every persistent policy store (SQLite, Redis): msgspec over
StoredPolicy. The definition is the policy's contract shape, the owner its fields (name, role, prefixes, origin);
floats come back bit for bit, and fields a later version adds are ignored by this one. A status note is a JSON
object."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import msgspec
from zfsapi.application.policy_state import StoredPolicy

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(StoredPolicy)
_note_decoder = msgspec.json.Decoder(dict[str, Any])


def encode_policy(stored: StoredPolicy) -> bytes:
    # a definition may be any Mapping; msgspec writes dicts
    return _encoder.encode(replace(stored, definition=dict(stored.definition)))


def decode_policy(raw: bytes | str) -> StoredPolicy:
    """A new StoredPolicy with a definition of its own (a dict no other reader shares)."""
    return _decoder.decode(raw)


def encode_note(value: Mapping[str, Any]) -> bytes:
    return _encoder.encode(dict(value))


def decode_note(raw: bytes | str) -> dict[str, Any]:
    return _note_decoder.decode(raw)
