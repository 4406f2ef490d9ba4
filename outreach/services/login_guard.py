"""Lock-out after repeated failed logins, per username and per client.

Counters live in the rate-limit storage (memory, or Redis shared by every worker).
Keys hold only keyed hashes, so the storage never sees a username or an address.
"""

from __future__ import annotations

import time

from limits.storage import Storage

from outreach.services.errors import TooManyAttempts


class LoginGuard:
    """Counts tries in a window; at the threshold, locks the key for a while.

    A try is counted before its password is checked, not after it failed: counting
    after would let parallel requests (on several workers or hosts) all pass the check
    before any failure was counted, as many guesses as connections. Counted first, the
    tries beyond the threshold are refused whatever is still in flight. A right password
    gives the username all its tries back, and the client the one it took.
    """

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

    def attempt(self, user_key: str, client_key: str | None) -> None:
        """Take one try for the client and the username, before checking a password.

        Raise ``TooManyAttempts`` while either is locked, or when its tries are used up
        by tries that failed or are still being checked. The client's try is taken
        first, so a client past its own limit cannot use up a username's tries.
        """
        for scope, key in self._keys(user_key, client_key):
            if self._storage.get(self._lock_key(scope, key)) > 0:
                raise self._refusal(self._lock_key(scope, key))
        for scope, key in self._keys(user_key, client_key):
            tries = self._tries_key(scope, key)
            if self._storage.incr(tries, self._lockout) > self._limits[scope]:
                raise self._refusal(tries)

    def failed(self, user_key: str, client_key: str | None) -> None:
        """The try failed: lock whichever key has used up its tries.

        The count is left to expire, not cleared: a try that passed the lock check a
        moment ago and is about to count must still find the tries used up. It started
        with the first try, so it expires before the lock does.
        """
        for scope, key in self._keys(user_key, client_key):
            if self._storage.get(self._tries_key(scope, key)) >= self._limits[scope]:
                self._storage.incr(self._lock_key(scope, key), self._lockout)

    def succeeded(self, user_key: str, client_key: str | None) -> None:
        """A right password: the username's tries back, and the client's one try."""
        self._storage.clear(self._tries_key("user", user_key))
        if client_key:
            self._storage.incr(self._tries_key("client", client_key), self._lockout, amount=-1)

    def _refusal(self, until_expired: str) -> TooManyAttempts:
        """The refusal, to be retried when the key ``until_expired`` is gone."""
        remaining = int(self._storage.get_expiry(until_expired) - time.time()) + 1
        return TooManyAttempts(
            "Too many failed logins. Try again later.",
            retry_after=max(1, min(remaining, self._lockout)),
        )

    @staticmethod
    def _tries_key(scope: str, key: str) -> str:
        return f"outreach:login:fail:{scope}:{key}"

    @staticmethod
    def _lock_key(scope: str, key: str) -> str:
        return f"outreach:login:lock:{scope}:{key}"

    @staticmethod
    def _keys(user_key: str, client_key: str | None) -> list[tuple[str, str]]:
        keys = [("client", client_key)] if client_key else []
        keys.append(("user", user_key))
        return keys
