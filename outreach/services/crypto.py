"""Keyed hashes: how refs, usernames and client addresses are kept without being kept."""

from __future__ import annotations

import hashlib
import hmac
import uuid


def keyed_hash(pepper: str, purpose: str, value: str) -> str:
    """HMAC-SHA256 of ``value`` under the pepper, separated by ``purpose``.

    The purpose prefix keeps a hash made for one use (say, a client address) from
    matching a hash of the same text made for another (a person ref).
    """
    message = f"{purpose}\x00{value}".encode()
    return hmac.new(pepper.encode(), message, hashlib.sha256).hexdigest()


KEY_MODULUS = 1 << 32
_HALF = 1 << 31


def wrap32(value: int) -> int:
    """``value`` modulo 2^32 as a signed 32-bit integer: how cell keys are stored, so
    they fit the 32-bit columns and sums of them are sums modulo 2^32."""
    return ((value + _HALF) % KEY_MODULUS) - _HALF


def record_key(pepper: str, encounter_id: uuid.UUID) -> int:
    """An encounter's secret 32-bit record key (signed, see ``wrap32``): a keyed hash of
    its id, so it never changes and nobody without the pepper can compute it. Of the id
    alone, not its association's: the key of one association's record is the same whether
    or not another holds that id."""
    digest = hmac.new(pepper.encode(), b"record-key\x00" + encounter_id.bytes, hashlib.sha256)
    return int.from_bytes(digest.digest()[:4], "big", signed=True)


def person_key(ref_hash: str) -> int:
    """A person ref's secret 32-bit person key (signed): the first 32 bits of its ref
    hash, itself a keyed hash of the ref that is never published."""
    return wrap32(int(ref_hash[:8], 16))
