"""Lock-out after repeated failed logins: per username, and new usernames per client.

A username is locked after ``max_failures_per_user`` failures. A client address is
never locked whole: phones behind one carrier NAT, or an association's office, share
one, and one misconfigured phone (or a passer-by) locked the whole team out. After
``max_failures_per_client`` failures on usernames that never signed in from it, the
address may only try usernames that did (within ``known_seconds``), until its lock
expires. Password spraying is trying many usernames that never signed in from the
sprayer's address, so it stays slowed; a team signs in with the few usernames that
already did from there. Refreshing with a valid refresh token never passes here.

Counters live in the rate-limit storage (memory, or Redis shared by every worker).
Keys hold only keyed hashes, so the storage never sees a username or an address.
"""

from __future__ import annotations

import time

from limits.storage import Storage

from outreach.services.errors import TooManyAttempts

# How long a username that signed in from an address stays known there.
KNOWN_SECONDS = 30 * 24 * 3600


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
        known_seconds: int = KNOWN_SECONDS,
    ) -> None:
        self._storage = storage
        self._limits = {"user": max_failures_per_user, "client": max_failures_per_client}
        self._lockout = lockout_seconds
        self._known = known_seconds

    def attempt(self, user_key: str, client_key: str | None) -> None:
        """Take one try for the client and the username, before checking a password.

        Raise ``TooManyAttempts`` while the username is locked, or the client is and the
        username never signed in from it, or when their tries are used up by tries that
        failed or are still being checked. The client's try is taken first, so a client
        past its own limit cannot use up a username's tries. A username known from the
        client takes no try of the client's: its owner's typos lock only itself.
        """
        keys = self._keys(user_key, client_key)
        for scope, key in keys:
            if self._storage.get(self._lock_key(scope, key)) > 0:
                raise self._refusal(self._lock_key(scope, key))
        for scope, key in keys:
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
        """A right password: the username's tries back, the client's one try if it took
        one, and the username known from the client from now on."""
        self._storage.clear(self._tries_key("user", user_key))
        if not client_key:
            return
        if not self._is_known(user_key, client_key):
            self._storage.incr(self._tries_key("client", client_key), self._lockout, amount=-1)
        known = self._known_key(user_key, client_key)
        # Cleared first: the known period starts again at each sign-in.
        self._storage.clear(known)
        self._storage.incr(known, self._known)

    def _is_known(self, user_key: str, client_key: str) -> bool:
        return bool(self._storage.get(self._known_key(user_key, client_key)) > 0)

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
    def _known_key(user_key: str, client_key: str) -> str:
        return f"outreach:login:known:{client_key}:{user_key}"

    def _keys(self, user_key: str, client_key: str | None) -> list[tuple[str, str]]:
        """The keys a try counts against: the client's only for a username new there."""
        keys = []
        if client_key and not self._is_known(user_key, client_key):
            keys.append(("client", client_key))
        keys.append(("user", user_key))
        return keys
