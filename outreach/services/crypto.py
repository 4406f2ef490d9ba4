"""Keyed hashes: how refs, usernames and client addresses are kept without being kept."""

from __future__ import annotations

import hashlib
import hmac


def keyed_hash(pepper: str, purpose: str, value: str) -> str:
    """HMAC-SHA256 of ``value`` under the pepper, separated by ``purpose``.

    The purpose prefix keeps a hash made for one use (say, a client address) from
    matching a hash of the same text made for another (a person ref).
    """
    message = f"{purpose}\x00{value}".encode()
    return hmac.new(pepper.encode(), message, hashlib.sha256).hexdigest()
