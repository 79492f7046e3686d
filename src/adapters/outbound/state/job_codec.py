"""Job records as JSON, the one stored form for every persistent job store: msgspec over the domain's dataclasses.
msgspec writes floats shortest-round-trip, so created_at, leases and rates come back bit for bit; states are their
values, tuples are arrays; fields a later version adds are ignored by this one."""

from __future__ import annotations

import msgspec
from zfsapi.domain.jobs import Job

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Job)


def encode_job(job: Job) -> bytes:
    return _encoder.encode(job)


def decode_job(raw: bytes | str) -> Job:
    return _decoder.decode(raw)
