"""Lock-out after repeated failed logins, per username and per client.

Counters live in the rate-limit storage (memory, or Redis shared by every worker).
Keys hold only keyed hashes, so the storage never sees a username or an address.
"""

from __future__ import annotations

import time

from limits.storage import Storage

from outreach.services.errors import TooManyAttempts


class LoginGuard:
    """Counts failures in a window; at the threshold, locks the key for a while."""

    def __init__(
        self,
        storage: Storage,
        *,
        max_failures_per_user: int,
        max_failures_per_client: int,
        lockout_seconds: int,
    ) -> None:
        self._storage = storage
        self._limits = {"user": max_failures_per_user, "client": max_failures_per_client}
        self._lockout = lockout_seconds

    def check(self, user_key: str, client_key: str | None) -> None:
        """Raise ``TooManyAttempts`` while the username or the client is locked."""
        for scope, key in self._keys(user_key, client_key):
            lock = f"outreach:login:lock:{scope}:{key}"
            if self._storage.get(lock) > 0:
                remaining = int(self._storage.get_expiry(lock) - time.time()) + 1
                raise TooManyAttempts(
                    "Too many failed logins. Try again later.",
                    retry_after=max(1, min(remaining, self._lockout)),
                )

    def failed(self, user_key: str, client_key: str | None) -> None:
        """Count one failure; lock whichever key reached its threshold."""
        for scope, key in self._keys(user_key, client_key):
            failures = self._storage.incr(f"outreach:login:fail:{scope}:{key}", self._lockout)
            if failures >= self._limits[scope]:
                self._storage.incr(f"outreach:login:lock:{scope}:{key}", self._lockout)
                self._storage.clear(f"outreach:login:fail:{scope}:{key}")

    def succeeded(self, user_key: str) -> None:
        """A right password clears the username's failures (not the client's)."""
        self._storage.clear(f"outreach:login:fail:user:{user_key}")

    @staticmethod
    def _keys(user_key: str, client_key: str | None) -> list[tuple[str, str]]:
        keys = [("user", user_key)]
        if client_key:
            keys.append(("client", client_key))
        return keys
